"""Torsion-torsion coupling, an optional kind on new terms (torsion pairs): enumeration, torch vs
the analytic form and vs OpenMM (System route only), refusals, batching, training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import DIVERSE_SMILES, openmm_energy_forces, openmm_group_energies
from termkind_helpers import assert_batched_equals_alone, fine_tuning_start, readout_gradient

from espaloma_like.api import parametrize
from espaloma_like.export.openmm_system import FORCE_GROUPS
from espaloma_like.mm import energy_and_forces, energy_terms
from espaloma_like.molecule import from_rdkit, from_smiles, generate_conformers
from espaloma_like.nn.model import ModelConfig, ParameterModel
from espaloma_like.termkinds.torsion_coupling import (
    COUPLING_SCALE,
    TORSION_COUPLING,
    TorsionCouplingParameters,
    torsion_coupling_energy,
)
from espaloma_like.terms import enumerate_terms, linear_centres

PLAIN = ModelConfig(hidden=32, n_layers=2, readout_hidden=32)
COUPLED = PLAIN.model_copy(update={"extra_terms": ("torsion_coupling",)})
MOLECULES = ["CC(=O)Nc1ccc(O)cc1", "COP(=O)([O-])c1ccc(Cl)cc1", "CCCC", "N#CCC(C)(C)C#CCO", "C1CCOC1"]


@pytest.fixture(scope="module")
def plain() -> ParameterModel:
    torch.manual_seed(2)
    return ParameterModel(PLAIN).double().eval()


@pytest.fixture(scope="module")
def coupled(plain: ParameterModel) -> ParameterModel:
    model = ParameterModel(COUPLED).double().eval()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing
    assert all(k.startswith("torsion_coupling_readout.") for k in missing)
    with torch.no_grad():  # couplings of a few kJ/mol, different per chain and periodicity
        model.torsion_coupling_readout.head.weight.normal_(0.0, 0.5)
        model.torsion_coupling_readout.head.bias.normal_(0.0, 0.5)
    return model


def _canonical_set(rows: np.ndarray) -> set[tuple[int, ...]]:
    return {min(tuple(r), tuple(r[::-1])) for r in rows.tolist()}


# ----------------------------------------------------------------------------- enumeration


def test_butane_chains() -> None:
    graph = from_smiles("CCCC")
    t = enumerate_terms(graph)
    neighbours: dict[int, set[int]] = {a: set() for a in range(graph.n_atoms)}
    for a, b in graph.bonds.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    carbons = [0, 1, 2, 3]
    expected = set()
    for j, k, el in ((0, 1, 2), (1, 2, 3)):
        for i in neighbours[j] - {k}:
            for m in neighbours[el] - {k}:
                expected.add(min((i, j, k, el, m), (m, el, k, j, i)))
    assert t.torsion_pairs.shape == (18, 5) and t.torsion_pairs.dtype == np.int64
    assert _canonical_set(t.torsion_pairs) == expected
    # C0-C1-C2-C3 with an H at either end: 3 + 3 chains through the whole backbone
    backbone = [r for r in t.torsion_pairs.tolist() if sum(a in carbons for a in r) == 4]
    assert len(backbone) == 6


@pytest.mark.parametrize("smiles", [*DIVERSE_SMILES, "CCCC", "C1CCC1C", "N#CCC(C)(C)C#CCO", "C=C=CC"])
def test_chains_are_consecutive_propers_canonical_and_sorted(smiles: str) -> None:
    graph = from_smiles(smiles)
    t = enumerate_terms(graph)
    chains = t.torsion_pairs
    assert chains.shape[1] == 5 and chains.dtype == np.int64
    propers = {tuple(r) for r in t.propers.tolist()}
    linear = linear_centres(graph)
    brute = set()
    for a in propers | {p[::-1] for p in propers}:
        for b in propers | {p[::-1] for p in propers}:
            if a[1:] == b[:3] and a[0] != b[3]:
                brute.add(min((*a, b[3]), (b[3], *a[::-1])))
    for row in chains.tolist():
        first, second = tuple(row[:4]), tuple(row[1:])
        assert min(first, first[::-1]) in propers and min(second, second[::-1]) in propers
        assert len(set(row)) == 5
        assert not linear[row[1:4]].any()
        assert row[0] < row[4]  # canonical: (i..m) < (m..i)
    assert [tuple(r) for r in chains.tolist()] == sorted(brute)  # each once, sorted
    canonical, order, _ = TORSION_COUPLING.canonicalize(chains)
    assert np.array_equal(canonical, chains) and np.array_equal(order, np.arange(len(chains)))


def test_no_chain_through_a_linear_centre() -> None:
    graph = from_smiles("CC#CC")
    assert enumerate_terms(graph).torsion_pairs.shape == (0, 5)
    graph = from_smiles("N#CCC(C)(C)C#CCO")
    t = enumerate_terms(graph)
    linear = np.flatnonzero(linear_centres(graph))
    assert len(linear) == 3 and len(t.torsion_pairs) > 0
    assert not np.isin(t.torsion_pairs[:, 1:4], linear).any()


def test_same_chains_in_any_atom_order() -> None:
    from rdkit import Chem

    first = from_smiles("CC(=O)Nc1ccc(O)cc1")
    order = np.random.default_rng(5).permutation(first.n_atoms)
    second = from_rdkit(Chem.RenumberAtoms(first.rdkit_mol, order.tolist()))
    a = enumerate_terms(first).torsion_pairs
    b = enumerate_terms(second).torsion_pairs  # new atom n is old atom order[n]
    assert len(a) == len(b) == 46
    assert _canonical_set(a) == _canonical_set(order[b])


def test_same_parameters_in_any_atom_order(coupled: ParameterModel) -> None:
    from rdkit import Chem

    first = from_smiles("CC(=O)Nc1ccc(O)cc1")
    order = np.random.default_rng(3).permutation(first.n_atoms)
    second = from_rdkit(Chem.RenumberAtoms(first.rdkit_mol, order.tolist()))

    def by_chain(block: TorsionCouplingParameters, renumber: np.ndarray) -> dict:  # type: ignore[type-arg]
        out = {}
        for n, row in enumerate(renumber[block.indices.numpy()].tolist()):
            out[min(tuple(row), tuple(row[::-1]))] = (block.k_plus[n].numpy().tobytes(),
                                                      block.k_minus[n].numpy().tobytes())
        return out

    a = parametrize(first, coupled).parameters.extra_terms["torsion_coupling"]
    b = parametrize(second, coupled).parameters.extra_terms["torsion_coupling"]
    assert np.array_equal(b.indices.numpy(), enumerate_terms(second).torsion_pairs)
    assert by_chain(a, np.arange(first.n_atoms)) == by_chain(b, order)


# ----------------------------------------------------------------------------- model


def test_default_config_lacks_it_and_a_fresh_readout_gives_exact_zeros(plain: ParameterModel) -> None:
    assert ModelConfig().extra_terms == ()
    assert "torsion_coupling" not in plain.readouts()
    fresh = ParameterModel(COUPLED).double().eval()
    fresh.load_state_dict(plain.state_dict(), strict=False)
    molecule = parametrize(MOLECULES[0], fresh)
    block = molecule.parameters.extra_terms["torsion_coupling"]
    assert block.indices.shape == (46, 5)
    assert bool((block.k_plus == 0.0).all()) and bool((block.k_minus == 0.0).all())
    # a model grafted with the kind starts as the model without it
    xyz = torch.tensor(generate_conformers(molecule.molecule, 2, seed=0))
    without = parametrize(MOLECULES[0], plain).parameters
    assert torch.equal(energy_terms(molecule.parameters, xyz).total, energy_terms(without, xyz).total)
    system = molecule.to_openmm_system()
    assert not any(type(f).__name__ == "CustomCompoundBondForce" for f in system.getForces())


def _dihedral(x: np.ndarray, a: int, b: int, c: int, d: int) -> np.ndarray:
    """IUPAC dihedral (C,), rad, an independent numpy implementation."""
    b0 = x[:, a] - x[:, b]
    b1 = x[:, c] - x[:, b]
    b2 = x[:, d] - x[:, c]
    b1 = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - (b0 * b1).sum(-1, keepdims=True) * b1
    w = b2 - (b2 * b1).sum(-1, keepdims=True) * b1
    return np.arctan2((np.cross(b1, v) * w).sum(-1), (v * w).sum(-1))


def test_energy_is_the_analytic_form_and_symmetric_under_reversal(coupled: ParameterModel) -> None:
    molecule = parametrize(MOLECULES[0], coupled)
    p = molecule.parameters
    block = p.extra_terms["torsion_coupling"]
    assert isinstance(block, TorsionCouplingParameters)
    assert p.provenance["extra_terms"] == "torsion_coupling"
    assert float(block.k_plus.abs().max()) < COUPLING_SCALE and float(block.k_minus.std()) > 0.1
    x = generate_conformers(molecule.molecule, 3, seed=1)
    expected = np.zeros(len(x))
    for (i, j, k, el, m), kp, km in zip(block.indices.tolist(), block.k_plus.numpy(),
                                        block.k_minus.numpy(), strict=True):
        phi1, phi2 = _dihedral(x, i, j, k, el), _dihedral(x, j, k, el, m)
        for n in (1, 2):
            expected += kp[n - 1] * np.cos(n * (phi1 + phi2)) + km[n - 1] * np.cos(n * (phi1 - phi2))
    xyz = torch.tensor(x)
    without = dataclasses.replace(p, extra_terms={})
    proper = energy_terms(p, xyz).proper - energy_terms(without, xyz).proper
    assert np.allclose(proper.numpy(), expected, rtol=1e-10, atol=1e-9)
    per_chain = torsion_coupling_energy(xyz, block.indices, block.k_plus, block.k_minus)
    reversed_chains = torsion_coupling_energy(xyz, block.indices.flip(-1), block.k_plus, block.k_minus)
    assert torch.allclose(per_chain, reversed_chains, rtol=1e-12, atol=1e-12)
    # other components are untouched
    assert torch.equal(energy_terms(p, xyz).bond, energy_terms(without, xyz).bond)


@pytest.mark.parametrize("smiles", MOLECULES)
def test_matches_openmm_system(coupled: ParameterModel, smiles: str) -> None:
    molecule = parametrize(smiles, coupled)
    system = molecule.to_openmm_system()
    compound = [f for f in system.getForces() if type(f).__name__ == "CustomCompoundBondForce"]
    assert len(compound) == 1 and compound[0].getForceGroup() == FORCE_GROUPS["proper"]
    assert compound[0].getNumBonds() == len(molecule.parameters.extra_terms["torsion_coupling"].indices)
    rng = np.random.default_rng(0)
    n = molecule.molecule.n_atoms
    xyz = generate_conformers(molecule.molecule, 2, seed=0) + rng.normal(0, 0.01, (2, n, 3))
    terms = energy_terms(molecule.parameters, torch.tensor(xyz))
    energies, forces = energy_and_forces(molecule.parameters, torch.tensor(xyz))
    for c in range(len(xyz)):
        groups = openmm_group_energies(system, xyz[c])
        for component in ("bond", "angle", "proper", "improper"):
            value = float(getattr(terms, component)[c])
            assert value == pytest.approx(groups.get(FORCE_GROUPS[component], 0.0), abs=1e-3), component
        e_direct, f_direct = openmm_energy_forces(system, xyz[c])
        assert float(energies[c]) == pytest.approx(e_direct, abs=1e-3)
        assert np.linalg.norm(forces[c].numpy() - f_direct) < 1e-5 * np.linalg.norm(f_direct)
    assert "CustomCompoundBondForce" in molecule.to_system_xml()


def test_chains_with_zero_couplings_are_left_out_of_the_system(coupled: ParameterModel) -> None:
    p = parametrize(MOLECULES[2], coupled).parameters
    block = p.extra_terms["torsion_coupling"]
    k_plus = block.k_plus.clone()
    k_minus = block.k_minus.clone()
    k_plus[:5] = 0.0
    k_minus[:5] = 0.0
    k_minus[5, 1] = 0.0  # one zero of four: kept
    (force,) = TORSION_COUPLING.openmm_forces(dataclasses.replace(block, k_plus=k_plus, k_minus=k_minus), p)
    assert force.getNumBonds() == len(block.indices) - 5
    zero = dataclasses.replace(block, k_plus=torch.zeros_like(k_plus), k_minus=torch.zeros_like(k_minus))
    assert TORSION_COUPLING.openmm_forces(zero, p) == []


def test_ffxml_file_wraps_it_and_parmed_exports_refuse_it(coupled: ParameterModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import xml.etree.ElementTree as ET

    from espaloma_like.export.parmed_system import ExportError

    molecule = parametrize("CCCO", coupled)
    # the ffxml file holds the coupling inside the element only espaloma_like reads
    assert 'kinds="torsion_coupling"' in molecule.to_forcefield_xml()
    assert TORSION_COUPLING.system_only and "CustomCompoundBondForce" in TORSION_COUPLING.system_only
    block = molecule.parameters.extra_terms["torsion_coupling"]
    with pytest.raises(NotImplementedError, match="CustomCompoundBondForce"):
        TORSION_COUPLING.write_ffxml(ET.Element("ForceField"), ["c"] * molecule.molecule.n_atoms,
                                     block, molecule.parameters)
    assert molecule.to_openmm_system().getNumParticles() == molecule.molecule.n_atoms
    with pytest.raises(ExportError, match=r"torsion_coupling.*model=.portable."):
        molecule.to_gromacs(tmp_path / "m.top", tmp_path / "m.gro")
    with pytest.raises(ExportError, match=r"torsion_coupling.*model=.portable."):
        molecule.to_amber(tmp_path / "m.prmtop", tmp_path / "m.inpcrd")


def test_batched_equals_one_by_one(coupled: ParameterModel) -> None:
    assert_batched_equals_alone(coupled, "torsion_coupling", MOLECULES,
                                {"k_plus": (1e-6, 1e-9), "k_minus": (1e-6, 1e-9)})


# ----------------------------------------------------------------------------- training


def test_loss_gradients_reach_the_readout(coupled: ParameterModel) -> None:
    assert len(enumerate_terms(from_smiles("CCCO")).torsion_pairs) > 0
    grad = readout_gradient(coupled, "torsion_coupling_readout", "CCCO")
    assert grad is not None and float(grad.abs().sum()) > 0.0


def test_fine_tuning_adds_a_fresh_readout(tmp_path, plain: ParameterModel) -> None:  # type: ignore[no-untyped-def]
    plain, model = fine_tuning_start(plain, "torsion_coupling", tmp_path)
    assert "torsion_coupling" in model.readouts()
    head = model.torsion_coupling_readout.head
    assert not bool(head.weight.any()) and not bool(head.bias.any())
