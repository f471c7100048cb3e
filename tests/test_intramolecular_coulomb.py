"""Learned Coulomb factors within the molecule: the energy is Coulomb with ``f q`` inside the
molecule, the model's charges between molecules; torch vs OpenMM per group and in forces,
together with intramolecular LJ, no ForceField XML form, SystemGenerator with two copies, no
periodic images, batches, the training loss and fine-tuning; head bounds set by a training
config."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

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
from espaloma_like.termkinds import TERM_KINDS
from espaloma_like.termkinds.intramolecular_coulomb import INTRAMOLECULAR_COULOMB
from espaloma_like.units import ONE_4PI_EPS0

PLAIN = ModelConfig(hidden=32, n_layers=2, readout_hidden=32)
COULOMB = PLAIN.model_copy(update={"extra_terms": ("intramolecular_coulomb",)})
BOTH = PLAIN.model_copy(update={"extra_terms": ("intramolecular_lj", "intramolecular_coulomb")})
MOLECULES = ["COP(=O)([O-])c1ccc(Cl)cc1", "C[NH2+]CC(=O)[O-]", "CC(=O)Nc1ccc(O)cc1", "C[NH3+]",
             "N#N"]


@pytest.fixture(scope="module")
def plain() -> ParameterModel:
    torch.manual_seed(2)
    return ParameterModel(PLAIN).double().eval()


def _grafted(plain: ParameterModel, config: ModelConfig, seed: int = 4) -> ParameterModel:
    """``plain`` with the new kinds' readouts drawn from ``seed`` (factors well away from 1)."""
    model = ParameterModel(config).double().eval()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    readouts = tuple(f"{name}_readout." for name in config.extra_terms)
    assert not unexpected and missing and all(k.startswith(readouts) for k in missing)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in config.extra_terms:
            for tensor in getattr(model, f"{name}_readout").parameters():
                tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype) * 0.5)
    return model


@pytest.fixture(scope="module")
def coulomb(plain: ParameterModel) -> ParameterModel:
    return _grafted(plain, COULOMB)


@pytest.fixture(scope="module")
def both(plain: ParameterModel) -> ParameterModel:
    return _grafted(plain, BOTH)


def _conformers(molecule, n: int = 2) -> np.ndarray:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    graph = molecule.molecule
    conformers = generate_conformers(graph, n, seed=0)
    return conformers[np.arange(n) % len(conformers)] + rng.normal(0, 0.01, (n, graph.n_atoms, 3))


def test_registered_last_as_a_system_only_per_atom_kind() -> None:
    assert list(TERM_KINDS)[-1] == "intramolecular_coulomb"  # appended
    kind = INTRAMOLECULAR_COULOMB
    assert kind.optional and kind.terms == "atoms" and kind.arity == 1 and kind.zero_start
    assert kind.component == "coulomb" and kind.force_group == FORCE_GROUPS["nonbonded"]
    assert kind.system_only is not None and "same molecule" in kind.system_only
    with pytest.raises(ValueError, match="1-4 Coulomb"):
        ModelConfig(extra_terms=("scaled_14", "intramolecular_coulomb"))


def _coulomb_with(charges: np.ndarray, p, xyz: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    """Vacuum Coulomb of the non-excluded pairs of ``p`` with ``charges`` (numpy), kJ/mol."""
    nb = p.nonbonded
    total = 0.0
    for pairs, scale in ((nb.pairs_full.numpy(), 1.0), (nb.pairs_14.numpy(), nb.coulomb_14_scale)):
        pairs = pairs.reshape(-1, 2)
        r = np.linalg.norm(xyz[pairs[:, 0]] - xyz[pairs[:, 1]], axis=-1)
        total += float((scale * ONE_4PI_EPS0 * charges[pairs[:, 0]] * charges[pairs[:, 1]] / r).sum())
    return total


@pytest.mark.parametrize("smiles", MOLECULES)
def test_within_the_molecule_the_charges_act_as_f_q(coulomb: ParameterModel, plain: ParameterModel,
                                                    smiles: str) -> None:
    a = parametrize(smiles, coulomb)
    base = parametrize(smiles, plain)
    block = a.parameters.extra_terms["intramolecular_coulomb"]
    assert "within the molecule Coulomb scaled" in a.parameters.provenance["charges"]
    assert torch.equal(a.parameters.nonbonded.charges, base.parameters.nonbonded.charges)
    factor = block.factor.numpy()
    assert np.all((factor >= np.exp(-0.3) - 1e-12) & (factor <= np.exp(0.3) + 1e-12))
    if a.molecule.n_atoms > 3:
        assert np.ptp(factor) > 1e-3  # the seed moves them
    xyz = _conformers(a, 2)
    ta, tb = energy_terms(a.parameters, torch.tensor(xyz)), energy_terms(base.parameters, torch.tensor(xyz))
    q = a.charges
    for c in range(len(xyz)):
        expected = _coulomb_with(q * factor, a.parameters, xyz[c])
        assert float(ta.coulomb[c]) == pytest.approx(expected, rel=1e-9, abs=1e-8)
    for component in ("bond", "angle", "proper", "improper", "lj"):
        assert torch.equal(getattr(ta, component), getattr(tb, component)), component


def test_a_fresh_readout_adds_no_force_and_no_energy(plain: ParameterModel) -> None:
    import openmm

    model = ParameterModel(COULOMB).double().eval()
    model.load_state_dict(plain.state_dict(), strict=False)
    for smiles in MOLECULES[:3]:
        with_kind = parametrize(smiles, model)
        without_kind = parametrize(smiles, plain)
        assert torch.equal(with_kind.parameters.extra_terms["intramolecular_coulomb"].factor,
                           torch.ones(with_kind.molecule.n_atoms, dtype=torch.float64))
        assert (openmm.XmlSerializer.serialize(with_kind.to_openmm_system())
                == openmm.XmlSerializer.serialize(without_kind.to_openmm_system()))


@pytest.mark.parametrize("smiles", MOLECULES[:3])
@pytest.mark.parametrize("which", ["coulomb", "both"])
def test_matches_openmm_per_group_and_in_forces(coulomb: ParameterModel, both: ParameterModel,
                                                smiles: str, which: str) -> None:
    molecule = parametrize(smiles, coulomb if which == "coulomb" else both)
    p = molecule.parameters
    system = molecule.to_openmm_system()
    xyz = _conformers(molecule)
    terms = energy_terms(p, torch.tensor(xyz))
    energies, forces = energy_and_forces(p, torch.tensor(xyz))
    for c in range(len(xyz)):
        groups = openmm_group_energies(system, xyz[c])
        assert float(terms.lj[c] + terms.coulomb[c]) == pytest.approx(
            groups[FORCE_GROUPS["nonbonded"]], abs=1e-3)
        e_openmm, f_openmm = openmm_energy_forces(system, xyz[c])
        assert float(energies[c]) == pytest.approx(e_openmm, abs=1e-3)
        assert np.linalg.norm(forces[c].numpy() - f_openmm) < 1e-5 * max(1.0, np.linalg.norm(f_openmm))


def test_between_molecules_the_charges_are_the_models(coulomb: ParameterModel) -> None:
    import openmm.app as app

    from espaloma_like.export.system_generator import SystemGenerator

    smiles = MOLECULES[1]
    molecule = parametrize(smiles, coulomb)
    single = molecule.to_openmm_topology("LIG")
    topology = app.Topology()
    chain = topology.addChain()
    for _ in range(2):
        residue = topology.addResidue("LIG", chain)
        atoms = {a: topology.addAtom(a.name, a.element, residue) for a in single.atoms()}
        for x, y in single.bonds():
            topology.addBond(atoms[x], atoms[y])
    generator = SystemGenerator(["amber14/tip3p.xml"], small_molecule_forcefield=coulomb,
                                molecules=[smiles])
    system = generator.create_system(topology)
    xyz = _conformers(molecule, 1)[0]
    moved = xyz + np.array([0.6, 0.1, 0.2])
    both_energy, _ = openmm_energy_forces(system, np.vstack([xyz, moved]))
    alone = sum(openmm_energy_forces(molecule.to_openmm_system(), x)[0] for x in (xyz, moved))
    p = molecule.parameters.nonbonded
    q, sigma, eps = molecule.charges, p.sigma.numpy(), p.epsilon.numpy()
    r = np.linalg.norm(xyz[:, None] - moved[None], axis=-1)
    sig, ep = 0.5 * (sigma[:, None] + sigma[None]), np.sqrt(eps[:, None] * eps[None])
    between = float((ONE_4PI_EPS0 * q[:, None] * q[None] / r
                     + 4 * ep * ((sig / r) ** 12 - (sig / r) ** 6)).sum())
    assert both_energy - alone == pytest.approx(between, abs=1e-4)


def test_correction_uses_no_periodic_images(coulomb: ParameterModel) -> None:
    import openmm

    molecule = parametrize(MOLECULES[0], coulomb)
    system = molecule.to_openmm_system(nonbonded_method="PME", nonbonded_cutoff=1.0,
                                       box_vectors=np.diag([3.0, 3.0, 3.0]))
    (custom,) = [f for f in system.getForces() if isinstance(f, openmm.CustomBondForce)]
    assert custom.usesPeriodicBoundaryConditions() is False
    only = openmm.System()
    for i in range(system.getNumParticles()):
        only.addParticle(system.getParticleMass(i))
    only.addForce(openmm.XmlSerializer.clone(custom))
    xyz = _conformers(molecule, 1)[0] + 1.5
    block = molecule.parameters.extra_terms["intramolecular_coulomb"]
    torch_e = float(INTRAMOLECULAR_COULOMB.energy(block, molecule.parameters,
                                                  torch.tensor(xyz[None])).sum())
    assert openmm_energy_forces(only, xyz)[0] == pytest.approx(torch_e, abs=1e-6)
    shifted = xyz.copy()
    shifted[0, 0] += 3.0  # one atom moved by a box vector: far away for the correction
    assert abs(openmm_energy_forces(only, shifted)[0] - torch_e) > 1e-3


def test_forcefield_xml_wraps_it_and_parmed_refuses_it(coulomb: ParameterModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from espaloma_like.export.parmed_system import ExportError

    molecule = parametrize(MOLECULES[2], coulomb)
    assert 'kinds="intramolecular_coulomb"' in molecule.to_forcefield_xml()  # wrapped, not plain
    with pytest.raises(NotImplementedError, match="same molecule only"):
        INTRAMOLECULAR_COULOMB.write_ffxml(ET.Element("ForceField"), [], molecule.parameters.extra_terms[
            "intramolecular_coulomb"], molecule.parameters)
    with pytest.raises(ExportError, match=r"model=.portable."):
        molecule.to_gromacs(tmp_path / "m.top", tmp_path / "m.gro")
    assert not any(tmp_path.iterdir())


def test_batched_equals_one_by_one_and_put_checks_the_atoms(coulomb: ParameterModel) -> None:
    assert_batched_equals_alone(coulomb, "intramolecular_coulomb", MOLECULES, {"factor": (1e-6, 1e-8)})
    p = parametrize(MOLECULES[1], coulomb).parameters
    block = p.extra_terms["intramolecular_coulomb"]
    with pytest.raises(ValueError, match="one per atom"):
        INTRAMOLECULAR_COULOMB.put(p, dataclasses.replace(block, indices=block.indices[:-1]))
    assert float(INTRAMOLECULAR_COULOMB.prior_deviation(block, block, PLAIN.heads)) == 0.0
    ones = dataclasses.replace(block, factor=torch.ones_like(block.factor))
    expected = float((torch.log(block.factor) ** 2).mean())
    assert float(INTRAMOLECULAR_COULOMB.prior_deviation(block, ones, PLAIN.heads)) == pytest.approx(expected)


def test_loss_gradients_reach_the_readout(coulomb: ParameterModel) -> None:
    grad = readout_gradient(coulomb, "intramolecular_coulomb_readout", "C[NH2+]CC(=O)[O-]")
    assert grad is not None and float(grad.abs().sum()) > 0.0


def test_fine_tuning_adds_a_fresh_readout_at_factor_one(tmp_path, plain: ParameterModel) -> None:  # type: ignore[no-untyped-def]
    _, model = fine_tuning_start(plain, "intramolecular_coulomb", tmp_path)
    block = parametrize("CC(=O)Nc1ccc(O)cc1", model).parameters.extra_terms["intramolecular_coulomb"]
    assert torch.equal(block.factor, torch.ones_like(block.factor))


def test_a_training_config_sets_head_bounds(tmp_path, plain: ParameterModel) -> None:  # type: ignore[no-untyped-def]
    import copy

    from pydantic import ValidationError

    from espaloma_like.nn.checkpoint import save_checkpoint
    from espaloma_like.training.config import DataConfig, TrainConfig
    from espaloma_like.training.trainer import build_model

    path = save_checkpoint(copy.deepcopy(plain).float(), tmp_path / "start.pt")
    data = DataConfig(train_files=("unused.h5",))
    config = TrainConfig(data=data, init_from=str(path), extra_terms=("intramolecular_lj",),
                         heads={"lj_sigma_log_bound": 0.25}, proper_k_threshold=0.5)
    heads = build_model(config).config.heads
    assert heads.lj_sigma_log_bound == 0.25 and heads.proper_k_threshold == 0.5
    assert heads.lj_epsilon_log_bound == PLAIN.heads.lj_epsilon_log_bound
    with pytest.raises(ValidationError, match="not_a_head"):
        build_model(config.model_copy(update={"heads": {"not_a_head": 1.0}}))
    with pytest.raises(ValidationError, match="lj_sigma_log_bound"):
        build_model(config.model_copy(update={"heads": {"lj_sigma_log_bound": 0.0}}))
