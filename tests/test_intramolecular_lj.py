"""Learned Lennard-Jones within the molecule only: in vacuum exactly ``learned_lj``'s energy,
between molecules Sage's LJ; torch vs OpenMM per group and in forces, no ForceField XML form,
SystemGenerator with several copies, cutoffs and PME, batches, the training loss and
fine-tuning."""

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
from espaloma_like.termkinds.intramolecular_lj import INTRAMOLECULAR_LJ
from espaloma_like.termkinds.learned_lj import LEARNED_LJ
from espaloma_like.units import ONE_4PI_EPS0

PLAIN = ModelConfig(hidden=32, n_layers=2, readout_hidden=32)
INTRA = PLAIN.model_copy(update={"extra_terms": ("intramolecular_lj",)})
LEARNED = PLAIN.model_copy(update={"extra_terms": ("learned_lj",)})
MOLECULES = ["COP(=O)([O-])c1ccc(Cl)cc1", "C[NH2+]CC(=O)[O-]", "CC(=O)Nc1ccc(O)cc1", "C[NH3+]",
             "N#N"]


@pytest.fixture(scope="module")
def plain() -> ParameterModel:
    torch.manual_seed(2)
    return ParameterModel(PLAIN).double().eval()


def _grafted(plain: ParameterModel, config: ModelConfig, readout: str, seed: int = 4
             ) -> ParameterModel:
    """``plain`` with the kind's readout: hidden layers and head drawn from ``seed``."""
    model = ParameterModel(config).double().eval()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith(readout + ".") for k in missing)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # factors well away from 1, the same in both kinds for one seed
        for tensor in getattr(model, readout).parameters():
            tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype) * 0.5)
    return model


@pytest.fixture(scope="module")
def intra(plain: ParameterModel) -> ParameterModel:
    return _grafted(plain, INTRA, "intramolecular_lj_readout")


@pytest.fixture(scope="module")
def learned(plain: ParameterModel) -> ParameterModel:
    return _grafted(plain, LEARNED, "learned_lj_readout")


def _conformers(molecule, n: int = 2) -> np.ndarray:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    graph = molecule.molecule
    conformers = generate_conformers(graph, n, seed=0)
    return conformers[np.arange(n) % len(conformers)] + rng.normal(0, 0.01, (n, graph.n_atoms, 3))


def test_registered_last_as_a_system_only_per_atom_kind() -> None:
    names = list(TERM_KINDS)
    assert names.index("intramolecular_lj") == names.index("learned_lj") + 1  # appended
    kind = INTRAMOLECULAR_LJ
    assert kind.optional and kind.terms == "atoms" and kind.arity == 1 and kind.zero_start
    assert kind.component == "lj" and kind.force_group == FORCE_GROUPS["nonbonded"]
    assert kind.system_only is not None and "same molecule" in kind.system_only
    assert kind.readout is not None and kind.readout.module == "intramolecular_lj_readout"
    with pytest.raises(ValueError, match="alternatives"):
        ModelConfig(extra_terms=("learned_lj", "intramolecular_lj"))


@pytest.mark.parametrize("smiles", MOLECULES)
def test_in_vacuum_the_energy_is_learned_ljs_and_the_nonbonded_block_stays_sages(
        intra: ParameterModel, learned: ParameterModel, plain: ParameterModel, smiles: str) -> None:
    a = parametrize(smiles, intra)
    b = parametrize(smiles, learned)
    sage = parametrize(smiles, plain).parameters.nonbonded
    block = a.parameters.extra_terms["intramolecular_lj"]
    assert a.parameters.provenance["extra_terms"] == "intramolecular_lj"
    assert a.parameters.provenance["lj"].startswith("openff-2.2.1 (Sage); within the molecule")
    assert torch.equal(block.sigma, b.parameters.extra_terms["learned_lj"].sigma)
    assert torch.equal(block.epsilon, b.parameters.extra_terms["learned_lj"].epsilon)
    assert torch.equal(a.parameters.nonbonded.sigma, sage.sigma)
    assert torch.equal(a.parameters.nonbonded.epsilon, sage.epsilon)
    xyz = _conformers(a, 3)
    ta, tb = energy_terms(a.parameters, torch.tensor(xyz)), energy_terms(b.parameters, torch.tensor(xyz))
    np.testing.assert_allclose(ta.lj.numpy(), tb.lj.numpy(), rtol=1e-10, atol=1e-8)
    for component in ("bond", "angle", "proper", "improper", "coulomb"):
        assert torch.equal(getattr(ta, component), getattr(tb, component)), component
    for c in range(len(xyz)):
        e_a, f_a = openmm_energy_forces(a.to_openmm_system(), xyz[c])
        e_b, f_b = openmm_energy_forces(b.to_openmm_system(), xyz[c])
        assert e_a == pytest.approx(e_b, abs=1e-6)
        assert np.abs(f_a - f_b).max() < 1e-6 * max(1.0, float(np.abs(f_b).max()))


def test_a_fresh_readout_adds_no_force_and_no_energy(plain: ParameterModel) -> None:
    import openmm

    model = ParameterModel(INTRA).double().eval()
    model.load_state_dict(plain.state_dict(), strict=False)
    for smiles in MOLECULES[:3]:
        with_kind = parametrize(smiles, model)
        without_kind = parametrize(smiles, plain)
        system = with_kind.to_openmm_system()
        assert not any(isinstance(f, openmm.CustomBondForce) for f in system.getForces())
        assert (openmm.XmlSerializer.serialize(system)
                == openmm.XmlSerializer.serialize(without_kind.to_openmm_system()))
        xyz = torch.tensor(_conformers(without_kind))
        block = with_kind.parameters.extra_terms["intramolecular_lj"]
        assert float(INTRAMOLECULAR_LJ.energy(block, with_kind.parameters, xyz).abs().max()) == 0.0


@pytest.mark.parametrize("smiles", MOLECULES)
def test_matches_openmm_per_group_and_in_forces(intra: ParameterModel, smiles: str) -> None:
    molecule = parametrize(smiles, intra)
    p = molecule.parameters
    system = molecule.to_openmm_system()
    xyz = _conformers(molecule)
    terms = energy_terms(p, torch.tensor(xyz))
    energies, forces = energy_and_forces(p, torch.tensor(xyz))
    for c in range(len(xyz)):
        groups = openmm_group_energies(system, xyz[c])
        for component in ("bond", "angle", "proper", "improper"):
            assert float(getattr(terms, component)[c]) == pytest.approx(
                groups.get(FORCE_GROUPS[component], 0.0), abs=1e-3), component
        assert float(terms.lj[c] + terms.coulomb[c]) == pytest.approx(
            groups[FORCE_GROUPS["nonbonded"]], abs=1e-3)
        e_openmm, f_openmm = openmm_energy_forces(system, xyz[c])
        assert float(energies[c]) == pytest.approx(e_openmm, abs=1e-3)
        assert np.linalg.norm(forces[c].numpy() - f_openmm) < 1e-5 * max(1.0, np.linalg.norm(f_openmm))


def _intermolecular_sage(a, b, xa: np.ndarray, xb: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    """Coulomb + Sage LJ between two molecules (numpy, Lorentz-Berthelot), kJ/mol."""
    qa, qb = a.charges, b.charges
    sa, sb = (m.parameters.nonbonded.sigma.numpy() for m in (a, b))
    ea, eb = (m.parameters.nonbonded.epsilon.numpy() for m in (a, b))
    r = np.linalg.norm(xa[:, None] - xb[None], axis=-1)
    sig = 0.5 * (sa[:, None] + sb[None])
    eps = np.sqrt(ea[:, None] * eb[None])
    return float((ONE_4PI_EPS0 * qa[:, None] * qb[None] / r
                  + 4 * eps * ((sig / r) ** 12 - (sig / r) ** 6)).sum())


def test_between_molecules_the_lj_is_sages_through_system_generator(intra: ParameterModel) -> None:
    import openmm.app as app

    from espaloma_like.export.system_generator import SystemGenerator

    smiles = MOLECULES[2]
    molecule = parametrize(smiles, intra)
    n = molecule.molecule.n_atoms
    single = molecule.to_openmm_topology("LIG")
    topology = app.Topology()
    chain = topology.addChain()
    for _ in range(2):
        residue = topology.addResidue("LIG", chain)
        atoms = {a: topology.addAtom(a.name, a.element, residue) for a in single.atoms()}
        for x, y in single.bonds():
            topology.addBond(atoms[x], atoms[y])
    generator = SystemGenerator(["amber14/tip3p.xml"], small_molecule_forcefield=intra,
                                molecules=[smiles])
    system = generator.create_system(topology)
    (custom,) = [f for f in system.getForces() if type(f).__name__ == "CustomBondForce"]
    assert custom.getNumBonds() == 2 * len(INTRAMOLECULAR_LJ._rows(
        molecule.parameters.extra_terms["intramolecular_lj"], molecule.parameters))
    xyz = _conformers(molecule, 1)[0]
    rotated = xyz @ np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]) + [0.55, 0.1, 0.2]
    both, _ = openmm_energy_forces(system, np.vstack([xyz, rotated]))
    alone = openmm_energy_forces(molecule.to_openmm_system(), xyz)[0] + openmm_energy_forces(
        molecule.to_openmm_system(), rotated)[0]
    assert both - alone == pytest.approx(_intermolecular_sage(molecule, molecule, xyz, rotated),
                                         abs=1e-4)
    assert system.getNumParticles() == 2 * n
    # the benchmarks' multi-molecule Systems add the System-only forces the same way
    from espaloma_like.export.multi_molecule import multi_molecule_system

    pair, _ = multi_molecule_system([molecule, molecule], nonbondedMethod=app.NoCutoff,
                                    constraints=None, removeCMMotion=False)
    assert sum(type(f).__name__ == "CustomBondForce" for f in pair.getForces()) == 1
    assert openmm_energy_forces(pair, np.vstack([xyz, rotated]))[0] == pytest.approx(both, abs=1e-6)


@pytest.mark.parametrize("method", ["CutoffPeriodic", "PME"])
def test_correction_uses_no_periodic_images(intra: ParameterModel, method: str) -> None:
    import openmm

    molecule = parametrize(MOLECULES[0], intra)
    box = np.diag([3.0, 3.0, 3.0])
    system = molecule.to_openmm_system(nonbonded_method=method, nonbonded_cutoff=1.0,
                                       box_vectors=box)
    (custom,) = [f for f in system.getForces() if isinstance(f, openmm.CustomBondForce)]
    assert custom.usesPeriodicBoundaryConditions() is False
    only = openmm.System()
    for i in range(system.getNumParticles()):
        only.addParticle(system.getParticleMass(i))
    only.addForce(openmm.XmlSerializer.clone(custom))
    xyz = _conformers(molecule, 1)[0] + 1.5
    shifted = xyz.copy()
    shifted[0] += box[0]  # one atom moved by a box vector: far away for the correction
    e, _ = openmm_energy_forces(only, xyz)
    e_shifted, _ = openmm_energy_forces(only, shifted)
    block = molecule.parameters.extra_terms["intramolecular_lj"]
    torch_e = float(INTRAMOLECULAR_LJ.energy(block, molecule.parameters, torch.tensor(xyz[None])).sum())
    assert e == pytest.approx(torch_e, abs=1e-6)
    assert abs(e_shifted - e) > 1e-3


def test_forcefield_xml_wraps_it_and_parmed_refuses_it(intra: ParameterModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from espaloma_like.export.parmed_system import ExportError

    molecule = parametrize(MOLECULES[2], intra)
    assert 'kinds="intramolecular_lj"' in molecule.to_forcefield_xml()  # wrapped, not plain
    with pytest.raises(NotImplementedError, match="same molecule only"):
        INTRAMOLECULAR_LJ.write_ffxml(ET.Element("ForceField"), [], molecule.parameters.extra_terms[
            "intramolecular_lj"], molecule.parameters)
    with pytest.raises(ExportError, match=r"model=.portable."):
        molecule.to_gromacs(tmp_path / "m.top", tmp_path / "m.gro")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("host", [(), ("charmm36.xml",)])
def test_the_bare_template_generator_carries_it(intra: ParameterModel, host: tuple[str, ...]) -> None:
    """``openmm.app.ForceField`` (bare, or CHARMM's with its own 1-4 conventions) with the
    template generator registered: the molecule's own System energy and forces (the correction
    added by the generator's force generator)."""
    import openmm.app as app

    from espaloma_like.api import TemplateGenerator

    molecule = parametrize(MOLECULES[0], intra)
    forcefield = app.ForceField(*host)
    generator = TemplateGenerator(MOLECULES[0], model=intra)
    forcefield.registerTemplateGenerator(generator.generator)
    topology = molecule.to_openmm_topology("LIG")
    system = forcefield.createSystem(
        topology, residueTemplates=generator.residue_templates(forcefield, topology))
    xyz = _conformers(molecule, 1)[0]
    e, f = openmm_energy_forces(system, xyz)
    e_own, f_own = openmm_energy_forces(molecule.to_openmm_system(), xyz)
    assert e == pytest.approx(e_own, abs=1e-6)
    assert np.abs(f - f_own).max() < 1e-6 * max(1.0, float(np.abs(f_own).max()))


def test_batched_equals_one_by_one_and_put_checks_the_atoms(intra: ParameterModel) -> None:
    assert_batched_equals_alone(intra, "intramolecular_lj", MOLECULES,
                                {"sigma": (1e-6, 1e-8), "epsilon": (1e-6, 1e-8)})
    p = parametrize(MOLECULES[1], intra).parameters
    block = p.extra_terms["intramolecular_lj"]
    with pytest.raises(ValueError, match="one per atom"):
        INTRAMOLECULAR_LJ.put(p, dataclasses.replace(block, indices=block.indices[:-1]))
    assert float(INTRAMOLECULAR_LJ.prior_deviation(block, block, PLAIN.heads)) == 0.0
    assert LEARNED_LJ.prior_deviation(block, block, PLAIN.heads) == INTRAMOLECULAR_LJ.prior_deviation(
        block, block, PLAIN.heads)


def test_loss_gradients_reach_the_readout(intra: ParameterModel) -> None:
    grad = readout_gradient(intra, "intramolecular_lj_readout", "C[NH2+]CC(=O)[O-]")
    assert grad is not None and float(grad.abs().sum()) > 0.0


def test_fine_tuning_adds_a_fresh_readout_at_sages_values(tmp_path, plain: ParameterModel) -> None:  # type: ignore[no-untyped-def]
    _, model = fine_tuning_start(plain, "intramolecular_lj", tmp_path)
    p = parametrize("CC(=O)Nc1ccc(O)cc1", model).parameters
    block = p.extra_terms["intramolecular_lj"]
    assert torch.equal(block.sigma, p.nonbonded.sigma) and torch.equal(block.epsilon, p.nonbonded.epsilon)
