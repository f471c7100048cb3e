"""ParameterSet -> ``openmm.System`` and serialized System XML."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from espaloma_like.parameters import ParameterSet

if TYPE_CHECKING:
    import openmm

#: Force groups, so that per-term energies can be read back from OpenMM.
FORCE_GROUPS = {"bond": 0, "angle": 1, "proper": 2, "improper": 3, "nonbonded": 4}


def atomic_masses(atomic_numbers: np.ndarray) -> list[float]:
    """Masses in dalton for the given atomic numbers (OpenMM's element table)."""
    return [_mass(int(z)) for z in atomic_numbers]


@functools.lru_cache(maxsize=128)
def _mass(atomic_number: int) -> float:
    from openmm.app.element import Element

    return float(Element.getByAtomicNumber(atomic_number).mass.value_in_unit_system(_md()))


def _md():
    from openmm import unit

    return unit.md_unit_system


def _raw(cls: type, method: str):
    """OpenMM's SWIG entry point behind ``cls.method``, skipping the unit checks of the Python
    wrapper (a third of the export time for plain floats in MD units); the public method when
    the low-level name is not there."""
    import openmm

    raw = getattr(openmm._openmm, f"{cls.__name__}_{method}", None)
    if raw is None:
        return lambda force, *args: getattr(force, method)(*args)
    return raw


def _add_torsions(
    force: openmm.PeriodicTorsionForce, quads: np.ndarray, k: np.ndarray, phase: np.ndarray
) -> None:
    import openmm

    add = _raw(openmm.PeriodicTorsionForce, "addTorsion")
    rows, columns = np.nonzero(k)
    quads = quads.tolist()
    for row, column, kk, ph in zip(rows.tolist(), columns.tolist(), k[rows, columns].tolist(),
                                   phase[rows, columns].tolist(), strict=True):
        a, b, c, d = quads[row]
        add(force, a, b, c, d, column + 1, ph, kk)


def to_openmm_system(parameters: ParameterSet, masses: np.ndarray | None = None) -> openmm.System:
    """An ``openmm.System`` (vacuum, no cutoff, no constraints) with the given parameters.

    Forces: HarmonicBondForce (group 0), HarmonicAngleForce (1) plus, when the angles carry
    Urey-Bradley terms, a HarmonicBondForce between their outer atoms (also group 1),
    PeriodicTorsionForce for propers (2) and impropers (3), NonbondedForce with 1-2/1-3
    exclusions and scaled 1-4 exceptions (4).

    Parameters
    ----------
    parameters : ParameterSet
        The parameters, OpenMM units.
    masses : np.ndarray, optional
        (N,) particle masses, dalton (``MoleculeGraph.masses``: isotope masses for ``[2H]``,
        ``[13C]``); standard element masses when None.
    """
    import openmm

    p = parameters.numpy()
    system = openmm.System()
    if masses is None:
        masses = np.asarray(atomic_masses(p["atomic_numbers"]), dtype=np.float64)
    masses = np.asarray(masses, dtype=np.float64)
    if masses.shape != p["atomic_numbers"].shape:
        raise ValueError(f"masses must have shape {p['atomic_numbers'].shape}, got {masses.shape}")
    for mass in masses.tolist():
        system.addParticle(mass)

    bonds = openmm.HarmonicBondForce()
    add_bond = _raw(openmm.HarmonicBondForce, "addBond")
    for (i, j), k, r0 in zip(p["bonds.indices"].tolist(), p["bonds.k"].tolist(),
                             p["bonds.length"].tolist(), strict=True):
        add_bond(bonds, i, j, r0, k)
    angles = openmm.HarmonicAngleForce()
    add_angle = _raw(openmm.HarmonicAngleForce, "addAngle")
    for (i, j, m), k, theta in zip(p["angles.indices"].tolist(), p["angles.k"].tolist(),
                                   p["angles.angle"].tolist(), strict=True):
        add_angle(angles, i, j, m, theta, k)
    urey_bradley = None
    if "angles.urey_bradley_k" in p:
        # outer-atom springs of the angles, in the angles' force group
        urey_bradley = openmm.HarmonicBondForce()
        for (i, _, m), k, r13 in zip(p["angles.indices"].tolist(), p["angles.urey_bradley_k"].tolist(),
                                     p["angles.urey_bradley_length"].tolist(), strict=True):
            if k != 0.0:
                add_bond(urey_bradley, i, m, r13, k)

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
    add_particle = _raw(openmm.NonbondedForce, "addParticle")
    add_exception = _raw(openmm.NonbondedForce, "addException")
    for qi, si, ei in zip(q.tolist(), sigma.tolist(), eps.tolist(), strict=True):
        add_particle(nonbonded, qi, si, ei)
    for i, j in p["nonbonded.exclusions"].tolist():
        add_exception(nonbonded, i, j, 0.0, 1.0, 0.0, False)
    pairs = p["nonbonded.pairs_14"]
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        charge_products = (nb.coulomb_14_scale * q[i] * q[j]).tolist()
        sigmas = (0.5 * (sigma[i] + sigma[j])).tolist()
        epsilons = (nb.lj_14_scale * np.sqrt(eps[i] * eps[j])).tolist()
        for a, b, qq, ss, ee in zip(i.tolist(), j.tolist(), charge_products, sigmas, epsilons,
                                    strict=True):
            add_exception(nonbonded, a, b, qq, ss, ee, False)

    forces = [(bonds, "bond"), (angles, "angle"), (propers, "proper"), (impropers, "improper"),
              (nonbonded, "nonbonded")]
    if urey_bradley is not None and urey_bradley.getNumBonds():
        forces.insert(2, (urey_bradley, "angle"))
    for force, group in forces:
        force.setForceGroup(FORCE_GROUPS[group])
        system.addForce(force)
    return system


def to_system_xml(parameters: ParameterSet, masses: np.ndarray | None = None) -> str:
    """The System of :func:`to_openmm_system` (same ``masses``), serialized by
    ``openmm.XmlSerializer``."""
    import openmm

    return str(openmm.XmlSerializer.serialize(to_openmm_system(parameters, masses)))
