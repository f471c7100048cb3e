"""The registry of term kinds: the one list every layer iterates over.

Order matters twice: readouts are created in this order (it fixes a fresh model's random
initialisation), and a kind's readout may use the blocks of the kinds before it (Urey-Bradley
rest lengths from the bonds and angles). To add a kind, write its module (a
:class:`~espaloma_like.termkinds.base.TermKind`) and append it here; see
``docs/adding_a_term.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from espaloma_like.termkinds.angles import ANGLES
from espaloma_like.termkinds.base import TermKind
from espaloma_like.termkinds.bonds import BONDS
from espaloma_like.termkinds.class2 import CLASS2
from espaloma_like.termkinds.impropers import IMPROPERS
from espaloma_like.termkinds.intramolecular_coulomb import INTRAMOLECULAR_COULOMB
from espaloma_like.termkinds.intramolecular_lj import INTRAMOLECULAR_LJ
from espaloma_like.termkinds.learned_lj import LEARNED_LJ
from espaloma_like.termkinds.morse import MORSE
from espaloma_like.termkinds.propers import PROPERS
from espaloma_like.termkinds.scaled_14 import SCALED_14
from espaloma_like.termkinds.torsion_coupling import TORSION_COUPLING
from espaloma_like.termkinds.urey_bradley import UREY_BRADLEY

if TYPE_CHECKING:
    import numpy as np

    from espaloma_like.nn.model import ModelConfig
    from espaloma_like.parameters import NonbondedParameters, ParameterSet

#: Every valence term kind by name, in registry order.
TERM_KINDS: Mapping[str, TermKind] = MappingProxyType(
    {kind.name: kind for kind in (BONDS, ANGLES, PROPERS, IMPROPERS, UREY_BRADLEY, MORSE, CLASS2, SCALED_14,
                                  TORSION_COUPLING, LEARNED_LJ, INTRAMOLECULAR_LJ,
                                  INTRAMOLECULAR_COULOMB)})

#: Kinds every model predicts and every method provides (``ParameterSet`` fields).
CORE_KINDS: tuple[TermKind, ...] = tuple(k for k in TERM_KINDS.values() if not k.optional)

#: Kinds switched on per model (``ModelConfig.extra_terms``, or their own flag).
OPTIONAL_KINDS: tuple[TermKind, ...] = tuple(k for k in TERM_KINDS.values() if k.optional)


def get_kind(name: str) -> TermKind:
    """The kind called ``name``; ``KeyError`` naming the known ones otherwise."""
    try:
        return TERM_KINDS[name]
    except KeyError:
        raise KeyError(f"unknown term kind {name!r}; known: {', '.join(TERM_KINDS)}") from None


def model_kinds(config: ModelConfig) -> tuple[TermKind, ...]:
    """The kinds a model with ``config`` predicts, in registry order."""
    return tuple(kind for kind in TERM_KINDS.values() if kind.enabled(config))


def present_kinds(parameters: ParameterSet) -> list[tuple[TermKind, Any]]:
    """``(kind, block)`` for every kind ``parameters`` holds, in registry order."""
    out = []
    for kind in TERM_KINDS.values():
        block = kind.get(parameters)
        if block is not None:
            out.append((kind, block))
    unknown = set(parameters.extra_terms) - set(TERM_KINDS)
    if unknown:
        raise KeyError(f"parameters hold unknown term kinds {sorted(unknown)}")
    return out


def export_order(parameters: ParameterSet) -> list[tuple[TermKind, Any]]:
    """:func:`present_kinds` ordered by force group (stable): the order forces are written in."""
    return sorted(present_kinds(parameters), key=lambda pair: pair[0].force_group)


def assemble(atomic_numbers: np.ndarray, blocks: Mapping[str, Any], nonbonded: NonbondedParameters,
             provenance: dict[str, str]) -> ParameterSet:
    """A ParameterSet from the blocks of the core kinds and any optional ones, by kind name."""
    from espaloma_like.parameters import ParameterSet

    parameters = ParameterSet(atomic_numbers=atomic_numbers, nonbonded=nonbonded,
                              provenance=provenance, **{k.name: blocks[k.name] for k in CORE_KINDS})
    for kind in OPTIONAL_KINDS:
        if kind.name in blocks:
            parameters = kind.put(parameters, blocks[kind.name])
    return parameters
