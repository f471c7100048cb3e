"""Term kinds: one module per kind of MM term, and the registry every layer iterates over.

* :mod:`~espaloma_like.termkinds.base`: the :class:`TermKind` interface, components and force
  groups;
* one module per kind: :mod:`~.bonds`, :mod:`~.angles`, :mod:`~.propers`, :mod:`~.impropers`
  (trefoil); the optional functional-form options :mod:`~.urey_bradley`, :mod:`~.morse`,
  :mod:`~.class2` (bond-bond / bond-angle cross terms), :mod:`~.scaled_14` (learned 1-4 scales),
  :mod:`~.torsion_coupling` (consecutive torsions), :mod:`~.learned_lj` (per-atom LJ, Sage's
  times learned factors, written into the nonbonded block) and :mod:`~.intramolecular_lj` (the
  same, within the molecule only: a correction force), :mod:`~.intramolecular_coulomb` (per-atom
  Coulomb factors within the molecule, a correction force); :mod:`~.nonbonded` (LJ and Coulomb,
  not a network readout);
* :mod:`~espaloma_like.termkinds.registry`: :data:`TERM_KINDS` and the helpers over it.

Importing this package imports neither torch nor OpenMM.
"""

from espaloma_like.termkinds.base import COMPONENTS, FORCE_GROUPS, TermKind
from espaloma_like.termkinds.nonbonded import NONBONDED
from espaloma_like.termkinds.registry import (
    CORE_KINDS,
    OPTIONAL_KINDS,
    TERM_KINDS,
    assemble,
    export_order,
    get_kind,
    model_kinds,
    present_kinds,
)

__all__ = [
    "COMPONENTS",
    "CORE_KINDS",
    "FORCE_GROUPS",
    "NONBONDED",
    "OPTIONAL_KINDS",
    "TERM_KINDS",
    "TermKind",
    "assemble",
    "export_order",
    "get_kind",
    "model_kinds",
    "present_kinds",
]
