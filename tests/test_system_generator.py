"""SystemGenerator: a solvated protein-ligand System in one call, Amber and CHARMM, with MD."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from openmm_system_helpers import dialanine, run_md

from espaloma_like.api import parametrize
from espaloma_like.molecule import generate_conformers

PARACETAMOL = "CC(=O)Nc1ccc(O)cc1"


def _complex(ligand):  # type: ignore[no-untyped-def]
    """ALA-ALA plus the ligand 0.9 nm from it, as a Modeller."""
    import openmm.app as app
    from openmm import unit

    topology, xyz = dialanine()
    modeller = app.Modeller(topology, xyz * unit.nanometer)
    ligand_xyz = generate_conformers(ligand.molecule, 1, seed=0)[0]
    ligand_xyz = ligand_xyz - ligand_xyz.mean(0) + xyz.mean(0) + np.array([0.9, 0.0, 0.0])
    modeller.add(ligand.to_openmm_topology("LIG"), ligand_xyz * unit.nanometer)
    return modeller


def _check_ligand(system, generator, ligand) -> None:  # type: ignore[no-untyped-def]
    """The ligand residue got the model's template: its charges and its own 1-4 Coulomb."""
    import openmm
    from openmm import unit

    (residue, name), = generator.ligand_templates.items()
    assert residue.name == "LIG" and name == ligand.molecule.smiles
    indices = [atom.index for atom in residue.atoms()]
    force = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    charges = np.array([force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
                        for i in indices])
    assert np.allclose(charges, ligand.charges, atol=1e-10)
    first = indices[0]
    pairs_14 = {(int(i) + first, int(j) + first)
                for i, j in ligand.parameters.numpy()["nonbonded.pairs_14"].reshape(-1, 2)}
    found = 0
    for n in range(force.getNumExceptions()):
        i, j, qq, _sigma, _epsilon = force.getExceptionParameters(n)
        if (min(i, j), max(i, j)) in pairs_14:
            expected = ligand.parameters.nonbonded.coulomb_14_scale * charges[i - first] * \
                charges[j - first]
            assert qq.value_in_unit(unit.elementary_charge**2) == pytest.approx(expected, abs=1e-9)
            found += 1
    assert found == len(pairs_14) > 0


@pytest.mark.parametrize("forcefields", [
    ["amber14-all.xml", "amber14/tip3p.xml"],
    pytest.param(["charmm36.xml", "charmm36/water.xml"], marks=pytest.mark.slow),  # ~25 s
], ids=["amber14", "charmm36"])
def test_solvated_protein_ligand_system_in_one_call_runs_md(forcefields, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import openmm
    import openmm.app as app
    from openmm import unit

    from espaloma_like import SystemGenerator

    started = time.perf_counter()
    ligand = parametrize(PARACETAMOL)
    generator = SystemGenerator(
        forcefields, molecules=[PARACETAMOL], cache=tmp_path / "templates.json",
        forcefield_kwargs={"constraints": app.HBonds, "removeCMMotion": True},
        periodic_forcefield_kwargs={"nonbondedMethod": app.PME,
                                    "nonbondedCutoff": 0.8 * unit.nanometer})
    modeller = _complex(ligand)
    modeller.addSolvent(generator.forcefield, model="tip3p", padding=0.5 * unit.nanometer,
                        residueTemplates=generator.residue_templates(modeller.topology))
    system = generator.create_system(modeller.topology)

    assert system.getNumParticles() == modeller.topology.getNumAtoms() > 1000
    assert system.usesPeriodicBoundaryConditions()
    nonbonded = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    assert nonbonded.getNonbondedMethod() == openmm.NonbondedForce.PME
    assert system.getNumConstraints() > 0
    _check_ligand(system, generator, ligand)
    start, end = run_md(modeller.topology, system, modeller.positions, steps=200)
    assert np.isfinite(start) and np.isfinite(end) and start < 0 and end < 0
    assert (tmp_path / "templates.json").is_file()
    assert time.perf_counter() - started < 60


def test_periodic_and_nonperiodic_keywords() -> None:
    import openmm
    import openmm.app as app

    from espaloma_like import SystemGenerator

    ligand = parametrize("CCO")
    generator = SystemGenerator(["amber14/tip3p.xml"])
    topology = ligand.to_openmm_topology("ETH")
    vacuum = generator.create_system(topology, molecules="CCO")
    nonbonded = next(f for f in vacuum.getForces() if isinstance(f, openmm.NonbondedForce))
    assert nonbonded.getNonbondedMethod() == openmm.NonbondedForce.NoCutoff
    topology.setPeriodicBoxVectors(np.eye(3) * 2.0)
    periodic = generator.create_system(topology)
    nonbonded = next(f for f in periodic.getForces() if isinstance(f, openmm.NonbondedForce))
    assert nonbonded.getNonbondedMethod() == openmm.NonbondedForce.PME
    with pytest.raises(ValueError, match="nonbondedMethod"):
        SystemGenerator(["amber14/tip3p.xml"], forcefield_kwargs={"nonbondedMethod": app.PME})
