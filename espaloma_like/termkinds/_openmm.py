"""OpenMM and ffxml helpers shared by the kind modules (no OpenMM import at module import)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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

