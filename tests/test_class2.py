"""Class-II cross terms of the angles, an optional kind added through the registry alone: the
analytic form, torch vs OpenMM (System route; the ffxml route refuses it), batching, training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import openmm_energy_forces, openmm_group_energies
from termkind_helpers import assert_batched_equals_alone, fine_tuning_start, readout_gradient

from espaloma_like.api import parametrize
from espaloma_like.export.openmm_system import FORCE_GROUPS
from espaloma_like.mm import energy_and_forces, energy_terms
from espaloma_like.molecule import generate_conformers
from espaloma_like.nn.model import ModelConfig, ParameterModel
from espaloma_like.termkinds import get_kind
from espaloma_like.termkinds.class2 import (
    K_BA_SCALE,
    K_BB_SCALE,
    Class2Parameters,
    angle_bond_lengths,
    class2_energy,
)

PLAIN = ModelConfig(hidden=32, n_layers=2, readout_hidden=32)
WITH_CLASS2 = PLAIN.model_copy(update={"extra_terms": ("class2",)})
# a phosphonate (P, charged), an amide with an aromatic ring, an ammonium, a linear nitrile,
# and a molecule without angles
MOLECULES = ["COP(=O)([O-])c1ccc(Cl)cc1", "CC(=O)Nc1ccc(O)cc1", "C[NH3+]", "CC#N", "N#N"]


@pytest.fixture(scope="module")
def plain() -> ParameterModel:
    torch.manual_seed(2)
    return ParameterModel(PLAIN).double().eval()


@pytest.fixture(scope="module")
def class2(plain: ParameterModel) -> ParameterModel:
    model = ParameterModel(WITH_CLASS2).double().eval()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("class2_readout.") for k in missing)
    torch.manual_seed(3)
    with torch.no_grad():  # non-zero couplings, different per angle, well inside the bounds
        model.class2_readout.head.weight.normal_(0.0, 0.05)
        model.class2_readout.head.bias.normal_(0.0, 0.1)
    return model


def _reference_geometry(p) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """b1, b2 (nm) and theta0 (rad) of every angle, looked up bond by bond in numpy."""
    lengths = {tuple(sorted(b)): r for b, r in zip(p.bonds.indices.tolist(), p.bonds.length.tolist(),
                                                    strict=True)}
    rows = p.angles.indices.tolist()
    b1 = np.array([lengths[tuple(sorted((i, j)))] for i, j, _ in rows])
    b2 = np.array([lengths[tuple(sorted((k, j)))] for _, j, k in rows])
    return b1, b2, p.angles.angle.numpy()


def test_default_config_has_no_class2_and_a_fresh_readout_starts_at_zero() -> None:
    assert ModelConfig().extra_terms == ()
    assert "class2" not in ParameterModel(PLAIN).readouts()
    torch.manual_seed(0)
    fresh = ParameterModel(WITH_CLASS2).double().eval()
    assert "class2" in fresh.readouts()
    molecule = parametrize(MOLECULES[1], fresh)
    block = molecule.parameters.extra_terms["class2"]
    assert isinstance(block, Class2Parameters) and len(block.k_bb) > 0
    assert float(block.k_bb.abs().max()) == 0.0 and float(block.k_ba.abs().max()) == 0.0
    # nothing to export: the System has no cross-term force and the energy is unchanged
    names = [type(f).__name__ for f in molecule.to_openmm_system().getForces()]
    assert "CustomCompoundBondForce" not in names
    xyz = torch.tensor(generate_conformers(molecule.molecule, 1, seed=0))
    without = dataclasses.replace(molecule.parameters, extra_terms={})
    assert torch.equal(energy_terms(molecule.parameters, xyz).angle, energy_terms(without, xyz).angle)


def test_angle_component_adds_the_cross_terms(class2: ParameterModel) -> None:
    molecule = parametrize(MOLECULES[0], class2)
    p = molecule.parameters
    assert p.provenance["extra_terms"] == "class2"
    block = p.extra_terms["class2"]
    assert torch.equal(block.indices, p.angles.indices)
    assert float(block.k_bb.abs().max()) < K_BB_SCALE and float(block.k_ba.abs().max()) < K_BA_SCALE
    for k in (block.k_bb, block.k_ba):  # non-zero, different per angle
        assert float(k.abs().min()) > 0.0 and float(k.std()) > 0.0
    rng = np.random.default_rng(1)
    n = molecule.molecule.n_atoms
    xyz = generate_conformers(molecule.molecule, 2, seed=0) + rng.normal(0, 0.01, (2, n, 3))
    b1, b2, theta0 = _reference_geometry(p)
    i, j, k = p.angles.indices.numpy().T
    r1 = np.linalg.norm(xyz[:, i] - xyz[:, j], axis=-1)
    r2 = np.linalg.norm(xyz[:, k] - xyz[:, j], axis=-1)
    u, v = xyz[:, i] - xyz[:, j], xyz[:, k] - xyz[:, j]
    theta = np.arccos((u * v).sum(-1) / (r1 * r2))
    dr1, dr2, dtheta = r1 - b1, r2 - b2, theta - theta0
    expected = (block.k_bb.numpy() * dr1 * dr2 + block.k_ba.numpy() * (dr1 + dr2) * dtheta).sum(-1)
    assert np.abs(expected).min() > 1e-2  # the perturbation shows
    without = dataclasses.replace(p, extra_terms={})
    with_terms, without_terms = energy_terms(p, torch.tensor(xyz)), energy_terms(without, torch.tensor(xyz))
    assert np.allclose((with_terms.angle - without_terms.angle).numpy(), expected, rtol=1e-9, atol=1e-9)
    for component in ("bond", "proper", "improper", "lj", "coulomb"):
        assert torch.equal(getattr(with_terms, component), getattr(without_terms, component))


def test_bond_lengths_of_an_angle_follow_its_orientation() -> None:
    bonds = torch.tensor([[1, 0], [1, 2], [3, 1]])  # bonds listed in either orientation
    length = torch.tensor([0.10, 0.12, 0.15], dtype=torch.float64)
    angles = torch.tensor([[0, 1, 2], [2, 1, 0], [0, 1, 3]])
    b1, b2 = angle_bond_lengths(bonds, length, angles)
    assert b1.tolist() == [0.10, 0.12, 0.10] and b2.tolist() == [0.12, 0.10, 0.15]
    empty = angle_bond_lengths(bonds, length, torch.zeros((0, 3), dtype=torch.long))
    assert empty[0].shape == (0,) and empty[1].shape == (0,)


def test_zero_at_the_equilibrium_geometry_with_zero_force() -> None:
    b1, b2, theta0 = 0.101, 0.143, 1.91
    xyz = torch.tensor([[[b1, 0.0, 0.0], [0.0, 0.0, 0.0],
                         [b2 * np.cos(theta0), b2 * np.sin(theta0), 0.0]]], dtype=torch.float64,
                       requires_grad=True)
    f64 = {"dtype": torch.float64}
    e = class2_energy(xyz, torch.tensor([[0, 1, 2]]), torch.tensor([-3.0e4], **f64),
                      torch.tensor([700.0], **f64), torch.tensor([b1], **f64),
                      torch.tensor([b2], **f64), torch.tensor([theta0], **f64))
    (grad,) = torch.autograd.grad(e.sum(), xyz)
    assert float(e.detach().abs().max()) < 1e-12 and float(grad.abs().max()) < 1e-9
    # and away from it, both couplings act
    moved = xyz.detach() * torch.tensor([1.05, 1.0, 1.0], **f64)
    assert float(class2_energy(moved, torch.tensor([[0, 1, 2]]), torch.tensor([0.0], **f64),
                               torch.tensor([700.0], **f64), torch.tensor([b1], **f64),
                               torch.tensor([b2], **f64), torch.tensor([theta0], **f64)).abs()) > 0


def test_prior_deviation_is_in_units_of_the_scales() -> None:
    kind = get_kind("class2")
    indices = torch.zeros((2, 3), dtype=torch.long)
    f64 = {"dtype": torch.float64}
    reference = Class2Parameters(indices, torch.tensor([0.0, 0.0], **f64), torch.tensor([0.0, 0.0], **f64))
    predicted = Class2Parameters(indices, torch.tensor([K_BB_SCALE, 0.0], **f64),
                                 torch.tensor([0.0, -2 * K_BA_SCALE], **f64))
    heads = ModelConfig().heads
    assert float(kind.prior_deviation(reference, reference, heads)) == 0.0
    assert float(kind.prior_deviation(predicted, reference, heads)) == pytest.approx(0.5 + 2.0)


@pytest.mark.parametrize("smiles", MOLECULES)
def test_class2_model_matches_the_openmm_system(class2: ParameterModel, smiles: str) -> None:
    import openmm

    molecule = parametrize(smiles, class2)
    system = molecule.to_openmm_system()
    compound = [f for f in system.getForces() if isinstance(f, openmm.CustomCompoundBondForce)]
    n_angles = len(molecule.parameters.angles.indices)
    if n_angles:
        assert len(compound) == 1 and compound[0].getNumBonds() == n_angles
        assert compound[0].getForceGroup() == FORCE_GROUPS["angle"]
    else:
        assert not compound
    restored = openmm.XmlSerializer.deserialize(molecule.to_system_xml())  # the System XML route
    rng = np.random.default_rng(0)
    n = molecule.molecule.n_atoms
    xyz = generate_conformers(molecule.molecule, 2, seed=0) + rng.normal(0, 0.01, (2, n, 3))
    terms = energy_terms(molecule.parameters, torch.tensor(xyz))
    energies, forces = energy_and_forces(molecule.parameters, torch.tensor(xyz))
    for c in range(len(xyz)):
        groups = openmm_group_energies(system, xyz[c])
        assert float(terms.bond[c]) == pytest.approx(groups[FORCE_GROUPS["bond"]], abs=1e-3)
        if n_angles:
            assert float(terms.angle[c]) == pytest.approx(groups[FORCE_GROUPS["angle"]], abs=1e-3)
        e_direct, f_direct = openmm_energy_forces(system, xyz[c])
        e_restored, f_restored = openmm_energy_forces(restored, xyz[c])
        assert float(energies[c]) == pytest.approx(e_direct, abs=1e-3)
        assert np.linalg.norm(forces[c].numpy() - f_direct) < 1e-5 * np.linalg.norm(f_direct)
        assert e_restored == pytest.approx(e_direct, abs=1e-6)
        assert np.abs(f_direct - f_restored).max() < 1e-6


def test_the_ffxml_file_wraps_it(class2: ParameterModel) -> None:
    import xml.etree.ElementTree as ET

    molecule = parametrize("CCO", class2)
    assert 'kinds="class2"' in molecule.to_forcefield_xml()  # wrapped, not plain
    kind = get_kind("class2")
    assert kind.system_only
    with pytest.raises(NotImplementedError, match="CustomCompoundBondForce"):
        kind.write_ffxml(ET.Element("ForceField"), [], molecule.parameters.extra_terms["class2"],
                         molecule.parameters)


def test_constrained_systems_keep_the_cross_terms(class2: ParameterModel) -> None:
    molecule = parametrize(MOLECULES[1], class2)
    system = molecule.to_openmm_system(constraints="HBonds")
    assert any(type(f).__name__ == "CustomCompoundBondForce" for f in system.getForces())
    xyz = generate_conformers(molecule.molecule, 1, seed=0)[0]
    assert np.isfinite(openmm_energy_forces(system, xyz)[0])


def test_batched_equals_one_by_one(class2: ParameterModel) -> None:
    assert_batched_equals_alone(class2, "class2", MOLECULES,
                                {"k_bb": (1e-6, 1e-6), "k_ba": (1e-6, 1e-8)})


def test_fine_tuning_adds_a_fresh_class2_readout(tmp_path, plain: ParameterModel) -> None:  # type: ignore[no-untyped-def]
    plain, model = fine_tuning_start(plain, "class2", tmp_path)
    assert "class2" in model.readouts()
    head = model.class2_readout.head
    assert float(head.weight.detach().abs().max()) == 0.0 and float(head.bias.detach().abs().max()) == 0.0


def test_loss_gradients_reach_the_class2_readout(class2: ParameterModel) -> None:
    grad = readout_gradient(class2, "class2_readout", "CCO")
    assert grad is not None and float(grad.abs().sum()) > 0.0


def test_parmed_exports_refuse_it(class2: ParameterModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from espaloma_like.export.parmed_system import ExportError

    molecule = parametrize("CCO", class2)
    with pytest.raises(ExportError, match=r"class2.*model=.portable."):
        molecule.to_gromacs(tmp_path / "m.top", tmp_path / "m.gro")
    with pytest.raises(ExportError, match=r"class2.*model=.portable."):
        molecule.to_amber(tmp_path / "m.prmtop", tmp_path / "m.inpcrd")
