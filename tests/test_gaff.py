"""The GAFF-2.11 baseline: real antechamber/parmchk2/tleap, checked against the prmtop in OpenMM."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import openmm_energy_forces, openmm_group_energies, symmetric_test_charges

from espaloma_like.baselines.gaff_amber import (
    build_gaff_prmtop,
    gaff_parameters,
    leap_errors,
    parameters_from_prmtop,
    prmtop_system,
)
from espaloma_like.exceptions import ExternalToolError
from espaloma_like.molecule import MoleculeGraph, from_smiles, generate_conformers
from espaloma_like.parameters import ParameterSet
from espaloma_like.terms import enumerate_terms

KCAL = 4.184
P_AND_S = "CSP(=O)(O)O"  # S-methyl phosphonothioate: types c3 ss p5 o oh


def gaff_types(work: Path) -> list[str]:
    """GAFF atom types (column 6) of antechamber's ``typed.mol2``."""
    text = (work / "typed.mol2").read_text()
    block = text.split("@<TRIPOS>ATOM")[1].split("@<TRIPOS>")[0]
    return [line.split()[5] for line in block.strip().splitlines()]


def round_charges(graph: MoleculeGraph, seed: int = 0) -> np.ndarray:
    """Test charges with 4 decimals, so antechamber's 6-decimal mol2 keeps them exactly."""
    q = np.round(symmetric_test_charges(graph, seed), 4)
    q[-1] += graph.total_charge - q.sum()
    return q


def torch_energy_forces(p: ParameterSet, xyz: np.ndarray) -> tuple[float, np.ndarray]:
    from espaloma_like.mm.energy import energy_and_forces

    e, f = energy_and_forces(p, torch.as_tensor(xyz[None], dtype=torch.float64))
    return float(e[0]), f[0].numpy()


@pytest.mark.parametrize(
    ("smiles", "extra_centres"),
    [
        ("CCO", ""),
        ("CC(=O)O", ""),
        ("CC(=O)[O-]", ""),
        ("CNC(C)=O", "[#7X3]"),  # GAFF's X-X-n-hn improper on the amide N
        ("c1ccccc1", ""),
        (P_AND_S, ""),
        ("Clc1ccccc1", ""),
    ],
)
def test_builds_sensible_parameters(smiles: str, extra_centres: str) -> None:
    from rdkit import Chem

    graph = from_smiles(smiles)
    p = gaff_parameters(graph, np.zeros(graph.n_atoms))
    xyz = generate_conformers(graph, 1)[0]
    terms = enumerate_terms(graph)
    bonds = p.bonds.indices.numpy()
    np.testing.assert_array_equal(bonds, terms.bonds)
    np.testing.assert_array_equal(p.angles.indices.numpy(), terms.angles)
    np.testing.assert_array_equal(p.propers.indices.numpy(), terms.propers)
    assert (p.bonds.k.numpy() > 1e4).all()  # kJ/mol/nm^2; GAFF's weakest are ~1e5
    r = np.linalg.norm(xyz[bonds[:, 0]] - xyz[bonds[:, 1]], axis=-1)
    np.testing.assert_allclose(p.bonds.length.numpy(), r, atol=0.015)  # nm, vs ETKDG
    assert (p.angles.k.numpy() > 50.0).all()  # kJ/mol/rad^2
    assert ((p.angles.angle.numpy() > 1.5) & (p.angles.angle.numpy() < math.pi + 1e-6)).all()

    assert p.impropers.trefoil is False
    centres = set(p.impropers.indices[:, 2].tolist())  # Amber: central atom third
    mol = graph.rdkit_mol
    sp2 = {m[0] for m in mol.GetSubstructMatches(Chem.MolFromSmarts("[#6X3]"))}
    if extra_centres:
        sp2 |= {m[0] for m in mol.GetSubstructMatches(Chem.MolFromSmarts(extra_centres))}
    assert sp2 <= centres
    for i, j, c, m in p.impropers.indices.tolist():
        assert all(tuple(sorted((a, c))) in {tuple(b) for b in bonds.tolist()} for a in (i, j, m))
    assert p.nonbonded.coulomb_14_scale == pytest.approx(1 / 1.2, rel=1e-12)
    assert p.nonbonded.lj_14_scale == 0.5
    assert (p.nonbonded.sigma.numpy() > 0.0).all()
    assert p.provenance == {"method": "gaff", "forcefield": "gaff-2.11", "charges": "am1bcc"}


def perturbed_conformers(graph: MoleculeGraph, n: int = 2) -> np.ndarray:
    """ETKDG conformers with 0.01 nm noise: ETKDG's planar rings and sp2 centres sit exactly
    at the minima of GAFF's impropers and aromatic torsions, which would hide them."""
    rng = np.random.default_rng(7)
    xyz = generate_conformers(graph, n, seed=1)
    return xyz + rng.normal(0.0, 0.01, xyz.shape)


@pytest.mark.parametrize(
    "smiles", ["CC(=O)[O-]", "CNC(C)=O", "Clc1ccccc1", P_AND_S, "C[NH3+]", "OC(=O)c1ccncc1O"]
)
def test_energy_equals_prmtop_system(smiles: str, tmp_path: Path) -> None:
    """Nothing is lost between tleap's prmtop and the ParameterSet (float64, Reference)."""
    import openmm

    from espaloma_like.export.openmm_system import to_openmm_system
    from espaloma_like.mm.energy import energy_terms

    graph = from_smiles(smiles)
    charges = round_charges(graph)
    prmtop = build_gaff_prmtop(graph, charges, tmp_path)
    p = parameters_from_prmtop(graph, prmtop, charges)
    _, reference = prmtop_system(prmtop)
    groups = {
        openmm.HarmonicBondForce: 0, openmm.HarmonicAngleForce: 1,
        openmm.PeriodicTorsionForce: 2, openmm.NonbondedForce: 3,
    }
    for force in reference.getForces():
        force.setForceGroup(groups[type(force)])
    exported = to_openmm_system(p)
    for xyz in perturbed_conformers(graph):
        terms = energy_terms(p, torch.as_tensor(xyz[None])).as_dict()
        ours = {k: float(v[0]) for k, v in terms.items()}
        by_group = openmm_group_energies(reference, xyz)
        assert ours["bond"] == pytest.approx(by_group[0], abs=1e-3)
        assert ours["angle"] == pytest.approx(by_group[1], abs=1e-3)
        assert ours["proper"] + ours["improper"] == pytest.approx(by_group[2], abs=1e-3)
        assert ours["lj"] + ours["coulomb"] == pytest.approx(by_group[3], abs=1e-3)
        if len(p.impropers.indices):
            assert abs(ours["improper"]) > 1e-2  # the noise makes them count

        e_torch, f_torch = torch_energy_forces(p, xyz)
        e_ref, f_ref = openmm_energy_forces(reference, xyz)
        e_exp, _ = openmm_energy_forces(exported, xyz)
        assert e_torch == pytest.approx(e_ref, abs=1e-3)
        assert e_exp == pytest.approx(e_ref, abs=1e-3)
        assert np.abs(f_torch - f_ref).max() <= 1e-5 * np.abs(f_ref).max()


def test_mapped_smiles_keeps_order_and_gaff211_values(tmp_path: Path) -> None:
    # methanol with the O first: 0 O, 1 C, 2 hydroxyl H, 3-5 methyl H
    graph = from_smiles("[H:4][C:2]([H:5])([H:6])[O:1][H:3]")
    assert graph.atomic_numbers.tolist() == [8, 6, 1, 1, 1, 1]
    charges = np.array([-0.6, 0.1, 0.4, 0.0333, 0.0333, 0.0334])
    prmtop = build_gaff_prmtop(graph, charges, tmp_path)
    assert gaff_types(tmp_path) == ["oh", "c3", "ho", "h1", "h1", "h1"]
    p = parameters_from_prmtop(graph, prmtop, charges)
    np.testing.assert_array_equal(p.nonbonded.charges.numpy(), charges)

    # gaff211.dat: "c3-oh  293.4  1.4230" (gaff2.dat 2.2.30 has 285.15, 1.4242)
    row = p.bonds.indices.tolist().index([0, 1])
    assert float(p.bonds.k[row]) == pytest.approx(2 * 293.4 * KCAL * 100, rel=1e-6)
    assert float(p.bonds.length[row]) == pytest.approx(0.14230, rel=1e-6)
    # "c3-oh-ho  49.0  107.26" (2.2.30: 65.13, 107.39)
    row = p.angles.indices.tolist().index([1, 0, 2])
    assert float(p.angles.k[row]) == pytest.approx(2 * 49.0 * KCAL, rel=1e-6)
    assert float(p.angles.angle[row]) == pytest.approx(math.radians(107.26), rel=1e-6)
    # NONBON "oh  1.8200  0.0930": R*/2 in Angstrom -> sigma = 2 R*/2 / 2^(1/6)
    assert float(p.nonbonded.sigma[0]) == pytest.approx(0.182 * 2 / 2 ** (1 / 6), rel=1e-6)
    assert float(p.nonbonded.epsilon[0]) == pytest.approx(0.0930 * KCAL, rel=1e-6)
    # hydroxyl H "ho  0.3019  0.0047"
    assert float(p.nonbonded.epsilon[2]) == pytest.approx(0.0047 * KCAL, rel=1e-6)


def test_improper_centre_is_third_even_when_tleap_reverses(tmp_path: Path) -> None:
    # Atom 0 is an aromatic C: tleap cannot put it third (the prmtop flags that position by
    # sign) and reverses the improper, so the centre is second in the prmtop.
    graph = from_smiles("c1ccccc1Cl")
    p = gaff_parameters(graph, np.zeros(graph.n_atoms))
    assert 0 in p.impropers.indices[:, 2].tolist()
    assert len(p.impropers.indices) == 6


def test_tool_failure_raises_with_log(monkeypatch: pytest.MonkeyPatch) -> None:
    gaff_module = importlib.import_module("espaloma_like.baselines.gaff_amber")
    monkeypatch.setattr(
        gaff_module, "gaff2_atom_types_block", lambda: "loadamberparams no_such_file.frcmod"
    )
    graph = from_smiles("CCO")
    with pytest.raises(ExternalToolError, match="no_such_file"):
        gaff_parameters(graph, np.zeros(graph.n_atoms))


def test_leap_errors_reads_errors_that_exit_zero() -> None:
    log = (
        "Building proper torsion parameters.\n"
        "/amber/bin/teLeap: Error!\n"
        " ** No torsion terms for atom types: h1-c3-ns-hn\n"
        "Parameter file was not saved.\n"
        "Exiting LEaP: Errors = 32; Warnings = 2; Notes = 0.\n"
    )
    found = leap_errors(log)
    assert any("h1-c3-ns-hn" in line for line in found)
    assert any("not saved" in line for line in found)
    assert leap_errors("Exiting LEaP: Errors = 0; Warnings = 0; Notes = 0.\n") == []


def test_undefined_stereo_is_allowed() -> None:
    graph = from_smiles("CC(O)CC")  # the parameters do not depend on the stereoisomer
    p = gaff_parameters(graph, np.zeros(graph.n_atoms))
    assert len(p.bonds.indices) == len(graph.bonds)


def test_charges_shape_is_checked() -> None:
    graph = from_smiles("CCO")
    with pytest.raises(ValueError, match="shape"):
        gaff_parameters(graph, np.zeros(3))


@pytest.mark.slow
def test_public_gaff_with_am1bcc() -> None:
    """``espaloma_like.baselines.gaff("CCO")`` with real AM1-BCC (sqm), after the submodule
    has been imported (the function must not be shadowed by a module of the same name)."""
    import espaloma_like.baselines as baselines

    assert callable(baselines.gaff) and callable(baselines.sage)
    m = baselines.gaff("CCO")
    q = m.charges
    assert q.sum() == pytest.approx(0.0, abs=1e-10)
    assert q[2] < -0.4  # hydroxyl O
    assert q[8] > 0.3  # hydroxyl H
    assert m.parameters.provenance["forcefield"] == "gaff-2.11"
