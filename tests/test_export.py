"""OpenMM export: System, System XML, ffxml and the template generator agree."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import openmm_energy_forces, symmetric_test_charges

from espaloma_like.baselines.sage_labels import sage_parameters
from espaloma_like.export.template_generator import MoleculeTemplateGenerator
from espaloma_like.mm import energy
from espaloma_like.molecule import from_smiles, generate_conformers
from espaloma_like.parametrized import ParametrizedMolecule

EXPORT_SMILES = ["CC(=O)Nc1ccc(O)cc1", "CC(=O)[O-]", "[NH3+]CC(=O)[O-]", "c1ccsc1", "COP(=O)([O-])OC"]


def _sage(smiles: str, seed: int = 0) -> ParametrizedMolecule:
    graph = from_smiles(smiles)
    return ParametrizedMolecule(graph, sage_parameters(graph, symmetric_test_charges(graph, seed)))


@pytest.mark.parametrize("smiles", EXPORT_SMILES)
def test_ffxml_route_equals_system_route(smiles: str) -> None:
    import openmm.app as app

    molecule = _sage(smiles)
    direct = molecule.to_openmm_system()
    forcefield = app.ForceField(io.StringIO(molecule.to_forcefield_xml()))
    via_ffxml = forcefield.createSystem(
        molecule.to_openmm_topology(), nonbondedMethod=app.NoCutoff, constraints=None,
        rigidWater=False, removeCMMotion=False,
    )
    for xyz in generate_conformers(molecule.molecule, 2, seed=3):
        e_direct, f_direct = openmm_energy_forces(direct, xyz)
        e_ffxml, f_ffxml = openmm_energy_forces(via_ffxml, xyz)
        assert abs(e_direct - e_ffxml) < 1e-6
        assert np.abs(f_direct - f_ffxml).max() < 1e-6
    # the same number of torsions: impropers expanded as the trefoil, nothing dropped or doubled
    assert direct.getNumForces() == 5


def test_system_xml_round_trip() -> None:
    import openmm

    molecule = _sage("CC(=O)Nc1ccc(O)cc1")
    xyz = generate_conformers(molecule.molecule, 1, seed=0)[0]
    restored = openmm.XmlSerializer.deserialize(molecule.to_system_xml())
    assert restored.getNumParticles() == molecule.molecule.n_atoms
    e1, _ = openmm_energy_forces(molecule.to_openmm_system(), xyz)
    e2, _ = openmm_energy_forces(restored, xyz)
    assert e1 == pytest.approx(e2, abs=1e-9)


def test_ffxml_has_provenance_and_one_type_per_atom() -> None:
    import xml.etree.ElementTree as ET

    molecule = _sage("CCO")
    root = ET.fromstring(molecule.to_forcefield_xml())
    assert root.find("Info/Source").text.startswith("espaloma_like")
    assert {e.get("key") for e in root.findall("Info/Reference")} >= {"method", "forcefield"}
    types = root.findall("AtomTypes/Type")
    assert len(types) == len({t.get("name") for t in types}) == molecule.molecule.n_atoms
    assert root.find("Residues/Residue").get("name") == "CCO"


def test_mapped_smiles_order_end_to_end() -> None:
    """Parameters follow the map order: permuting a known geometry gives the same energy."""
    mapped = "[H:4][C:2]([H:5])([H:6])[C:3]([H:7])([H:8])[O:1][H:9]"
    plain = _sage("CCO")
    ordered = _sage(mapped)
    # plain atom order: C(methyl) C O H H H H H H; map order: O C(methyl) C H H H H H H(O)
    permutation = [2, 0, 1, 3, 4, 5, 6, 7, 8]
    assert ordered.molecule.atomic_numbers.tolist() == plain.molecule.atomic_numbers[permutation].tolist()
    xyz_plain = generate_conformers(plain.molecule, 1, seed=7)[0]
    xyz_mapped = xyz_plain[permutation]
    # same charges per atom so that only the order differs
    charges = plain.charges[permutation]
    ordered = ParametrizedMolecule(
        ordered.molecule, sage_parameters(ordered.molecule, charges)
    )
    e_plain, _ = openmm_energy_forces(plain.to_openmm_system(), xyz_plain)
    e_mapped, _ = openmm_energy_forces(ordered.to_openmm_system(), xyz_mapped)
    assert e_plain == pytest.approx(e_mapped, abs=1e-6)
    # the O-C bond is bond (0, 2) of the mapped system, with Sage's C-O length (about 0.143 nm)
    bonds = ordered.parameters.bonds
    row = [tuple(b) for b in bonds.indices.tolist()].index((0, 2))
    assert float(bonds.length[row]) == pytest.approx(0.1426, abs=2e-3)
    assert np.asarray(
        energy(ordered.parameters, torch.tensor(xyz_mapped[None]))
    ) == pytest.approx(e_mapped, abs=1e-6)


def test_template_generator_in_protein_ligand_water_system() -> None:
    import openmm.app as app
    from openmm import NonbondedForce, unit

    pdb_path = Path(app.__file__).parent / "data" / "test.pdb"
    pdb = app.PDBFile(str(pdb_path))
    ligand = _sage("CC(=O)Nc1ccc(O)cc1")
    ligand_xyz = generate_conformers(ligand.molecule, 1, seed=0)[0] + np.array([2.0, 2.0, 2.0])

    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.add(ligand.to_openmm_topology("LIG"), ligand_xyz * unit.nanometer)
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3pfb.xml")

    calls = []

    def parametrize(graph):  # type: ignore[no-untyped-def]
        calls.append(graph.smiles)
        return ligand

    generator = MoleculeTemplateGenerator(["CCO", ligand.molecule], parametrize)
    forcefield.registerTemplateGenerator(generator.generator)
    system = forcefield.createSystem(
        modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=1.0 * unit.nanometer
    )
    n_ligand = ligand.molecule.n_atoms
    assert system.getNumParticles() == modeller.topology.getNumAtoms()
    assert calls == [ligand.molecule.smiles]  # parametrized once, only the ligand
    nonbonded = next(f for f in system.getForces() if isinstance(f, NonbondedForce))
    first = system.getNumParticles() - n_ligand
    ligand_charges = [
        nonbonded.getParticleParameters(first + i)[0].value_in_unit(unit.elementary_charge)
        for i in range(n_ligand)
    ]
    np.testing.assert_allclose(ligand_charges, ligand.charges, atol=1e-12)
    # a residue that is not ours: False, and nothing loaded
    water = next(r for r in modeller.topology.residues() if r.name == "HOH")
    fresh = app.ForceField()
    assert generator.generator(fresh, water) is False
    assert len(fresh._templates) == 0
