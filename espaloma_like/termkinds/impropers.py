"""Impropers: periodic torsions about every atom with exactly three neighbours.

Terms ``(c, a, b, d)``, central atom first, outer atoms ascending; symmetry: the cyclic
rotations of the outer atoms (:data:`TREFOIL`). With ``trefoil=True`` (the model, Sage) a term
is the SMIRNOFF trefoil: the torsions ``(c, a, b, d)``, ``(c, b, d, a)``, ``(c, d, a, b)``,
each at ``k / 3``, written to ffxml with ``ordering="smirnoff"`` so that OpenMM generates the
same three; with ``trefoil=False`` (GAFF) a term is one torsion in Amber order, central atom
third. Readout: 1 output per improper, ``k_2 = improper_k softplus(x0)`` with phase pi
(the only non-zero periodicity).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like.parameters import N_PERIODICITIES, TorsionParameters
from espaloma_like.termkinds._openmm import add_torsions, torsion_attributes
from espaloma_like.termkinds.base import (
    ParameterField,
    ReadoutContext,
    ReadoutSpec,
    TermKind,
    as_array,
    scaled_deviation,
)
from espaloma_like.termkinds.propers import periodic_torsion_energy

if TYPE_CHECKING:
    import openmm
    import torch

    from espaloma_like.nn.model import HeadStatistics
    from espaloma_like.parameters import ParameterSet

#: The cyclic orders of the outer atoms of ``(c, a, b, d)``: the symmetry of an improper, its
#: Janossy orderings and the three torsions of the trefoil.
TREFOIL = ((0, 1, 2, 3), (0, 2, 3, 1), (0, 3, 1, 2))


def trefoil_torsions(impropers: np.ndarray) -> np.ndarray:
    """Expand (I, 4) central-first impropers into the (I, 3, 4) trefoil torsion quadruples.

    For ``(c, a, b, d)`` the torsions are ``(c, a, b, d)``, ``(c, b, d, a)``, ``(c, d, a, b)``,
    which is what OpenMM generates for ``ordering="smirnoff"`` and what OpenFF Interchange writes.
    """
    impropers = np.asarray(impropers, dtype=np.int64).reshape(-1, 4)
    return np.stack([impropers[:, list(p)] for p in TREFOIL], 1)


def improper_energy(xyz: torch.Tensor, impropers: TorsionParameters) -> torch.Tensor:
    """Per-improper energies (C, I), kJ/mol, trefoil-expanded when ``impropers.trefoil``."""
    if not impropers.trefoil:
        return periodic_torsion_energy(xyz, impropers.indices, impropers.k, impropers.phase)
    total = xyz.new_zeros((xyz.shape[0], impropers.indices.shape[0]))
    for permutation in TREFOIL:
        total = total + periodic_torsion_energy(xyz, impropers.indices[:, list(permutation)],
                                                impropers.k / 3.0, impropers.phase)
    return total


def improper_phase(k: torch.Tensor) -> torch.Tensor:
    """(I, 6) phases of the model's impropers: pi for n = 2, zero elsewhere (dtype of ``k``)."""
    import torch

    phase = torch.zeros_like(k)
    phase[:, 1] = torch.pi
    return phase


class Impropers(TermKind):
    """Impropers (block :class:`~espaloma_like.parameters.TorsionParameters`, ``trefoil``)."""

    name = "impropers"
    component = "improper"
    terms = "impropers"
    arity = 4
    permutations = TREFOIL
    readout = ReadoutSpec("improper_readout", 1)
    fields = (ParameterField("k", "kJ/mol", "6"), ParameterField("phase", "rad", "6"))

    def from_readout(self, raw: torch.Tensor, indices: torch.Tensor,
                     context: ReadoutContext) -> TorsionParameters:
        from torch import nn

        k = raw.new_zeros((raw.shape[0], N_PERIODICITIES))
        k[:, 1] = context.heads.improper_k * nn.functional.softplus(raw[:, 0])
        return TorsionParameters(indices, k, improper_phase(k), trefoil=True)

    def finalize(self, block: TorsionParameters, blocks: Mapping[str, Any]) -> TorsionParameters:
        import dataclasses

        # pi at the export precision, not a float32 pi widened
        return dataclasses.replace(block, phase=improper_phase(block.k))

    def prior_deviation(self, predicted: TorsionParameters, reference: TorsionParameters,
                        heads: HeadStatistics) -> torch.Tensor:
        return scaled_deviation(predicted.k, reference.k, heads.improper_k)

    def energy(self, block: TorsionParameters, parameters: ParameterSet, xyz: torch.Tensor) -> torch.Tensor:
        return improper_energy(xyz, block)

    def openmm_forces(self, block: TorsionParameters, parameters: ParameterSet) -> list[openmm.Force]:
        import openmm

        force = openmm.PeriodicTorsionForce()
        quads, k, phase = as_array(block.indices), as_array(block.k), as_array(block.phase)
        if block.trefoil:
            # one permutation at a time over all impropers: the order OpenMM's sums always saw
            for torsions in trefoil_torsions(quads).transpose(1, 0, 2):
                add_torsions(force, torsions, k / 3.0, phase)
        else:
            add_torsions(force, quads, k, phase)
        return [force]

    def write_ffxml(self, root: ET.Element, classes: Sequence[str], block: TorsionParameters,
                    parameters: ParameterSet) -> None:
        # OpenMM's "smirnoff" ordering adds the trefoil (central first) from one entry; its
        # "amber" ordering without wildcards adds (class2, class3, class1, class4) exactly
        trefoil = block.trefoil
        element = ET.SubElement(root, "PeriodicTorsionForce",
                                {"ordering": "smirnoff" if trefoil else "amber"})
        scale = 1.0 / 3.0 if trefoil else 1.0
        for quad, k, phase in zip(as_array(block.indices).tolist(), as_array(block.k),
                                  as_array(block.phase), strict=True):
            ordered = quad if trefoil else [quad[2], quad[0], quad[1], quad[3]]
            attrs = torsion_attributes(classes, ordered, k * scale, phase)
            if attrs:
                ET.SubElement(element, "Improper", attrs)


IMPROPERS = Impropers()
