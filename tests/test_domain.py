"""Applicability domain: computed from training molecules, stored with the shipped model, and a
warning (never an error) in the API, the CLI and the XML provenance for molecules outside it."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import openmm
import pytest

import espaloma_like
from espaloma_like.domain import (
    ApplicabilityDomain,
    OutOfDomainWarning,
    atom_environments,
    compute_domain,
    domain_from_qm_files,
    model_domain,
)
from espaloma_like.molecule import from_smiles

PARACETAMOL = "CC(=O)Nc1ccc(O)cc1"
#: 85 heavy atoms: a C84 alkane chain with a terminal OH
EIGHTY_FIVE_HEAVY = "C" * 84 + "O"
ALKANE_150 = "C" * 150
TRICATION = "C[N+](C)(C)CC[N+](C)(C)CC[N+](C)(C)C"
#: a pentafluorosulfanyl group: sulfur with six bonds to fluorine and carbon
UNUSUAL = "FS(F)(F)(F)(F)c1ccccc1"


@pytest.fixture(scope="module")
def shipped() -> ApplicabilityDomain:
    domain = model_domain(espaloma_like.load_model())
    assert domain is not None, "the shipped default model carries an applicability domain"
    return domain


def test_shipped_domain_describes_the_training_set(shipped: ApplicabilityDomain) -> None:
    assert shipped.elements == (1, 6, 7, 8, 9, 15, 16, 17, 35, 53)
    # the xTB dataset (1-20 heavy atoms, charge -1..+1) and the industry set's train and
    # validation molecules (DFT fine-tuning: up to 82 heavy atoms, charge -2..+2)
    assert shipped.net_charge_range == (-2, 2)
    assert shipped.heavy_atom_range == (1, 82)
    assert shipped.n_molecules > 10000
    assert len(shipped.environments) > 2000
    assert shipped.sources == ("espaloma_like_gfn2xtb.h5", "openff_industry_b3lyp")


@pytest.mark.parametrize(("smiles", "reason"), [
    (TRICATION, "net charge +3"),
    (EIGHTY_FIVE_HEAVY, "85 heavy atoms"),
    (ALKANE_150, "150 heavy atoms"),
    (UNUSUAL, "environments not seen in training"),
])
def test_outside_molecules_warn_and_are_still_parametrized(smiles: str, reason: str) -> None:
    with pytest.warns(OutOfDomainWarning, match=re.escape(reason)):
        result = espaloma_like.parametrize(smiles)
    assert any(reason in line for line in result.domain_warnings)
    assert result.parameters.bonds.k.shape[0] == result.molecule.bonds.shape[0]
    assert reason in result.parameters.provenance["applicability_domain"]
    # the reasons go into both XML files
    assert reason in result.to_forcefield_xml()
    system_xml = result.to_system_xml()
    assert reason in system_xml
    assert openmm.XmlSerializer.deserialize(system_xml).getNumParticles() == result.molecule.n_atoms


def test_paracetamol_is_inside(shipped: ApplicabilityDomain) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfDomainWarning)
        result = espaloma_like.parametrize(PARACETAMOL)
    assert result.domain_warnings == ()
    assert "applicability_domain" not in result.parameters.provenance
    assert shipped.novelty(result.molecule) == 0.0


def test_unusual_environment_is_named(shipped: ApplicabilityDomain) -> None:
    graph = from_smiles(UNUSUAL)
    (reason,) = shipped.check(graph)
    sulfur = int(np.flatnonzero(graph.atomic_numbers == 16)[0])
    assert f"{sulfur} (S)" in reason
    assert 0.0 < shipped.novelty(graph) < 1.0


def test_parametrize_many_warns_once_per_outside_molecule() -> None:
    with pytest.warns(OutOfDomainWarning) as record:
        results = espaloma_like.parametrize_many([PARACETAMOL, TRICATION, ALKANE_150])
    assert [bool(r.domain_warnings) for r in results] == [False, True, True]
    assert len([w for w in record if issubclass(w.category, OutOfDomainWarning)]) == 2


def test_environments_are_invariant_to_atom_order() -> None:
    from rdkit import Chem

    from espaloma_like.molecule import from_rdkit

    a = from_smiles("CC(=O)O")
    order = list(reversed(range(a.n_atoms)))
    b = from_rdkit(Chem.RenumberAtoms(a.rdkit_mol, order), hydrogens_are_explicit=True)
    assert np.array_equal(atom_environments(a)[order], atom_environments(b))
    # and they tell a carbonyl O from a hydroxyl O
    oxygens = np.flatnonzero(a.atomic_numbers == 8)
    assert len(set(atom_environments(a)[oxygens].tolist())) == 2


def test_compute_domain_and_json_round_trip() -> None:
    domain = compute_domain(["CCO", "CC(=O)[O-]", "C[NH3+]", from_smiles("c1ccccc1")],
                            sources=("unit test",))
    assert domain.elements == (1, 6, 7, 8)
    assert domain.net_charge_range == (-1, 1)
    assert domain.heavy_atom_range == (2, 6)
    assert domain.n_molecules == 4
    restored = ApplicabilityDomain.from_json(domain.to_json())
    assert restored == domain
    assert restored.check(from_smiles("CCO")) == ()
    reasons = restored.check(from_smiles("CCCl"))
    assert any("elements not in training set: Cl" in r for r in reasons)


def test_domain_from_qm_files_leaves_out_held_out_molecules(tmp_path: Path) -> None:
    from espaloma_like.data.records import QMRecord
    from espaloma_like.data.spice import write_spice_hdf5

    def record(name: str, smiles: str, split: str) -> QMRecord:
        graph = from_smiles(smiles)
        n = graph.n_atoms
        return QMRecord(name=name, mapped_smiles=graph.mapped_smiles,
                        atomic_numbers=graph.atomic_numbers,
                        conformations=np.random.default_rng(0).normal(size=(1, n, 3)),
                        energies=np.zeros(1), forces=np.zeros((1, n, 3)),
                        level_of_theory="test", total_charge=graph.total_charge,
                        metadata={"split": split})

    path = tmp_path / "tiny.h5"
    write_spice_hdf5(path, [record("ethanol", "CCO", "train"),
                            record("methylamine", "C[NH3+]", "validation"),
                            record("chlorobenzene", "Clc1ccccc1", "held_out")])
    domain = domain_from_qm_files([path])
    assert domain.n_molecules == 2
    assert domain.elements == (1, 6, 7, 8)
    assert domain.net_charge_range == (0, 1)
    assert domain.sources == ("tiny.h5",)


def test_cli_reports_one_line_per_outside_molecule(tmp_path: Path) -> None:
    listing = tmp_path / "molecules.smi"
    listing.write_text(f"{PARACETAMOL} paracetamol\n{TRICATION} tri\n{ALKANE_150} wax\n")
    done = subprocess.run([sys.executable, "-m", "espaloma_like.cli.main", "parametrize",
                           str(listing), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "applicability domain" in line]
    assert len(lines) == 2
    assert lines[0].startswith("molecule 1 (tri): outside the model's applicability domain: ")
    assert "net charge +3" in lines[0]
    assert lines[1].startswith("molecule 2 (wax): ") and "150 heavy atoms" in lines[1]
    assert "Warning" not in done.stderr  # no Python warning text besides the one-liners
