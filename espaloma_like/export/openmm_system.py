"""ParameterSet -> ``openmm.System`` and serialized System XML."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from espaloma_like.parameters import ParameterSet

if TYPE_CHECKING:
    import openmm

#: Force groups, so that per-term energies can be read back from OpenMM.
FORCE_GROUPS = {"bond": 0, "angle": 1, "proper": 2, "improper": 3, "nonbonded": 4}


def atomic_masses(atomic_numbers: np.ndarray) -> list[float]:
    """Masses in dalton for the given atomic numbers (OpenMM's element table)."""
    from openmm.app.element import Element

    return [
        Element.getByAtomicNumber(int(z)).mass.value_in_unit_system(_md()) for z in atomic_numbers
    ]


def _md():
    from openmm import unit

    return unit.md_unit_system


def _add_torsions(
    force: openmm.PeriodicTorsionForce, quads: np.ndarray, k: np.ndarray, phase: np.ndarray
) -> None:
    rows, columns = np.nonzero(k)
    for row, column in zip(rows.tolist(), columns.tolist(), strict=True):
        a, b, c, d = quads[row].tolist()
        force.addTorsion(a, b, c, d, column + 1, float(phase[row, column]), float(k[row, column]))


def to_openmm_system(parameters: ParameterSet) -> openmm.System:
    """An ``openmm.System`` (vacuum, no cutoff, no constraints) with the given parameters.

    Forces: HarmonicBondForce (group 0), HarmonicAngleForce (1), PeriodicTorsionForce for
    propers (2) and impropers (3), NonbondedForce with 1-2/1-3 exclusions and scaled 1-4
    exceptions (4).
    """
    import openmm

    p = parameters.numpy()
    system = openmm.System()
    for mass in atomic_masses(p["atomic_numbers"]):
        system.addParticle(mass)

    bonds = openmm.HarmonicBondForce()
    for (i, j), k, r0 in zip(p["bonds.indices"], p["bonds.k"], p["bonds.length"], strict=True):
        bonds.addBond(int(i), int(j), float(r0), float(k))
    angles = openmm.HarmonicAngleForce()
    for (i, j, m), k, theta in zip(
        p["angles.indices"], p["angles.k"], p["angles.angle"], strict=True
    ):
        angles.addAngle(int(i), int(j), int(m), float(theta), float(k))

    propers = openmm.PeriodicTorsionForce()
    _add_torsions(propers, p["propers.indices"], p["propers.k"], p["propers.phase"])
    impropers = openmm.PeriodicTorsionForce()
    quads = p["impropers.indices"]
    if parameters.impropers.trefoil:
        c, a, b, d = quads.T
        for perm in ((c, a, b, d), (c, b, d, a), (c, d, a, b)):
            _add_torsions(
                impropers, np.stack(perm, -1), p["impropers.k"] / 3.0, p["impropers.phase"]
            )
    else:
        _add_torsions(impropers, quads, p["impropers.k"], p["impropers.phase"])

    nb = parameters.nonbonded
    nonbonded = openmm.NonbondedForce()
    nonbonded.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    q, sigma, eps = p["nonbonded.charges"], p["nonbonded.sigma"], p["nonbonded.epsilon"]
    for qi, si, ei in zip(q, sigma, eps, strict=True):
        nonbonded.addParticle(float(qi), float(si), float(ei))
    for i, j in p["nonbonded.exclusions"]:
        nonbonded.addException(int(i), int(j), 0.0, 1.0, 0.0)
    for i, j in p["nonbonded.pairs_14"]:
        nonbonded.addException(
            int(i), int(j),
            float(nb.coulomb_14_scale * q[i] * q[j]),
            float(0.5 * (sigma[i] + sigma[j])),
            float(nb.lj_14_scale * np.sqrt(eps[i] * eps[j])),
        )

    for force, group in (
        (bonds, "bond"), (angles, "angle"), (propers, "proper"), (impropers, "improper"),
        (nonbonded, "nonbonded"),
    ):
        force.setForceGroup(FORCE_GROUPS[group])
        system.addForce(force)
    return system


def to_system_xml(parameters: ParameterSet) -> str:
    """The System of :func:`to_openmm_system`, serialized by ``openmm.XmlSerializer``."""
    import openmm

    return str(openmm.XmlSerializer.serialize(to_openmm_system(parameters)))
