"""Learned Lennard-Jones with Sage as the prior, an optional kind whose values live in the
nonbonded block: exactly Sage's at a fresh readout, bounded per-atom factors otherwise, torch vs
OpenMM on both export routes (System and ForceField XML, template generator, SystemGenerator,
GROMACS), atom order, batches, the training loss and fine-tuning."""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from conftest import openmm_energy_forces, openmm_group_energies
from termkind_helpers import fine_tuning_start, readout_gradient

from espaloma_like.api import parametrize, parametrize_many
from espaloma_like.export.openmm_system import FORCE_GROUPS
from espaloma_like.mm import energy_and_forces, energy_terms
from espaloma_like.molecule import from_rdkit, from_smiles, generate_conformers
from espaloma_like.nn.model import ModelConfig, ParameterModel
from espaloma_like.parameters import ParameterSet
from espaloma_like.termkinds import TERM_KINDS
from espaloma_like.termkinds.learned_lj import (
    EPSILON_SCALE,
    LEARNED_LJ,
    SIGMA_SCALE,
    LearnedLJParameters,
)

PLAIN = ModelConfig(hidden=32, n_layers=2, readout_hidden=32)
LEARNED = PLAIN.model_copy(update={"extra_terms": ("learned_lj",)})
#: charged groups (phosphonate, zwitterion, ammonium), neutral ones, and N2 (two atoms)
MOLECULES = ["COP(=O)([O-])c1ccc(Cl)cc1", "C[NH2+]CC(=O)[O-]", "CC(=O)Nc1ccc(O)cc1", "C[NH3+]",
             "N#N"]


@pytest.fixture(scope="module")
def plain() -> ParameterModel:
    torch.manual_seed(2)
    return ParameterModel(PLAIN).double().eval()


@pytest.fixture(scope="module")
def learned(plain: ParameterModel) -> ParameterModel:
    model = ParameterModel(LEARNED).double().eval()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("learned_lj_readout.") for k in missing)
    with torch.no_grad():  # factors well away from 1, different per atom
        model.learned_lj_readout.head.weight.normal_(0.0, 0.5)
        model.learned_lj_readout.head.bias.normal_(0.0, 0.5)
    return model


def _conformers(molecule, n: int = 2) -> np.ndarray:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    graph = molecule.molecule
    conformers = generate_conformers(graph, n, seed=0)  # may be fewer than n: pruned
    return conformers[np.arange(n) % len(conformers)] + rng.normal(0, 0.01, (n, graph.n_atoms, 3))


def _numpy_lj(p: ParameterSet, xyz: np.ndarray, sigma: np.ndarray, epsilon: np.ndarray) -> np.ndarray:
    """Independent reference: LJ (C,) of every full pair and the scaled 1-4 pairs."""
    nb = p.nonbonded

    def pair_energy(pairs: np.ndarray, scale: float) -> np.ndarray:
        i, j = pairs[:, 0], pairs[:, 1]
        r = np.linalg.norm(xyz[:, j] - xyz[:, i], axis=-1)
        sig = 0.5 * (sigma[i] + sigma[j])
        eps = np.sqrt(epsilon[i] * epsilon[j])
        return scale * (4.0 * eps * ((sig / r) ** 12 - (sig / r) ** 6)).sum(-1)

    return pair_energy(nb.pairs_full.numpy(), 1.0) + pair_energy(nb.pairs_14.numpy(), nb.lj_14_scale)


def _ffxml_system(molecule):  # type: ignore[no-untyped-def]
    import openmm.app as app

    forcefield = app.ForceField(io.StringIO(molecule.to_forcefield_xml()))
    system = forcefield.createSystem(molecule.to_openmm_topology(), nonbondedMethod=app.NoCutoff,
                                     constraints=None, removeCMMotion=False)
    for force in system.getForces():  # the ffxml route sets no groups: the nonbonded apart
        force.setForceGroup(FORCE_GROUPS["nonbonded"] if type(force).__name__ == "NonbondedForce" else 0)
    return system


def _serialized(molecule) -> str:  # type: ignore[no-untyped-def]
    """The System as OpenMM serializes it (no provenance comment)."""
    import openmm

    return str(openmm.XmlSerializer.serialize(molecule.to_openmm_system()))


def _particle_lj(system) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    import openmm
    from openmm import unit

    force = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    rows = [force.getParticleParameters(i) for i in range(force.getNumParticles())]
    return (np.array([s.value_in_unit(unit.nanometer) for _, s, _ in rows]),
            np.array([e.value_in_unit(unit.kilojoule_per_mole) for _, _, e in rows]))


def test_registered_last_as_an_optional_per_atom_kind_exportable_both_ways() -> None:
    names = list(TERM_KINDS)  # appended after every older kind: fresh models unchanged
    assert names.index("learned_lj") == names.index("torsion_coupling") + 1
    assert LEARNED_LJ.optional and LEARNED_LJ.terms == "atoms" and LEARNED_LJ.arity == 1
    assert LEARNED_LJ.permutations == ((0,),)
    assert LEARNED_LJ.component == "lj" and LEARNED_LJ.force_group == FORCE_GROUPS["nonbonded"] == 4
    assert LEARNED_LJ.system_only is None
    assert ModelConfig().extra_terms == () and not LEARNED_LJ.enabled(ModelConfig())
    assert LEARNED_LJ.enabled(LEARNED)
    assert 0.0 < SIGMA_SCALE <= 0.1 and 0.0 < EPSILON_SCALE <= 0.5
    # the default head bounds are these constants (checkpoints without the fields load with them)
    assert ModelConfig().heads.lj_sigma_log_bound == SIGMA_SCALE
    assert ModelConfig().heads.lj_epsilon_log_bound == EPSILON_SCALE


def test_atom_terms_are_batched_and_sages_lj_stays_float64() -> None:
    from espaloma_like.nn.batch import collate, prepare_molecule
    from espaloma_like.terms import enumerate_terms

    terms = enumerate_terms(from_smiles("CCO"))
    assert terms.atoms.dtype == np.int64 and np.array_equal(terms.atoms[:, 0], np.arange(9))
    prepared = [prepare_molecule(from_smiles(s), PLAIN.atom_features, PLAIN.bond_features)
                for s in ("CCO", "N#N", "c1ccncc1")]
    batch = collate(prepared).to(dtype=torch.float32)
    assert batch.term_offsets["atoms"] == batch.atom_offsets
    assert torch.equal(batch.atoms[:, 0], torch.arange(batch.atom_features.shape[0]))
    assert batch.atom_features.dtype == torch.float32
    assert batch.sigma.dtype == batch.epsilon.dtype == torch.float64  # the exact prior
    assert np.array_equal(batch.sigma.numpy(), np.concatenate([m.sigma for m in prepared]))


def test_a_fresh_readout_gives_exactly_sages_values(plain: ParameterModel) -> None:
    for dtype in (torch.float64, torch.float32):  # load_model's inference runs in float32
        torch.manual_seed(0)
        fresh = ParameterModel(LEARNED).to(dtype).eval()
        torch.manual_seed(0)
        without = ParameterModel(PLAIN).to(dtype).eval()
        for smiles in MOLECULES[:2]:
            p = parametrize(smiles, fresh).parameters
            sage = parametrize(smiles, without).parameters.nonbonded
            block = p.extra_terms["learned_lj"]
            assert isinstance(block, LearnedLJParameters)
            assert block.sigma.dtype == torch.float64
            assert torch.equal(block.sigma, sage.sigma) and torch.equal(block.epsilon, sage.epsilon)
            assert torch.equal(p.nonbonded.sigma, sage.sigma)
            assert torch.equal(p.nonbonded.epsilon, sage.epsilon)
    # grafted onto a trained model: the very System of the plain model, energies to the bit
    model = ParameterModel(LEARNED).double().eval()
    model.load_state_dict(plain.state_dict(), strict=False)
    for smiles in MOLECULES:
        with_kind = parametrize(smiles, model)
        without_kind = parametrize(smiles, plain)
        assert _serialized(with_kind) == _serialized(without_kind)
        xyz = torch.tensor(_conformers(without_kind))
        assert torch.equal(energy_terms(with_kind.parameters, xyz).total,
                           energy_terms(without_kind.parameters, xyz).total)


def test_values_move_within_the_bounds_and_equivalent_atoms_are_equal(
        learned: ParameterModel, plain: ParameterModel) -> None:
    for smiles in MOLECULES:
        result = parametrize(smiles, learned)
        p = result.parameters
        sage = parametrize(smiles, plain).parameters.nonbonded
        assert p.provenance["extra_terms"] == "learned_lj" and "learned" in p.provenance["lj"]
        block = p.extra_terms["learned_lj"]
        n = result.molecule.n_atoms
        assert torch.equal(block.indices, torch.arange(n)[:, None])
        assert p.nonbonded.sigma is block.sigma and p.nonbonded.epsilon is block.epsilon
        log_sigma = torch.log(block.sigma / sage.sigma)
        log_epsilon = torch.log(block.epsilon / sage.epsilon)
        assert float(log_sigma.abs().max()) <= SIGMA_SCALE + 1e-12
        assert float(log_epsilon.abs().max()) <= EPSILON_SCALE + 1e-12
        assert float(log_sigma.abs().min()) > 1e-3 and float(log_epsilon.abs().min()) > 1e-3
        classes = result.molecule.symmetry_classes
        for c in np.unique(classes):  # equivalent atoms: identical values, to the bit
            members = torch.as_tensor(np.flatnonzero(classes == c))
            assert len(torch.unique(block.sigma[members])) == 1
            assert len(torch.unique(block.epsilon[members])) == 1
    acetate = parametrize("CC(=O)[O-]", learned).parameters.nonbonded  # resonance-equivalent O
    assert acetate.sigma[2] == acetate.sigma[3] and acetate.epsilon[2] == acetate.epsilon[3]


@pytest.mark.parametrize("smiles", MOLECULES[:3])
def test_lj_component_is_the_lj_of_the_learned_values(learned: ParameterModel, plain: ParameterModel,
                                                      smiles: str) -> None:
    molecule = parametrize(smiles, learned)
    p = molecule.parameters
    block = p.extra_terms["learned_lj"]
    xyz = _conformers(molecule, 3)
    terms = energy_terms(p, torch.tensor(xyz))
    assert float(LEARNED_LJ.energy(block, p, torch.tensor(xyz)).abs().max()) == 0.0
    expected = _numpy_lj(p, xyz, block.sigma.numpy(), block.epsilon.numpy())
    assert np.allclose(terms.lj.numpy(), expected, rtol=1e-10, atol=1e-8)
    # and Sage's values give another energy; the other components do not see the kind
    sage = parametrize(smiles, plain).parameters.nonbonded
    assert np.abs(terms.lj.numpy() - _numpy_lj(p, xyz, sage.sigma.numpy(), sage.epsilon.numpy())).min() > 0.1
    without = dataclasses.replace(p, extra_terms={})
    reference = energy_terms(without, torch.tensor(xyz))
    for component in ("bond", "angle", "proper", "improper", "lj", "coulomb"):
        assert torch.equal(getattr(terms, component), getattr(reference, component)), component


@pytest.mark.parametrize("smiles", MOLECULES)
def test_matches_openmm_system_and_ffxml_per_group_and_in_forces(learned: ParameterModel,
                                                                 smiles: str) -> None:
    molecule = parametrize(smiles, learned)
    p = molecule.parameters
    system = molecule.to_openmm_system()
    via_ffxml = _ffxml_system(molecule)
    for route in (system, via_ffxml):
        sigma, epsilon = _particle_lj(route)
        assert np.array_equal(sigma, p.nonbonded.sigma.numpy())
        assert np.array_equal(epsilon, p.nonbonded.epsilon.numpy())
    xyz = _conformers(molecule)
    terms = energy_terms(p, torch.tensor(xyz))
    energies, forces = energy_and_forces(p, torch.tensor(xyz))
    for c in range(len(xyz)):
        groups = openmm_group_energies(system, xyz[c])
        for component in ("bond", "angle", "proper", "improper"):
            assert float(getattr(terms, component)[c]) == pytest.approx(
                groups.get(FORCE_GROUPS[component], 0.0), abs=1e-3), component
        nonbonded = float(terms.lj[c] + terms.coulomb[c])
        assert nonbonded == pytest.approx(groups[FORCE_GROUPS["nonbonded"]], abs=1e-3)
        assert nonbonded == pytest.approx(
            openmm_group_energies(via_ffxml, xyz[c])[FORCE_GROUPS["nonbonded"]], abs=1e-3)
        for route in (system, via_ffxml):
            e_openmm, f_openmm = openmm_energy_forces(route, xyz[c])
            assert float(energies[c]) == pytest.approx(e_openmm, abs=1e-3)
            assert np.linalg.norm(forces[c].numpy() - f_openmm) < 1e-5 * np.linalg.norm(f_openmm)


def test_ffxml_nonbonded_atom_types_carry_the_learned_values(learned: ParameterModel) -> None:
    molecule = parametrize(MOLECULES[0], learned)
    p = molecule.parameters
    root = ET.fromstring(molecule.to_forcefield_xml())
    atoms = root.findall("NonbondedForce/Atom")
    types = [t.get("name") for t in root.findall("AtomTypes/Type")]
    assert [a.get("type") for a in atoms] == types  # one type per atom, in atom order
    assert [float(a.get("sigma", "nan")) for a in atoms] == p.nonbonded.sigma.tolist()
    assert [float(a.get("epsilon", "nan")) for a in atoms] == p.nonbonded.epsilon.tolist()
    references = {r.get("key"): r.text for r in root.findall("Info/Reference")}
    assert references["extra_terms"] == "learned_lj" and "learned" in (references["lj"] or "")
    # the kind writes no element of its own; the System has no extra force
    assert [e.tag for e in root] == [e.tag for e in ET.fromstring(
        parametrize(MOLECULES[0], ParameterModel(PLAIN).double().eval()).to_forcefield_xml())]
    assert LEARNED_LJ.openmm_forces(p.extra_terms["learned_lj"], p) == []


def test_system_generator_and_template_generator_use_the_learned_values(learned: ParameterModel) -> None:
    from espaloma_like.export.system_generator import SystemGenerator

    smiles = MOLECULES[2]
    molecule = parametrize(smiles, learned)
    generator = SystemGenerator(["amber14/tip3p.xml"], small_molecule_forcefield=learned,
                                molecules=[smiles])
    system = generator.create_system(molecule.to_openmm_topology("LIG"))
    sigma, epsilon = _particle_lj(system)
    assert np.array_equal(sigma, molecule.parameters.nonbonded.sigma.numpy())
    assert np.array_equal(epsilon, molecule.parameters.nonbonded.epsilon.numpy())
    xyz = _conformers(molecule, 1)[0]
    e_generator, _ = openmm_energy_forces(system, xyz)
    e_own, _ = openmm_energy_forces(molecule.to_openmm_system(), xyz)
    assert e_generator == pytest.approx(e_own, rel=1e-6, abs=1e-5)


def test_gromacs_files_hold_the_learned_values(learned: ParameterModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import openmm.app as app

    molecule = parametrize(MOLECULES[2], learned)
    xyz = _conformers(molecule, 1)[0]
    molecule.to_gromacs(tmp_path / "m.top", tmp_path / "m.gro", positions=xyz)
    read = app.GromacsTopFile(str(tmp_path / "m.top")).createSystem(
        nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    sigma, epsilon = _particle_lj(read)
    assert np.allclose(sigma, molecule.parameters.nonbonded.sigma.numpy(), rtol=1e-5)
    assert np.allclose(epsilon, molecule.parameters.nonbonded.epsilon.numpy(), rtol=1e-5)
    e_file, _ = openmm_energy_forces(read, xyz)
    e_own, _ = openmm_energy_forces(molecule.to_openmm_system(), xyz)
    assert e_file == pytest.approx(e_own, rel=1e-4)


def test_batched_equals_one_by_one(learned: ParameterModel) -> None:
    many = parametrize_many(MOLECULES, model=learned, batch_size=3)
    for smiles, result in zip(MOLECULES, many, strict=True):
        alone = parametrize(smiles, learned).parameters
        batched = result.parameters
        assert torch.equal(batched.extra_terms["learned_lj"].indices,
                           alone.extra_terms["learned_lj"].indices)
        assert torch.allclose(batched.nonbonded.sigma, alone.nonbonded.sigma, rtol=1e-6)
        assert torch.allclose(batched.nonbonded.epsilon, alone.nonbonded.epsilon, rtol=1e-6)


def test_another_atom_order_gets_the_permuted_identical_values(learned: ParameterModel) -> None:
    from rdkit import Chem

    for smiles in MOLECULES[:3]:
        first = from_smiles(smiles)
        order = np.random.default_rng(3).permutation(first.n_atoms)
        second = from_rdkit(Chem.RenumberAtoms(first.rdkit_mol, order.tolist()))  # new n is old order[n]
        a = parametrize(first, learned).parameters
        b = parametrize(second, learned).parameters
        for name in ("sigma", "epsilon"):
            assert np.array_equal(getattr(a.nonbonded, name).numpy()[order],
                                  getattr(b.nonbonded, name).numpy()), name
            assert np.array_equal(getattr(b.extra_terms["learned_lj"], name).numpy(),
                                  getattr(b.nonbonded, name).numpy())
        assert torch.equal(b.extra_terms["learned_lj"].indices[:, 0], torch.arange(first.n_atoms))
        assert not np.array_equal(order, np.arange(first.n_atoms))


def test_prior_is_the_mean_squared_log_ratio_and_put_checks_the_atoms(learned: ParameterModel) -> None:
    p = parametrize(MOLECULES[1], learned).parameters
    block = p.extra_terms["learned_lj"]
    assert float(LEARNED_LJ.prior_deviation(block, block, PLAIN.heads)) == 0.0
    shifted = dataclasses.replace(block, sigma=block.sigma * math.exp(0.1),
                                  epsilon=block.epsilon * math.exp(-0.2))
    assert float(LEARNED_LJ.prior_deviation(shifted, block, PLAIN.heads)) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="one per atom"):
        LEARNED_LJ.put(p, dataclasses.replace(block, indices=block.indices[:-1]))
    moved = LEARNED_LJ.put(p, shifted)
    assert moved.nonbonded.sigma is shifted.sigma and moved.extra_terms["learned_lj"] is shifted
    assert LEARNED_LJ.get(moved) is shifted
    # Sage's water hydrogens have epsilon 0: they keep it, and the prior stays finite
    water = parametrize("O", learned).parameters.extra_terms["learned_lj"]
    assert water.epsilon[1:].tolist() == [0.0, 0.0]
    sage = dataclasses.replace(water, sigma=water.sigma.clone(), epsilon=water.epsilon.clone())
    sage.epsilon[0] *= 2.0
    assert float(LEARNED_LJ.prior_deviation(water, sage, PLAIN.heads)) == pytest.approx(
        math.log(2.0) ** 2 / 3)


def test_loss_gradients_reach_the_learned_lj_readout(learned: ParameterModel) -> None:
    grad = readout_gradient(learned, "learned_lj_readout", "C[NH2+]CC(=O)[O-]")
    assert grad is not None and float(grad.abs().sum()) > 0.0


def test_fine_tuning_adds_a_fresh_readout_whose_prior_is_sage(tmp_path, plain: ParameterModel) -> None:  # type: ignore[no-untyped-def]
    from espaloma_like.nn.batch import collate, prepare_molecule
    from espaloma_like.training.config import LossConfig
    from espaloma_like.training.dataset import TrainingMolecule
    from espaloma_like.training.loss import compute_loss, make_batch

    plain, model = fine_tuning_start(plain, "learned_lj", tmp_path)
    assert set(model.state_dict()) - set(plain.state_dict()) == {
        "learned_lj_readout." + k for k in model.learned_lj_readout.state_dict()}
    # the frozen reference of the prior is taken after the switch (as the Trainer does): its
    # fresh readout gives Sage's values, so the prior anchors to Sage and starts at zero
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    graph = from_smiles("CC(=O)Nc1ccc(O)cc1")
    prepared = prepare_molecule(graph, model.config.atom_features, model.config.bond_features)
    batch = collate([prepared])
    sage = reference(batch).blocks["learned_lj"]
    assert torch.equal(sage.sigma, batch.sigma) and torch.equal(sage.epsilon, batch.epsilon)
    rng = np.random.default_rng(0)
    xyz = generate_conformers(graph, 1, seed=0)[[0, 0]] + rng.normal(0, 0.01, (2, graph.n_atoms, 3))
    molecule = TrainingMolecule(prepared, xyz, rng.normal(size=2), np.zeros_like(xyz), None,
                                "paracetamol", "", "train")
    training_batch = make_batch([molecule], 2, rng)
    _, metrics = compute_loss(model, training_batch, LossConfig(prior_weight=1.0),
                              reference_model=reference)
    assert metrics["prior"] == 0.0
    with torch.no_grad():
        assert float(LEARNED_LJ.prior_deviation(model(batch).blocks["learned_lj"], sage, PLAIN.heads)) == 0.0
    with torch.no_grad():  # a step away from Sage: the prior sees it, the reference stays Sage
        model.learned_lj_readout.head.bias.fill_(0.3)
    moved = model(batch).blocks["learned_lj"].detach()
    assert float(LEARNED_LJ.prior_deviation(moved, sage, PLAIN.heads)) > 0.0
    assert torch.equal(reference(batch).blocks["learned_lj"].sigma, batch.sigma)
