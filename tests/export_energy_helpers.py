"""Per-term energies of an OpenMM System, grouped by what the terms are (bond, angle, torsion,
nonbonded), whatever the force groups and force order a file reader chose."""

from __future__ import annotations

import numpy as np
import openmm
from openmm import unit

TERMS = ("bond", "angle", "torsion", "nonbonded")


def _split_springs(system: openmm.System, bonded_pairs: set[frozenset[int]]) -> None:
    """Replace every HarmonicBondForce by one of bonds and one of Urey-Bradley springs (pairs
    that are not bonds): readers put the springs in the bond force or in a force of their own."""
    for index in reversed(range(system.getNumForces())):
        force = system.getForce(index)
        if not isinstance(force, openmm.HarmonicBondForce):
            continue
        bonds, springs = openmm.HarmonicBondForce(), openmm.HarmonicBondForce()
        for n in range(force.getNumBonds()):
            i, j, length, k = force.getBondParameters(n)
            (bonds if frozenset((i, j)) in bonded_pairs else springs).addBond(i, j, length, k)
        system.removeForce(index)
        system.addForce(bonds)
        system.addForce(springs)


def _term(force: openmm.Force, bonded_pairs: set[frozenset[int]]) -> str | None:
    if isinstance(force, openmm.HarmonicBondForce):
        pairs = {frozenset(force.getBondParameters(i)[:2]) for i in range(force.getNumBonds())}
        # a Urey-Bradley spring joins the outer atoms of an angle: never a bond
        return "bond" if pairs <= bonded_pairs else "angle"
    if isinstance(force, openmm.HarmonicAngleForce):
        return "angle"
    if isinstance(force, openmm.PeriodicTorsionForce):
        return "torsion"
    if isinstance(force, openmm.NonbondedForce):
        return "nonbonded"
    if isinstance(force, openmm.CMMotionRemover):
        return None
    raise AssertionError(f"unexpected force {type(force).__name__}")


def term_energies(system: openmm.System, positions_nm: np.ndarray,
                  bonds: np.ndarray) -> dict[str, float]:
    """Energy (kJ/mol) of each of :data:`TERMS` in ``system`` at ``positions_nm`` ((N, 3), nm);
    ``bonds`` ((B, 2)) tells bond springs from Urey-Bradley springs."""
    system = openmm.XmlSerializer.clone(system)
    bonded = {frozenset(map(int, pair)) for pair in bonds.tolist()}
    _split_springs(system, bonded)
    groups = {term: index for index, term in enumerate(TERMS)}
    for force in system.getForces():
        term = _term(force, bonded)
        force.setForceGroup(groups[term] if term else 31)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions_nm)
    return {term: context.getState(getEnergy=True, groups={index}).getPotentialEnergy()
            .value_in_unit(unit.kilojoule_per_mole) for term, index in groups.items()}


def relative_differences(reference: dict[str, float], other: dict[str, float],
                         floor: float = 1.0) -> dict[str, float]:
    """|other - reference| / max(|reference|, floor kJ/mol) per term."""
    return {term: abs(other[term] - reference[term]) / max(abs(reference[term]), floor)
            for term in reference}
