"""The Sage baseline: labelled parameters equal the offxml values, independent references."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
from conftest import openmm_energy_forces, symmetric_test_charges

from espaloma_like.baselines.sage_labels import SAGE, load_forcefield, sage_parameters
from espaloma_like.molecule import from_smiles, generate_conformers


def test_parameters_equal_offxml_values() -> None:
    forcefield = load_forcefield()
    graph = from_smiles("CCO")
    p = sage_parameters(graph, np.zeros(graph.n_atoms))
    # C-C bond of ethanol is b1 "[#6X4:1]-[#6X4:2]"
    b1 = forcefield.get_parameter_handler("Bonds").parameters["[#6X4:1]-[#6X4:2]"]
    row = [tuple(r) for r in p.bonds.indices.tolist()].index((0, 1))
    assert float(p.bonds.k[row]) == pytest.approx(b1.k.m_as("kJ/mol/nm**2"))
    assert float(p.bonds.length[row]) == pytest.approx(b1.length.m_as("nm"))
    # hydroxyl hydrogen LJ: "[#1:1]-[#8]"
    h = forcefield.get_parameter_handler("vdW").parameters["[#1:1]-[#8]"]
    expected_eps = h.epsilon.m_as("kJ/mol")
    assert float(p.nonbonded.epsilon[8]) == pytest.approx(expected_eps)
    assert p.nonbonded.coulomb_14_scale == pytest.approx(1 / 1.2, rel=1e-9)
    assert p.nonbonded.lj_14_scale == 0.5


def test_impropers_are_trefoil_with_total_k() -> None:
    forcefield = load_forcefield()
    graph = from_smiles("CC(=O)NC")
    p = sage_parameters(graph, np.zeros(graph.n_atoms))
    assert p.impropers.trefoil
    labels = forcefield.label_molecules(graph.to_openff().to_topology())[0]["ImproperTorsions"]
    assert len(p.impropers.indices) == len(labels)
    for key, param in labels.items():
        row = [r[0] for r in p.impropers.indices.tolist()].index(key[1])
        n = param.periodicity[0]
        # SMIRNOFF idivf "auto": each of the three trefoil torsions gets k / 3; we store k.
        assert float(p.impropers.k[row, n - 1]) == pytest.approx(param.k[0].m_as("kJ/mol"))
        assert float(p.impropers.phase[row, n - 1]) == pytest.approx(math.pi)


def test_labelled_torsions_cover_every_proper() -> None:
    from espaloma_like.terms import enumerate_terms

    graph = from_smiles("CC(=O)Nc1ccc(O)cc1")
    p = sage_parameters(graph, np.zeros(graph.n_atoms))
    assert {tuple(r) for r in p.propers.indices.tolist()} == {
        tuple(r) for r in enumerate_terms(graph).propers.tolist()
    }


@pytest.mark.skipif(
    importlib.util.find_spec("openff.interchange") is None,
    reason="openff-interchange is not importable (it needs Python >= 3.12)",
)
def test_matches_interchange() -> None:
    from openff.interchange import Interchange
    from openff.units import unit

    for smiles in ("CC(=O)Nc1ccc(O)cc1", "CC(=O)[O-]", "c1ccsc1"):
        graph = from_smiles(smiles)
        charges = symmetric_test_charges(graph)
        ours = sage_parameters(graph, charges)
        molecule = graph.to_openff()
        molecule.partial_charges = charges * unit.elementary_charge
        interchange = Interchange.from_smirnoff(
            load_forcefield(SAGE), [molecule], charge_from_molecules=[molecule]
        )
        reference = interchange.to_openmm_system()
        from espaloma_like.export.openmm_system import to_openmm_system

        for xyz in generate_conformers(graph, 2, seed=1):
            e_ref, _ = openmm_energy_forces(reference, xyz)
            e_ours, _ = openmm_energy_forces(to_openmm_system(ours), xyz)
            assert e_ours == pytest.approx(e_ref, abs=1e-3)


@pytest.mark.slow
def test_am1bcc_charges_are_cached_and_symmetric(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from espaloma_like.baselines import am1bcc, sage

    monkeypatch.setenv("ESPALOMA_LIKE_CACHE_DIR", str(tmp_path))
    molecule = sage("CC(=O)[O-]")
    q = molecule.charges
    assert q.sum() == pytest.approx(-1.0, abs=1e-12)
    assert q[2] == q[3]  # carboxylate oxygens
    assert q[4] == q[5] == q[6]
    assert -1.0 < q[2] < -0.6  # AM1-BCC carboxylate O is about -0.8 e
    assert len(list((tmp_path / "am1bcc").glob("*.json"))) == 1
    # another atom order of the same molecule hits the cache and gets the same charges per atom
    reordered = from_smiles("[O-:1][C:2](=[O:3])[C:4]([H:5])([H:6])[H:7]")

    def fail(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("AM1-BCC recomputed despite the cache")

    monkeypatch.setattr(am1bcc, "compute_am1bcc", fail)
    q2 = am1bcc.am1bcc_charges(reordered)
    assert q2[0] == pytest.approx(q[2]) and q2[3] == pytest.approx(q[0])
    energy_ok = sage(reordered)  # full path through the cache
    total = energy_ok.parameters.nonbonded.charges.sum()
    assert torch.isclose(total, torch.tensor(-1.0, dtype=torch.float64))


def test_repeated_periodicity_is_merged_exactly_up_to_a_constant() -> None:
    """Sage t25/t26 repeat periodicity 2; the merged cosine has the same forces."""
    import torch

    from espaloma_like.mm.energy import periodic_torsion_energy

    graph = from_smiles("NCc1cccs1")  # thiophene S-C(ar)-CH2-N matches Sage t25
    p = sage_parameters(graph, np.zeros(graph.n_atoms))
    labels = load_forcefield().label_molecules(graph.to_openff().to_topology())[0]["ProperTorsions"]
    repeated = [(k, v) for k, v in labels.items() if len(set(v.periodicity)) < len(v.periodicity)]
    assert repeated, "test molecule should hit a torsion with a repeated periodicity"
    key, param = repeated[0]
    xyz = torch.tensor(generate_conformers(graph, 3, seed=2), requires_grad=True)
    quad = torch.tensor([key])
    direct = sum(
        kk.m_as("kJ/mol") * (1 + torch.cos(n * _phi(xyz, quad) - ph.m_as("radian")))
        for n, ph, kk in zip(param.periodicity, param.phase, param.k, strict=True)
    )
    canonical = min(tuple(key), tuple(key)[::-1])
    row = [tuple(r) for r in p.propers.indices.tolist()].index(canonical)
    merged = periodic_torsion_energy(xyz, p.propers.indices[row : row + 1], p.propers.k[row : row + 1],
                                     p.propers.phase[row : row + 1])
    difference = (direct[:, 0] - merged[:, 0]).detach().numpy()
    assert np.ptp(difference) < 1e-9  # a constant offset only
    g1 = torch.autograd.grad(direct.sum(), xyz, retain_graph=True)[0]
    g2 = torch.autograd.grad(merged.sum(), xyz)[0]
    assert torch.allclose(g1, g2, atol=1e-9)


def _phi(xyz, quad):  # type: ignore[no-untyped-def]
    from espaloma_like.mm.geometry import dihedrals

    return dihedrals(xyz, quad)


def test_shipped_vdw_table_matches_the_offxml_and_label_molecules() -> None:
    import json

    from conftest import DIVERSE_SMILES

    from espaloma_like.baselines.sage_labels import sage_lj
    from espaloma_like.baselines.sage_lj import VDW_TABLE, sage_lj_fast, vdw_table_from_forcefield

    assert json.loads(VDW_TABLE.read_text())["parameters"] == vdw_table_from_forcefield()
    for smiles in DIVERSE_SMILES:
        graph = from_smiles(smiles)
        fast = sage_lj_fast(graph)
        labelled = sage_lj(graph)
        np.testing.assert_allclose(fast[0], labelled[0], rtol=1e-12)
        np.testing.assert_allclose(fast[1], labelled[1], rtol=1e-12)


def test_model_path_does_not_import_openff() -> None:
    import subprocess
    import sys

    code = ("import sys, espaloma_like\n"
            "from espaloma_like.nn.model import ParameterModel\n"
            "espaloma_like.parametrize('CC(=O)Nc1ccc(O)cc1', model=ParameterModel().double())\n"
            "print(any(m.startswith('openff') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.slow
@pytest.mark.parametrize("smiles", ["CN(C)C(=N)N=C(N)N", "C[NH+]1CCC[C@H]1c1cccnc1"])
def test_sage_and_gaff_accept_stereo_that_is_not_real(  # type: ignore[no-untyped-def]
        smiles: str, tmp_path, monkeypatch) -> None:
    """Metformin's C=NH and protonated nicotine's [NH+] need no stereo for AM1-BCC's conformer
    (both baselines refused them with UndefinedStereoError)."""
    from espaloma_like.baselines import gaff, sage

    monkeypatch.setenv("ESPALOMA_LIKE_CACHE_DIR", str(tmp_path))
    graph = from_smiles(smiles)
    with_sage = sage(smiles)
    assert with_sage.molecule.n_atoms == graph.n_atoms
    assert with_sage.charges.sum() == pytest.approx(graph.total_charge, abs=1e-9)
    with_gaff = gaff(smiles)  # AM1-BCC from the cache the Sage call filled
    assert np.allclose(with_gaff.charges, with_sage.charges, atol=1e-5)  # prmtop rounding
    assert with_gaff.to_openmm_system().getNumParticles() == graph.n_atoms
