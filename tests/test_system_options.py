"""ParametrizedMolecule.to_openmm_system options, checked against OpenMM's own createSystem."""

from __future__ import annotations

import io

import numpy as np
import pytest

from espaloma_like.api import parametrize
from espaloma_like.molecule import generate_conformers

SMILES = "CC(=O)Nc1ccc(O)cc1"


@pytest.fixture(scope="module")
def ligand():  # type: ignore[no-untyped-def]
    return parametrize(SMILES)


@pytest.fixture(scope="module")
def xyz(ligand) -> np.ndarray:  # type: ignore[no-untyped-def]
    return generate_conformers(ligand.molecule, 1, seed=0)[0]


def _energy(system, xyz: np.ndarray, box: np.ndarray | None = None) -> float:  # type: ignore[no-untyped-def]
    import openmm
    from openmm import unit

    context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(xyz)
    return float(context.getState(getEnergy=True).getPotentialEnergy()
                 .value_in_unit(unit.kilojoule_per_mole))


def _openmm_reference(ligand, **kwargs):  # type: ignore[no-untyped-def]
    """The same molecule through ForceField(ffxml).createSystem with OpenMM's own options."""
    import openmm.app as app

    forcefield = app.ForceField(io.StringIO(ligand.to_forcefield_xml()))
    topology = ligand.to_openmm_topology()
    if "boxVectors" in kwargs:
        topology.setPeriodicBoxVectors(kwargs.pop("boxVectors"))
    return forcefield.createSystem(topology, removeCMMotion=False, **kwargs)


def test_defaults_leave_the_vacuum_system_unchanged(ligand, xyz) -> None:  # type: ignore[no-untyped-def]
    import openmm

    from espaloma_like.export.openmm_system import to_openmm_system, to_system_xml

    plain = to_openmm_system(ligand.parameters, ligand.molecule.masses)
    system = ligand.to_openmm_system()
    assert _energy(system, xyz) == _energy(plain, xyz)
    assert system.getNumConstraints() == 0 and not system.usesPeriodicBoundaryConditions()
    nonbonded = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    assert nonbonded.getNonbondedMethod() == openmm.NonbondedForce.NoCutoff
    restored = openmm.XmlSerializer.deserialize(ligand.to_system_xml())
    reference = openmm.XmlSerializer.deserialize(to_system_xml(ligand.parameters,
                                                               ligand.molecule.masses))
    assert restored.getNumForces() == reference.getNumForces()
    assert _energy(restored, xyz) == pytest.approx(_energy(reference, xyz), abs=1e-9)


def test_pme_hbonds_hmr_match_openmm_createsystem(ligand, xyz) -> None:  # type: ignore[no-untyped-def]
    import openmm
    import openmm.app as app
    from openmm import unit

    box = np.eye(3) * 3.0
    vectors = [openmm.Vec3(*row) for row in box] * unit.nanometer
    ours = ligand.to_openmm_system(
        nonbonded_method=app.PME, nonbonded_cutoff=0.9 * unit.nanometer,
        constraints=app.HBonds, hydrogen_mass=3.0 * unit.amu, box_vectors=vectors)
    reference = _openmm_reference(
        ligand, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
        constraints=app.HBonds, hydrogenMass=3.0 * unit.amu, boxVectors=vectors)
    assert ours.usesPeriodicBoundaryConditions()
    nonbonded = next(f for f in ours.getForces() if isinstance(f, openmm.NonbondedForce))
    assert nonbonded.getNonbondedMethod() == openmm.NonbondedForce.PME
    assert nonbonded.getCutoffDistance().value_in_unit(unit.nanometer) == pytest.approx(0.9)
    assert np.allclose([v.value_in_unit(unit.nanometer) for v in ours.getDefaultPeriodicBoxVectors()],
                       box)
    n_h_bonds = sum(1 for i, j in ligand.molecule.bonds.tolist()
                    if 1 in (ligand.molecule.atomic_numbers[i], ligand.molecule.atomic_numbers[j]))
    assert ours.getNumConstraints() == reference.getNumConstraints() == n_h_bonds == 9
    masses = np.array([ours.getParticleMass(i).value_in_unit(unit.dalton)
                       for i in range(ours.getNumParticles())])
    reference_masses = np.array([reference.getParticleMass(i).value_in_unit(unit.dalton)
                                 for i in range(reference.getNumParticles())])
    assert np.allclose(masses, reference_masses)
    assert masses[ligand.molecule.atomic_numbers == 1] == pytest.approx(3.0)
    assert masses.sum() == pytest.approx(ligand.molecule.masses.sum(), abs=1e-9)
    e_ours, e_reference = _energy(ours, xyz, box), _energy(reference, xyz, box)
    assert np.isfinite(e_ours) and e_ours == pytest.approx(e_reference, rel=1e-5, abs=1e-3)


@pytest.mark.parametrize("constraints", ["AllBonds", "HAngles"])
def test_constraints_and_cutoff_match_openmm_createsystem(ligand, xyz, constraints) -> None:  # type: ignore[no-untyped-def]
    import openmm
    import openmm.app as app

    ours = ligand.to_openmm_system(nonbonded_method="CutoffNonPeriodic", nonbonded_cutoff=0.6,
                                   constraints=constraints)
    reference = _openmm_reference(ligand, nonbondedMethod=app.CutoffNonPeriodic,
                                  nonbondedCutoff=0.6, constraints=getattr(app, constraints))
    assert ours.getNumConstraints() == reference.getNumConstraints()
    assert ours.getNumConstraints() >= ligand.molecule.bonds.shape[0]
    ours_pairs = {tuple(sorted(ours.getConstraintParameters(i)[:2]))
                  for i in range(ours.getNumConstraints())}
    reference_pairs = {tuple(sorted(reference.getConstraintParameters(i)[:2]))
                       for i in range(reference.getNumConstraints())}
    assert ours_pairs == reference_pairs
    nonbonded = next(f for f in ours.getForces() if isinstance(f, openmm.NonbondedForce))
    assert nonbonded.getNonbondedMethod() == openmm.NonbondedForce.CutoffNonPeriodic
    # the cutoff acts: the energy differs from the no-cutoff one, and equals OpenMM's
    assert _energy(ours, xyz) != pytest.approx(_energy(ligand.to_openmm_system(
        constraints=constraints), xyz), abs=1e-3)
    assert _energy(ours, xyz) == pytest.approx(_energy(reference, xyz), rel=1e-6, abs=1e-4)


def test_system_xml_carries_the_options(ligand) -> None:  # type: ignore[no-untyped-def]
    import openmm

    xml = ligand.to_system_xml(nonbonded_method="PME", box_vectors=np.eye(3) * 2.5,
                               constraints="HBonds", remove_cm_motion=True)
    system = openmm.XmlSerializer.deserialize(xml)
    assert system.getNumConstraints() == 9 and system.usesPeriodicBoundaryConditions()
    assert any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces())


def test_bad_options_are_refused(ligand) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="periodic: give box_vectors"):
        ligand.to_openmm_system(nonbonded_method="PME")
    with pytest.raises(ValueError, match="nonbonded_method must be one of"):
        ligand.to_openmm_system(nonbonded_method="Reaction")
    with pytest.raises(ValueError, match="constraints must be one of"):
        ligand.to_openmm_system(constraints="Hbond")
    with pytest.raises(TypeError, match="unknown System option"):
        ligand.to_openmm_system(nonbondedMethod="PME")
    with pytest.raises(ValueError, match="switch_distance"):
        ligand.to_openmm_system(nonbonded_method="CutoffNonPeriodic", nonbonded_cutoff=0.8,
                                switch_distance=0.9)
    with pytest.raises(ValueError, match="non-positive mass"):
        ligand.to_openmm_system(hydrogen_mass=9.0)
