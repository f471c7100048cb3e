"""ParameterSet -> ``openmm.System`` and serialized System XML."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from espaloma_like.parameters import ParameterSet
from espaloma_like.termkinds import FORCE_GROUPS, NONBONDED, export_order
from espaloma_like.termkinds.base import as_array

if TYPE_CHECKING:
    import openmm

__all__ = ["FORCE_GROUPS", "atomic_masses", "to_openmm_system", "to_system_xml"]


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


def to_openmm_system(parameters: ParameterSet, masses: np.ndarray | None = None) -> openmm.System:
    """An ``openmm.System`` (vacuum, no cutoff, no constraints) with the given parameters.

    Each term kind present (:mod:`espaloma_like.termkinds`) adds its forces in its force group
    (:data:`FORCE_GROUPS`): HarmonicBondForce (group 0), HarmonicAngleForce (1) plus, when the
    angles carry Urey-Bradley terms, a HarmonicBondForce between their outer atoms (also 1),
    PeriodicTorsionForce for propers (2) and impropers (3), NonbondedForce with 1-2/1-3
    exclusions and scaled 1-4 exceptions (4); optional kinds add theirs (Morse bonds: a
    CustomBondForce in group 0).

    Parameters
    ----------
    parameters : ParameterSet
        The parameters, OpenMM units.
    masses : np.ndarray, optional
        (N,) particle masses, dalton (``MoleculeGraph.masses``: isotope masses for ``[2H]``,
        ``[13C]``); standard element masses when None.
    """
    import openmm

    atomic_numbers = as_array(parameters.atomic_numbers)
    system = openmm.System()
    if masses is None:
        masses = np.asarray(atomic_masses(atomic_numbers), dtype=np.float64)
    masses = np.asarray(masses, dtype=np.float64)
    if masses.shape != atomic_numbers.shape:
        raise ValueError(f"masses must have shape {atomic_numbers.shape}, got {masses.shape}")
    for mass in masses.tolist():
        system.addParticle(mass)
    # every kind adds its forces, in force-group order, then the nonbonded force
    for kind, block in export_order(parameters):
        for force in kind.openmm_forces(block, parameters):
            force.setForceGroup(kind.force_group)
            system.addForce(force)
    for force in NONBONDED.openmm_forces(parameters.nonbonded):
        force.setForceGroup(NONBONDED.force_group)
        system.addForce(force)
    return system


def to_system_xml(parameters: ParameterSet, masses: np.ndarray | None = None) -> str:
    """The System of :func:`to_openmm_system` (same ``masses``), serialized by
    ``openmm.XmlSerializer``."""
    import openmm

    return str(openmm.XmlSerializer.serialize(to_openmm_system(parameters, masses)))
