"""OpenMM and ffxml helpers shared by the kind modules (no OpenMM import at module import)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like.parameters import N_PERIODICITIES
from espaloma_like.termkinds.base import fmt

if TYPE_CHECKING:
    import openmm

def raw_method(cls: type, method: str) -> Callable[..., Any]:
    """OpenMM's SWIG entry point behind ``cls.method``, skipping the unit checks of the Python
    wrapper (a third of the export time for plain floats in MD units); the public method when
    the low-level name is not there."""
    import openmm

    raw = getattr(openmm._openmm, f"{cls.__name__}_{method}", None)
    if raw is None:
        return lambda force, *args: getattr(force, method)(*args)
    return raw


def add_torsions(force: openmm.PeriodicTorsionForce, quads: np.ndarray, k: np.ndarray,
                 phase: np.ndarray) -> None:
    """Add every non-zero periodicity of (T, 4) ``quads`` with (T, 6) ``k`` (kJ/mol) and
    ``phase`` (rad) to ``force``."""
    import openmm

    add = raw_method(openmm.PeriodicTorsionForce, "addTorsion")
    rows, columns = np.nonzero(k)
    quad_list = quads.tolist()
    for row, column, kk, ph in zip(rows.tolist(), columns.tolist(), k[rows, columns].tolist(),
                                   phase[rows, columns].tolist(), strict=True):
        a, b, c, d = quad_list[row]
        add(force, a, b, c, d, column + 1, ph, kk)


def torsion_attributes(classes: Sequence[str], quad: Sequence[int], k: np.ndarray,
                       phase: np.ndarray) -> dict[str, str] | None:
    """ffxml attributes of one torsion entry (its non-zero periodicities); None if all are zero."""
    attrs = {f"class{n + 1}": classes[a] for n, a in enumerate(quad)}
    term = 0
    for column in range(N_PERIODICITIES):
        if k[column] != 0.0:
            term += 1
            attrs[f"periodicity{term}"] = str(column + 1)
            attrs[f"phase{term}"] = fmt(phase[column])
            attrs[f"k{term}"] = fmt(k[column])
    return attrs if term else None


def pair_correction_force(expression: str, per_bond: Sequence[str],
                          rows: Iterable[tuple[int, int, Sequence[float]]]) -> list[openmm.Force]:
    """A ``CustomBondForce`` of ``expression`` over atom pairs ``(i, j, values)``, one value per
    name of ``per_bond``; no periodic boundary conditions, as the ``NonbondedForce``
    exceptions such a correction stands beside (and the other bonded forces), under any
    nonbonded method. ``[]`` when there is no row."""
    import openmm

    force = openmm.CustomBondForce(expression)
    for name in per_bond:
        force.addPerBondParameter(name)
    force.setUsesPeriodicBoundaryConditions(False)
    for i, j, values in rows:
        force.addBond(i, j, list(values))
    return [force] if force.getNumBonds() else []
