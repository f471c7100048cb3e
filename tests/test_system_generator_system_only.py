"""SystemGenerator with models whose term kinds have no ForceField XML form (system-only).

``form-torsion-coupling`` (CustomCompoundBondForce), ``form-scaled-14`` and
``form-intramolecular-lj`` (CustomBondForce):
the ligands get core templates and the force generator the template generator registers adds
the kinds' forces inside ``createSystem``, remapped to every ligand residue, so the plain
TemplateGenerator on a user's ForceField gives the same System; the cache never serves a core
template as a complete one; a model without such kinds is unchanged.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openmm_system_helpers import energy

from espaloma_like.api import TemplateGenerator, parametrize
from espaloma_like.molecule import generate_conformers
from espaloma_like.termkinds import export_order

PARACETAMOL = "CC(=O)Nc1ccc(O)cc1"
ESTER = "CCOC(C)=O"
#: (SMILES, centre in the 2.4 nm box, nm, atom order reversed in the topology)
COPIES = ((PARACETAMOL, (0.6, 0.6, 0.6), False), (PARACETAMOL, (1.7, 1.7, 0.6), True),
          (ESTER, (0.6, 1.7, 1.7), False))
BOX_NM = 2.4
#: model: (its system-only kind, the force type, the force group: proper 2, nonbonded 4)
FORMS = {"form-torsion-coupling": ("torsion_coupling", "CustomCompoundBondForce", 2),
         "form-scaled-14": ("scaled_14", "CustomBondForce", 2),
         "form-intramolecular-lj": ("intramolecular_lj", "CustomBondForce", 4)}


def _kwargs() -> dict[str, Any]:
    import openmm.app as app
    from openmm import unit

    return {"forcefield_kwargs": {"constraints": app.HBonds},
            "periodic_forcefield_kwargs": {"nonbondedMethod": app.PME,
                                           "nonbondedCutoff": 0.8 * unit.nanometer}}


def _ligand_topology(molecule: Any, reverse: bool) -> tuple[Any, list[int]]:
    """A one-residue topology of ``molecule``, atoms in molecule order or reversed; the
    molecule atom of every residue atom."""
    import openmm.app as app

    from espaloma_like.export.ffxml import atom_names

    n = molecule.molecule.n_atoms
    order = list(range(n))[::-1] if reverse else list(range(n))
    names = atom_names(molecule.molecule.atomic_numbers)
    topology = app.Topology()
    residue = topology.addResidue("LIG", topology.addChain())
    atoms = {}
    for i in order:
        z = int(molecule.molecule.atomic_numbers[i])
        atoms[i] = topology.addAtom(names[i], app.Element.getByAtomicNumber(z), residue)
    for i, j in molecule.molecule.bonds.tolist():
        topology.addBond(atoms[i], atoms[j])
    return topology, order


@dataclasses.dataclass
class Setup:
    model: str
    molecules: dict[str, Any]  # SMILES -> ParametrizedMolecule (the model's)
    topology: Any
    positions: Any  # Quantity, nm
    copies: list[tuple[str, list[int]]]  # SMILES, System particle of every molecule atom


def _setup(model: str) -> Setup:
    import openmm.app as app
    from openmm import unit

    from espaloma_like import SystemGenerator

    molecules = {s: parametrize(s, model=model) for s in (PARACETAMOL, ESTER)}
    modeller = app.Modeller(app.Topology(), [])
    copies = []
    for smiles, centre, reverse in COPIES:
        molecule = molecules[smiles]
        xyz = generate_conformers(molecule.molecule, 1, seed=0)[0]
        xyz = xyz - xyz.mean(0) + np.asarray(centre)
        topology, order = _ligand_topology(molecule, reverse)
        first = modeller.topology.getNumAtoms()
        modeller.add(topology, xyz[order] * unit.nanometer)
        particles = [0] * len(order)
        for k, atom in enumerate(order):
            particles[atom] = first + k
        copies.append((smiles, particles))
    modeller.topology.setPeriodicBoxVectors(np.eye(3) * BOX_NM * unit.nanometer)
    generator = SystemGenerator(["amber14/tip3p.xml"], small_molecule_forcefield=model,
                                molecules=[PARACETAMOL, ESTER], **_kwargs())
    modeller.addSolvent(generator.forcefield, model="tip3p",
                        residueTemplates=generator.residue_templates(modeller.topology))
    return Setup(model, molecules, modeller.topology, modeller.positions, copies)


@pytest.fixture(scope="module", params=sorted(FORMS))
def setup(request) -> Setup:  # type: ignore[no-untyped-def]
    return _setup(request.param)


def _system(setup: Setup, cache: Path | None = None) -> tuple[Any, Any]:
    from espaloma_like import SystemGenerator

    generator = SystemGenerator(["amber14/tip3p.xml"], small_molecule_forcefield=setup.model,
                                molecules=[PARACETAMOL, ESTER], cache=cache, **_kwargs())
    return generator.create_system(setup.topology), generator


def _own_forces(molecule: Any) -> list[Any]:
    """The system-only forces of the molecule's own System (its atom indices and groups)."""
    forces = []
    for kind, block in export_order(molecule.parameters):
        if kind.system_only:
            for force in kind.openmm_forces(block, molecule.parameters):
                force.setForceGroup(kind.force_group)
                forces.append(force)
    return forces


def _custom(system: Any, type_name: str) -> list[Any]:
    return [f for f in system.getForces() if type(f).__name__ == type_name]


def _only_bonds_within(force: Any, particles: set[int]) -> Any:
    """A copy of ``force`` with only the bonds whose particles all lie in ``particles``."""
    import openmm

    root = ET.fromstring(openmm.XmlSerializer.serialize(force))
    bonds = root.find("Bonds")
    assert bonds is not None
    for bond in list(bonds):
        atoms = {int(v) for k, v in bond.attrib.items() if k[0] == "p" and k[1:].isdigit()}
        if not atoms <= particles:
            bonds.remove(bond)
    return openmm.XmlSerializer.deserialize(ET.tostring(root, encoding="unicode"))


def _alone(force: Any, n_particles: int) -> Any:
    import openmm

    system = openmm.System()
    for _ in range(n_particles):
        system.addParticle(1.0)
    system.addForce(force)
    return system


def test_custom_forces_one_per_kind_with_every_copys_terms(setup: Setup) -> None:
    import openmm

    system, generator = _system(setup)
    (force,) = _custom(system, FORMS[setup.model][1])
    own = {s: _own_forces(m) for s, m in setup.molecules.items()}
    assert all(len(forces) == 1 for forces in own.values())
    expected = sum(own[smiles][0].getNumBonds() for smiles, _ in setup.copies)
    assert force.getNumBonds() == expected > 0
    reference = own[PARACETAMOL][0]
    assert force.getEnergyFunction() == reference.getEnergyFunction()
    assert force.getForceGroup() == reference.getForceGroup() == FORMS[setup.model][2]
    assert force.usesPeriodicBoundaryConditions() == reference.usesPeriodicBoundaryConditions()
    assert force.getNumPerBondParameters() == reference.getNumPerBondParameters()
    assert force.getNumGlobalParameters() == reference.getNumGlobalParameters()
    assert len(generator.ligand_templates) == len(COPIES)
    assert system.getNumParticles() == setup.topology.getNumAtoms() > 500
    assert any(isinstance(f, openmm.NonbondedForce) and f.getNonbondedMethod() == f.PME
               for f in system.getForces())


def test_every_copy_has_exactly_its_own_terms(setup: Setup) -> None:
    """Per ligand copy (one in reversed atom order), the System's custom terms of its atoms
    have the energy of the molecule's own forces at the same coordinates."""
    from openmm import unit

    system, _ = _system(setup)
    (force,) = _custom(system, FORMS[setup.model][1])
    xyz = np.asarray(setup.positions.value_in_unit(unit.nanometer))
    n = system.getNumParticles()
    found = 0
    for smiles, particles in setup.copies:
        mine = _only_bonds_within(force, set(particles))
        found += mine.getNumBonds()
        (own,) = _own_forces(setup.molecules[smiles])
        assert mine.getNumBonds() == own.getNumBonds()
        got = energy(_alone(mine, n), xyz)
        expected = energy(_alone(own, len(particles)), xyz[particles])
        assert abs(expected) > 1e-3
        assert got == pytest.approx(expected, abs=1e-6)
    assert found == force.getNumBonds()  # every term belongs to one copy


def test_system_is_the_core_system_plus_the_ligands_own_terms(setup: Setup) -> None:
    """Energy of the SystemGenerator System minus that of the same System built from the
    model's core ffxml = the ligands' system-only energies in their own Systems."""
    import openmm.app as app
    from openmm import unit

    from espaloma_like.export.template_generator import molecule_template

    system, _ = _system(setup)
    forcefield = app.ForceField("amber14/tip3p.xml")
    for molecule in setup.molecules.values():
        template = molecule_template(molecule)
        assert not template.complete
        forcefield.loadFile(io.StringIO(template.ffxml))
    options = {**_kwargs()["forcefield_kwargs"], **_kwargs()["periodic_forcefield_kwargs"]}
    core = forcefield.createSystem(setup.topology, **options)
    assert system.getNumForces() == core.getNumForces() + 1
    xyz = np.asarray(setup.positions.value_in_unit(unit.nanometer))
    box = setup.topology.getPeriodicBoxVectors()
    own = sum(energy(_alone(_own_forces(setup.molecules[s])[0], len(p)), xyz[p])
              for s, p in setup.copies)
    difference = energy(system, xyz, box) - energy(core, xyz, box)
    assert difference == pytest.approx(own, abs=1e-5)


def test_plain_template_generator_gives_the_same_system(setup: Setup) -> None:
    """``forcefield.createSystem`` with the bare TemplateGenerator registered: the System of
    the SystemGenerator, forces included; a second System gets them once."""
    import openmm
    import openmm.app as app

    system, _ = _system(setup)
    plain = TemplateGenerator([PARACETAMOL, ESTER], model=setup.model)
    forcefield = app.ForceField("amber14/tip3p.xml")
    forcefield.registerTemplateGenerator(plain.generator)
    options = {**_kwargs()["forcefield_kwargs"], **_kwargs()["periodic_forcefield_kwargs"]}
    templates = plain.residue_templates(forcefield, setup.topology)
    for _ in range(2):
        built = forcefield.createSystem(setup.topology, residueTemplates=templates, **options)
        assert openmm.XmlSerializer.serialize(built) == openmm.XmlSerializer.serialize(system)
        assert len(_custom(built, FORMS[setup.model][1])) == 1
    assert sum(type(g).__name__ == "SystemOnlyForces" for g in forcefield.getGenerators()) == 1


def test_another_forcefield_gets_the_forces_too() -> None:
    """The SystemGenerator's generator hook registered on a user's ForceField, and the
    low-level generator on a bare ForceField: the molecule's own energy, in vacuum; a residue
    that got the force field's own template (not the model's) gets no force."""
    import openmm.app as app

    from espaloma_like import SystemGenerator
    from espaloma_like.export.template_generator import MoleculeTemplateGenerator

    ethanol = parametrize("CCO", model="form-torsion-coupling")
    xyz = generate_conformers(ethanol.molecule, 1, seed=0)[0]
    own = energy(ethanol.to_openmm_system(), xyz)
    generator = SystemGenerator([], small_molecule_forcefield="form-torsion-coupling",
                                molecules="CCO")
    other = app.ForceField("amber14/tip3p.xml")
    other.registerTemplateGenerator(generator.template_generator.generator)
    topology = ethanol.to_openmm_topology("ETH")
    assert energy(other.createSystem(topology), xyz) == pytest.approx(own, abs=1e-6)
    low_level = MoleculeTemplateGenerator("CCO", lambda graph: ethanol)
    bare = app.ForceField()
    bare.registerTemplateGenerator(low_level.generator)
    assert energy(bare.createSystem(topology), xyz) == pytest.approx(own, abs=1e-6)
    assert energy(generator.create_system(topology), xyz) == pytest.approx(own, abs=1e-6)
    # the same molecule under another template of the force field: no system-only force
    from espaloma_like.export.ffxml import to_forcefield_xml

    plain_ethanol = parametrize("CCO")
    ffxml = to_forcefield_xml(plain_ethanol.molecule, plain_ethanol.parameters, "ETH-PLAIN")
    bare.loadFile(io.StringIO(ffxml))
    system = bare.createSystem(topology, residueTemplates={next(topology.residues()): "ETH-PLAIN"})
    assert not _custom(system, "CustomCompoundBondForce")
    assert energy(system, xyz) == pytest.approx(energy(plain_ethanol.to_openmm_system(), xyz),
                                                abs=1e-6)


def test_cache_holds_core_templates_apart(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    """A core template is cached under ``core_ffxml`` with its forces: a later SystemGenerator
    reads it (same System), a plain generator never gets it as a complete ffxml."""
    import openmm
    import openmm.app as app

    from espaloma_like import SystemGenerator
    from espaloma_like.export.template_cache import TemplateCache
    from espaloma_like.export.template_generator import MoleculeTemplateGenerator

    cache = tmp_path / "templates.json"
    topology = parametrize("CCO").to_openmm_topology("ETH")
    first = SystemGenerator([], small_molecule_forcefield="form-scaled-14", molecules="CCO",
                            cache=cache)
    built = openmm.XmlSerializer.serialize(first.create_system(topology))
    (key, entry), = json.loads(cache.read_text())["entries"].items()
    assert "ffxml" not in entry
    assert entry["system_only_kinds"] == ["scaled_14"]
    assert entry["core_ffxml"].startswith("<ForceField")
    assert [kind for kind, _ in entry["system_forces"]] == ["scaled_14"]
    stored = TemplateCache(cache)
    assert stored.get(key) is None  # never a complete ffxml
    looked_up = stored.lookup(key)
    assert looked_up is not None and not looked_up.complete

    with caplog.at_level(logging.INFO, logger="espaloma_like.export.template_generator"):
        second = SystemGenerator([], small_molecule_forcefield="form-scaled-14",
                                 molecules="CCO", cache=cache)
        assert openmm.XmlSerializer.serialize(second.create_system(topology)) == built
    assert "core template of" in caplog.text and "read from cache" in caplog.text

    def never(graph):  # type: ignore[no-untyped-def]
        raise AssertionError("the cached template was not used")

    plain = MoleculeTemplateGenerator("CCO", never, cache=TemplateCache(cache),
                                      cache_key=first.template_generator._cache_key)
    assert 'kinds="scaled_14"' in plain.forcefield_xml(0)  # never as a plain ffxml
    forcefield = app.ForceField()
    forcefield.registerTemplateGenerator(plain.generator)
    assert len(_custom(forcefield.createSystem(topology), "CustomBondForce")) == 1


def test_model_without_system_only_kinds_is_unchanged(tmp_path: Path) -> None:
    """``portable``: the SystemGenerator's System is the one a ForceField with the plain
    TemplateGenerator builds, its cache entry a complete ffxml."""
    import openmm
    import openmm.app as app

    from espaloma_like import SystemGenerator

    topology = _ligands_topology()
    generator = SystemGenerator(["amber14/tip3p.xml"], small_molecule_forcefield="portable",
                                molecules=[PARACETAMOL, ESTER],
                                cache=tmp_path / "templates.json", **_kwargs())
    system = generator.create_system(topology)
    plain = TemplateGenerator([PARACETAMOL, ESTER], model="portable")
    forcefield = app.ForceField("amber14/tip3p.xml")
    forcefield.registerTemplateGenerator(plain.generator)
    options = {**_kwargs()["forcefield_kwargs"], **_kwargs()["periodic_forcefield_kwargs"]}
    expected = forcefield.createSystem(
        topology, residueTemplates=plain.residue_templates(forcefield, topology), **options)
    assert openmm.XmlSerializer.serialize(system) == openmm.XmlSerializer.serialize(expected)
    entries = json.loads((tmp_path / "templates.json").read_text())["entries"]
    assert len(entries) == 2 and all("ffxml" in e and "core_ffxml" not in e
                                     for e in entries.values())


def _ligands_topology() -> Any:
    """The three ligand copies of :data:`COPIES` in the periodic box, no water (positions
    are not needed)."""
    import openmm.app as app
    from openmm import unit

    modeller = app.Modeller(app.Topology(), [])
    for smiles, _centre, reverse in COPIES:
        molecule = parametrize(smiles)
        topology, order = _ligand_topology(molecule, reverse)
        modeller.add(topology, np.zeros((len(order), 3)) * unit.nanometer)
    modeller.topology.setPeriodicBoxVectors(np.eye(3) * BOX_NM * unit.nanometer)
    return modeller.topology


def test_remapper_refuses_other_force_types() -> None:
    import openmm

    from espaloma_like.export.force_remap import append_bonds, remap_force

    with pytest.raises(TypeError, match="HarmonicBondForce"):
        remap_force(openmm.HarmonicBondForce(), [0, 1])
    bond = openmm.CustomBondForce("k*r")
    bond.addPerBondParameter("k")
    bond.addGlobalParameter("g", 2.0)
    bond.setForceGroup(5)
    bond.setUsesPeriodicBoundaryConditions(True)
    bond.addBond(0, 1, [3.0])
    moved = remap_force(bond, [7, 4])
    i, j, values = moved.getBondParameters(0)
    assert (i, j) == (7, 4) and list(values) == [3.0]
    assert moved.getForceGroup() == 5 and moved.usesPeriodicBoundaryConditions()
    assert moved.getGlobalParameterName(0) == "g" and moved.getEnergyFunction() == "k*r"
    assert bond.getBondParameters(0)[0] == 0  # the source is untouched
    assert append_bonds(moved, remap_force(bond, [1, 2])) == 1 and moved.getNumBonds() == 2
    with pytest.raises(TypeError):
        append_bonds(moved, openmm.CustomCompoundBondForce(2, "distance(p1,p2)"))
