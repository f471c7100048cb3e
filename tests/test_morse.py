"""Morse bonds, the optional kind added through the registry alone: torch vs OpenMM, both routes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import openmm_energy_forces, openmm_group_energies
from termkind_helpers import readout_gradient

from espaloma_like.api import parametrize, parametrize_many
from espaloma_like.export.openmm_system import FORCE_GROUPS
from espaloma_like.mm import energy_and_forces, energy_terms
from espaloma_like.molecule import generate_conformers
from espaloma_like.nn.model import ModelConfig, ParameterModel
from espaloma_like.termkinds.morse import DEPTH_FLOOR, DEPTH_SCALE, MorseParameters

PLAIN = ModelConfig(hidden=32, n_layers=2, readout_hidden=32)
MOLECULES = ["COP(=O)([O-])c1ccc(Cl)cc1", "CC(=O)Nc1ccc(O)cc1", "C[NH3+]", "N#N"]


@pytest.fixture(scope="module")
def plain() -> ParameterModel:
    torch.manual_seed(2)
    return ParameterModel(PLAIN).double().eval()


@pytest.fixture(scope="module")
def morse(plain: ParameterModel) -> ParameterModel:
    model = ParameterModel(PLAIN.model_copy(update={"extra_terms": ("morse",)})).double().eval()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("morse_readout.") for k in missing)
    with torch.no_grad():  # shallow wells and different depths per bond: anharmonicity shows
        model.morse_readout.head.weight.normal_(0.0, 0.5)
        model.morse_readout.head.bias.fill_(-2.0)
    return model


def test_default_config_has_no_morse_and_a_fresh_readout_starts_at_one_depth() -> None:
    assert ModelConfig().extra_terms == ()
    torch.manual_seed(0)
    fresh = ParameterModel(PLAIN.model_copy(update={"extra_terms": ("morse",)})).double().eval()
    depth = parametrize("CCO", fresh).parameters.extra_terms["morse"].depth
    # softplus(0.5413) = 1 to 2e-5, the offset of the bond and angle heads
    assert torch.allclose(depth, torch.full_like(depth, DEPTH_FLOOR + DEPTH_SCALE), rtol=1e-4)
    assert float(depth.max() - depth.min()) == 0.0


def test_bond_component_is_the_morse_potential(morse: ParameterModel) -> None:
    molecule = parametrize(MOLECULES[0], morse)
    p = molecule.parameters
    assert p.provenance["extra_terms"] == "morse"
    assert '<Reference key="extra_terms">morse</Reference>' in molecule.to_forcefield_xml()
    block = p.extra_terms["morse"]
    assert isinstance(block, MorseParameters)
    assert torch.equal(block.indices, p.bonds.indices)
    assert float(block.depth.min()) > DEPTH_FLOOR and float(block.depth.std()) > 1.0
    xyz = torch.tensor(generate_conformers(molecule.molecule, 2, seed=0)) * 1.04  # stretched
    r = (xyz[:, p.bonds.indices[:, 1]] - xyz[:, p.bonds.indices[:, 0]]).norm(dim=-1)
    a = torch.sqrt(p.bonds.k / (2 * block.depth))
    expected = (block.depth * (1 - torch.exp(-a * (r - p.bonds.length))) ** 2).sum(-1)
    assert torch.allclose(energy_terms(p, xyz).bond, expected, rtol=1e-12, atol=1e-9)
    # softer than the harmonic bond when stretched, stiffer when compressed
    dr = r - p.bonds.length
    morse_terms = block.depth * (1 - torch.exp(-a * dr)) ** 2
    harmonic_terms = 0.5 * p.bonds.k * dr**2
    assert bool((morse_terms < harmonic_terms)[dr > 0.001].all())
    assert bool((morse_terms > harmonic_terms)[dr < -0.001].all())
    assert bool((dr > 0.001).any()) and bool((dr < -0.001).any())


def test_zero_at_the_rest_length_with_zero_force() -> None:
    from espaloma_like.parameters import BondParameters
    from espaloma_like.termkinds.morse import morse_correction_energy

    bonds = BondParameters(torch.tensor([[0, 1]]), torch.tensor([3.0e5], dtype=torch.float64),
                           torch.tensor([0.1], dtype=torch.float64))
    xyz = torch.tensor([[[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]]], dtype=torch.float64, requires_grad=True)
    e = morse_correction_energy(xyz, torch.tensor([300.0], dtype=torch.float64), bonds)
    (grad,) = torch.autograd.grad(e.sum(), xyz)
    assert float(e.detach().abs().max()) < 1e-12 and float(grad.abs().max()) < 1e-9


@pytest.mark.parametrize("smiles", MOLECULES)
def test_morse_model_matches_openmm_system_and_ffxml(morse: ParameterModel, smiles: str) -> None:
    import openmm.app as app

    molecule = parametrize(smiles, morse)
    system = molecule.to_openmm_system()
    forcefield = app.ForceField(io.StringIO(molecule.to_forcefield_xml()))
    via_ffxml = forcefield.createSystem(molecule.to_openmm_topology(), nonbondedMethod=app.NoCutoff,
                                        constraints=None, removeCMMotion=False)
    assert sum(type(f).__name__ == "CustomBondForce" for f in via_ffxml.getForces()) == 1
    rng = np.random.default_rng(0)
    n = molecule.molecule.n_atoms
    xyz = generate_conformers(molecule.molecule, 2, seed=0) + rng.normal(0, 0.01, (2, n, 3))
    terms = energy_terms(molecule.parameters, torch.tensor(xyz))
    energies, forces = energy_and_forces(molecule.parameters, torch.tensor(xyz))
    for c in range(len(xyz)):
        groups = openmm_group_energies(system, xyz[c])
        assert float(terms.bond[c]) == pytest.approx(groups[FORCE_GROUPS["bond"]], abs=1e-3)
        assert float(terms.angle[c]) == pytest.approx(groups[FORCE_GROUPS["angle"]], abs=1e-3)
        e_direct, f_direct = openmm_energy_forces(system, xyz[c])
        e_ffxml, f_ffxml = openmm_energy_forces(via_ffxml, xyz[c])
        assert float(energies[c]) == pytest.approx(e_direct, abs=1e-3)
        assert np.linalg.norm(forces[c].numpy() - f_direct) < 1e-5 * np.linalg.norm(f_direct)
        assert e_ffxml == pytest.approx(e_direct, abs=1e-6)
        assert np.abs(f_direct - f_ffxml).max() < 1e-6


def test_batched_equals_one_by_one(morse: ParameterModel) -> None:
    many = parametrize_many(MOLECULES, model=morse, batch_size=3)
    for smiles, result in zip(MOLECULES, many, strict=True):
        alone = parametrize(smiles, morse).parameters.extra_terms["morse"].depth
        assert torch.allclose(result.parameters.extra_terms["morse"].depth, alone, rtol=1e-6)


def test_constrained_bonds_feel_no_morse_term(morse: ParameterModel) -> None:
    molecule = parametrize(MOLECULES[1], morse)
    system = molecule.to_openmm_system(constraints="HBonds")
    xyz = generate_conformers(molecule.molecule, 1, seed=0)[0]
    assert np.isfinite(openmm_energy_forces(system, xyz)[0])


def test_fine_tuning_adds_a_fresh_morse_readout(tmp_path, plain: ParameterModel) -> None:  # type: ignore[no-untyped-def]
    import copy

    from espaloma_like.nn.checkpoint import save_checkpoint
    from espaloma_like.training.config import DataConfig, TrainConfig
    from espaloma_like.training.trainer import build_model

    plain = copy.deepcopy(plain).float()
    start = save_checkpoint(plain, tmp_path / "start.pt")
    config = TrainConfig(data=DataConfig(train_files=("unused.h5",)), init_from=str(start),
                         extra_terms=("morse",))
    model = build_model(config)
    assert model.config.extra_terms == ("morse",)
    for key, value in plain.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    assert "morse" in model.readouts()
    with pytest.raises(ValueError, match="optional term kinds"):
        build_model(config.model_copy(update={"extra_terms": ("cmap",)}))


def test_loss_gradients_reach_the_morse_readout(morse: ParameterModel) -> None:
    grad = readout_gradient(morse, "morse_readout", "CCO")
    assert grad is not None and float(grad.abs().sum()) > 0.0


def test_parmed_exports_refuse_it(morse: ParameterModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from espaloma_like.exceptions import EspalomaLikeError

    molecule = parametrize("CCO", morse)
    with pytest.raises(EspalomaLikeError, match="the System has CustomBondForce"):
        molecule.to_gromacs(tmp_path / "m.top", tmp_path / "m.gro")
