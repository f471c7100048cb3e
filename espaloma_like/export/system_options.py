"""Options of a molecule's ``openmm.System``: cutoffs, PME, constraints, hydrogen mass, box.

The names are OpenMM's (``ForceField.createSystem``) in snake case, and so are the meanings:
``nonbonded_method`` is one of ``NoCutoff``, ``CutoffNonPeriodic``, ``CutoffPeriodic``,
``Ewald``, ``PME``, ``LJPME`` (the ``openmm.app`` constants or their names), ``constraints``
one of ``None``, ``HBonds``, ``AllBonds``, ``HAngles``, and constrained bonds and angles are left
out of the harmonic forces unless ``flexible_constraints``. The defaults differ from
``createSystem`` only where the package's vacuum System always did: no cutoff, no constraints,
no centre-of-mass motion remover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import openmm

    from espaloma_like.parameters import ParameterSet

NONBONDED_METHODS = ("NoCutoff", "CutoffNonPeriodic", "CutoffPeriodic", "Ewald", "PME", "LJPME")
PERIODIC_METHODS = frozenset({"CutoffPeriodic", "Ewald", "PME", "LJPME"})
CONSTRAINTS = ("HBonds", "AllBonds", "HAngles")


def _name(value: Any, choices: tuple[str, ...], what: str) -> str:
    """``openmm.app.PME`` or ``"PME"`` -> ``"PME"``; anything else is a ValueError."""
    name = value if isinstance(value, str) else repr(value)
    for choice in choices:
        if name.lower() == choice.lower():
            return choice
    raise ValueError(f"{what} must be one of {', '.join(choices)} (or the openmm.app constant); "
                     f"got {value!r}")


def _magnitude(value: Any, unit_name: str, what: str) -> float:
    """A float in ``unit_name`` from an ``openmm.unit.Quantity`` or a plain number."""
    if hasattr(value, "value_in_unit"):
        from openmm import unit

        return float(value.value_in_unit(getattr(unit, unit_name)))
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be a number ({unit_name}) or a Quantity; got {value!r}") from err


def _box(value: Any) -> np.ndarray:
    """(3, 3) box vectors in nm from a Quantity, Vec3s, or an array in nm."""
    if hasattr(value, "value_in_unit"):
        from openmm import unit

        value = value.value_in_unit(unit.nanometer)
    box = np.array([[_magnitude(x, "nanometer", "box_vectors") for x in v] for v in value],
                   dtype=np.float64)
    if box.shape != (3, 3):
        raise ValueError(f"box_vectors must be three 3-vectors, got shape {box.shape}")
    if box[0, 1] or box[0, 2] or box[1, 2] or min(box[0, 0], box[1, 1], box[2, 2]) <= 0:
        raise ValueError("box_vectors must be in OpenMM's reduced form: a = (ax, 0, 0), "
                         "b = (bx, by, 0), c = (cx, cy, cz) with ax, by, cz > 0")
    return box


@dataclass(frozen=True)
class SystemOptions:
    """How to build a System; every length in nm, every mass in dalton.

    Attributes
    ----------
    nonbonded_method : str
        One of :data:`NONBONDED_METHODS`.
    nonbonded_cutoff : float
        Cutoff distance, nm (ignored by ``NoCutoff``).
    switch_distance : float or None
        Lennard-Jones switching distance, nm; no switching when None.
    constraints : str or None
        None or one of :data:`CONSTRAINTS`.
    hydrogen_mass : float or None
        Mass given to every hydrogen, dalton, taken from the heavy atom it is bonded to (total
        mass unchanged); masses untouched when None.
    box_vectors : np.ndarray or None
        (3, 3) periodic box vectors, nm; required by the periodic methods.
    ewald_error_tolerance : float
        Relative error tolerance of Ewald, PME and LJPME.
    use_dispersion_correction : bool
        Long-range LJ correction for the periodic methods.
    remove_cm_motion : bool
        Add a ``CMMotionRemover``.
    flexible_constraints : bool
        Keep the harmonic terms of constrained bonds and angles (OpenMM drops them).
    """

    nonbonded_method: str = "NoCutoff"
    nonbonded_cutoff: float = 1.0
    switch_distance: float | None = None
    constraints: str | None = None
    hydrogen_mass: float | None = None
    box_vectors: np.ndarray | None = None
    ewald_error_tolerance: float = 0.0005
    use_dispersion_correction: bool = True
    remove_cm_motion: bool = False
    flexible_constraints: bool = False

    @property
    def is_default(self) -> bool:
        """True when these options leave the vacuum System as it is."""
        return self.box_vectors is None and all(
            getattr(self, name) == f.default for name, f in self.__dataclass_fields__.items()
            if name != "box_vectors")

    @classmethod
    def create(cls, **kwargs: Any) -> SystemOptions:
        """Options from user keywords: ``openmm.app`` constants or names, Quantities or floats.

        Raises
        ------
        TypeError
            An unknown keyword.
        ValueError
            An unknown method or constraint, a periodic method without ``box_vectors``, a
            switching distance not below the cutoff, a non-positive cutoff or mass.
        """
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown System option(s) {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(known))}")
        method = _name(kwargs.get("nonbonded_method", "NoCutoff"), NONBONDED_METHODS,
                       "nonbonded_method")
        cutoff = _magnitude(kwargs.get("nonbonded_cutoff", 1.0), "nanometer", "nonbonded_cutoff")
        if cutoff <= 0:
            raise ValueError(f"nonbonded_cutoff must be positive, got {cutoff} nm")
        switch = kwargs.get("switch_distance")
        switch_nm = None if switch is None else _magnitude(switch, "nanometer", "switch_distance")
        if switch_nm is not None and not 0 <= switch_nm < cutoff:
            raise ValueError(f"switch_distance ({switch_nm} nm) must be below the cutoff ({cutoff} nm)")
        constraints = kwargs.get("constraints")
        constraint_name = None if constraints is None else _name(constraints, CONSTRAINTS, "constraints")
        mass = kwargs.get("hydrogen_mass")
        mass_da = None if mass is None else _magnitude(mass, "dalton", "hydrogen_mass")
        if mass_da is not None and mass_da <= 0:
            raise ValueError(f"hydrogen_mass must be positive, got {mass_da} Da")
        box = kwargs.get("box_vectors")
        box_nm = None if box is None else _box(box)
        if method in PERIODIC_METHODS and box_nm is None:
            raise ValueError(f"nonbonded_method {method} is periodic: give box_vectors")
        return cls(
            nonbonded_method=method, nonbonded_cutoff=cutoff, switch_distance=switch_nm,
            constraints=constraint_name, hydrogen_mass=mass_da, box_vectors=box_nm,
            ewald_error_tolerance=float(kwargs.get("ewald_error_tolerance", 0.0005)),
            use_dispersion_correction=bool(kwargs.get("use_dispersion_correction", True)),
            remove_cm_motion=bool(kwargs.get("remove_cm_motion", False)),
            flexible_constraints=bool(kwargs.get("flexible_constraints", False)),
        )


def apply_system_options(system: openmm.System, parameters: ParameterSet,
                         options: SystemOptions) -> openmm.System:
    """Apply ``options`` in place to a System built by ``to_openmm_system`` from ``parameters``.

    Parameters
    ----------
    system : openmm.System
        The vacuum System of :func:`~espaloma_like.export.openmm_system.to_openmm_system`
        (particles in the order of ``parameters``).
    parameters : ParameterSet
        Its parameters: bond and angle equilibrium values give the constraint distances.
    options : SystemOptions
        What to change.

    Returns
    -------
    openmm.System
        ``system``, changed.

    Raises
    ------
    ValueError
        Hydrogen mass repartitioning would leave a heavy atom with a non-positive mass.
    """
    import openmm

    from espaloma_like.termkinds import FORCE_GROUPS
    from espaloma_like.termkinds.base import as_array

    atomic_numbers = as_array(parameters.atomic_numbers)
    hydrogen = atomic_numbers == 1
    bond_pairs = as_array(parameters.bonds.indices).reshape(-1, 2)
    if options.hydrogen_mass is not None:
        _repartition(system, bond_pairs, hydrogen, options.hydrogen_mass)

    constrained_bonds: set[tuple[int, int]] = set()
    constrained_angles: set[tuple[int, int, int]] = set()
    if options.constraints is not None:
        lengths = {(int(i), int(j)): float(r)
                   for (i, j), r in zip(bond_pairs, as_array(parameters.bonds.length), strict=True)}
        for (i, j), r0 in lengths.items():
            if options.constraints != "HBonds" or hydrogen[i] or hydrogen[j]:
                system.addConstraint(i, j, r0)
                constrained_bonds.add((i, j))
        if options.constraints == "HAngles":
            z = atomic_numbers
            for (i, j, k), theta in zip(as_array(parameters.angles.indices).tolist(),
                                        as_array(parameters.angles.angle).tolist(), strict=True):
                n_h = int(hydrogen[i]) + int(hydrogen[k])
                if n_h == 2 or (n_h == 1 and z[j] == 8):  # as ForceField: H-X-H and H-O-X
                    r1 = lengths[(min(i, j), max(i, j))]
                    r2 = lengths[(min(j, k), max(j, k))]
                    system.addConstraint(i, k, math.sqrt(r1 * r1 + r2 * r2
                                                         - 2 * r1 * r2 * math.cos(theta)))
                    constrained_angles.add((i, j, k))

    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            _configure_nonbonded(force, options)
        elif options.flexible_constraints:
            continue
        elif (isinstance(force, openmm.HarmonicBondForce) and constrained_bonds
              and force.getForceGroup() == FORCE_GROUPS["bond"]):
            # zero force constant: the same energy as OpenMM's leaving the term out
            for n in range(force.getNumBonds()):
                i, j, r0, _k = force.getBondParameters(n)
                if (min(i, j), max(i, j)) in constrained_bonds:
                    force.setBondParameters(n, i, j, r0, 0.0)
        elif (isinstance(force, openmm.HarmonicBondForce) and constrained_angles
              and force.getForceGroup() == FORCE_GROUPS["angle"]):
            # Urey-Bradley springs of constrained angles, which OpenMM also leaves out
            outer = {(min(i, k), max(i, k)) for i, _, k in constrained_angles}
            for n in range(force.getNumBonds()):
                i, k, r13, _k = force.getBondParameters(n)
                if (min(i, k), max(i, k)) in outer:
                    force.setBondParameters(n, i, k, r13, 0.0)
        elif isinstance(force, openmm.HarmonicAngleForce) and constrained_angles:
            for n in range(force.getNumAngles()):
                i, j, k, theta, _k = force.getAngleParameters(n)
                if (i, j, k) in constrained_angles or (k, j, i) in constrained_angles:
                    force.setAngleParameters(n, i, j, k, theta, 0.0)
    if options.box_vectors is not None:
        a, b, c = (openmm.Vec3(*row) for row in options.box_vectors.tolist())
        system.setDefaultPeriodicBoxVectors(a, b, c)
    if options.remove_cm_motion:
        system.addForce(openmm.CMMotionRemover())
    return system


def _repartition(system: openmm.System, bonds: np.ndarray, hydrogen: np.ndarray,
                 hydrogen_mass: float) -> None:
    from openmm import unit

    def mass(index: int) -> float:
        return float(system.getParticleMass(index).value_in_unit(unit.dalton))

    for i, j in bonds.tolist():
        if hydrogen[i] == hydrogen[j]:
            continue
        h, heavy = (i, j) if hydrogen[i] else (j, i)
        transfer = hydrogen_mass - mass(h)
        if mass(heavy) - transfer <= 0:
            raise ValueError(f"hydrogen_mass {hydrogen_mass} Da would leave atom {heavy} with a "
                             "non-positive mass")
        system.setParticleMass(h, hydrogen_mass)
        system.setParticleMass(heavy, mass(heavy) - transfer)


def _configure_nonbonded(force: openmm.NonbondedForce, options: SystemOptions) -> None:
    import openmm

    force.setNonbondedMethod(getattr(openmm.NonbondedForce, options.nonbonded_method))
    force.setCutoffDistance(options.nonbonded_cutoff)
    force.setEwaldErrorTolerance(options.ewald_error_tolerance)
    force.setUseDispersionCorrection(options.use_dispersion_correction)
    if options.switch_distance is not None:
        force.setUseSwitchingFunction(True)
        force.setSwitchingDistance(options.switch_distance)
