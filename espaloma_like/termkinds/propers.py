"""Proper torsions: ``sum_n k_n (1 + cos(n phi - phase_n))``, n = 1..6 (OpenMM
``PeriodicTorsionForce``).

Terms ``(i, j, k, l)`` along a bonded path, oriented so that ``(i, j, k, l) < (l, k, j, i)``
(symmetry: reversal); torsions through a linear centre are not enumerated
(:mod:`espaloma_like.terms`). Readout: 6 outputs per torsion, signed constants ``k_n =
proper_k x_n`` (phase 0), soft-thresholded by ``proper_k_threshold`` (exact zeros below it, so
the exported System carries only the terms that matter).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import TYPE_CHECKING

from espaloma_like.parameters import N_PERIODICITIES, TorsionParameters
from espaloma_like.termkinds._openmm import add_torsions, torsion_attributes
from espaloma_like.termkinds.base import (
    ParameterField,
    ReadoutContext,
    ReadoutSpec,
    TermKind,
    as_array,
    reversal,
    scaled_deviation,
)

if TYPE_CHECKING:
    import openmm
    import torch

    from espaloma_like.nn.model import HeadStatistics
    from espaloma_like.parameters import ParameterSet


def periodic_torsion_energy(xyz: torch.Tensor, indices: torch.Tensor, k: torch.Tensor,
                            phase: torch.Tensor) -> torch.Tensor:
    """Per-torsion energies (C, T), kJ/mol: ``sum_n k_n (1 + cos(n phi - phase_n))``.

    Parameters
    ----------
    xyz : torch.Tensor
        (C, N, 3) nm.
    indices : torch.Tensor
        (T, 4) atom quadruples.
    k, phase : torch.Tensor
        (T, 6) kJ/mol and rad; column ``n - 1`` holds periodicity ``n``.
    """
    import torch

    from espaloma_like.mm.geometry import dihedrals

    phi = dihedrals(xyz, indices)
    n = torch.arange(1, N_PERIODICITIES + 1, dtype=phi.dtype, device=phi.device)
    return (k * (1.0 + torch.cos(phi[..., None] * n - phase))).sum(-1)


def soft_threshold(values: torch.Tensor, threshold: float) -> torch.Tensor:
    """sign(x) max(|x| - threshold, 0): exact zeros below the threshold, continuous above."""
    import torch
    from torch import nn

    if threshold == 0.0:
        return values
    return torch.sign(values) * nn.functional.relu(values.abs() - threshold)


class Propers(TermKind):
    """Proper torsions (block :class:`~espaloma_like.parameters.TorsionParameters`)."""

    name = "propers"
    component = "proper"
    terms = "propers"
    arity = 4
    permutations = reversal(4)
    readout = ReadoutSpec("proper_readout", N_PERIODICITIES)
    fields = (ParameterField("k", "kJ/mol", "6"), ParameterField("phase", "rad", "6"))

    def from_readout(self, raw: torch.Tensor, indices: torch.Tensor,
                     context: ReadoutContext) -> TorsionParameters:
        import torch

        heads = context.heads
        k = soft_threshold(heads.proper_k * raw, heads.proper_k_threshold)
        return TorsionParameters(indices, k, torch.zeros_like(k))

    def prior_deviation(self, predicted: TorsionParameters, reference: TorsionParameters,
                        heads: HeadStatistics) -> torch.Tensor:
        return scaled_deviation(predicted.k, reference.k, heads.proper_k)

    def energy(self, block: TorsionParameters, parameters: ParameterSet, xyz: torch.Tensor) -> torch.Tensor:
        return periodic_torsion_energy(xyz, block.indices, block.k, block.phase)

    def openmm_forces(self, block: TorsionParameters, parameters: ParameterSet) -> list[openmm.Force]:
        import openmm

        force = openmm.PeriodicTorsionForce()
        add_torsions(force, as_array(block.indices), as_array(block.k), as_array(block.phase))
        return [force]

    def write_ffxml(self, root: ET.Element, classes: Sequence[str], block: TorsionParameters,
                    parameters: ParameterSet) -> None:
        element = ET.SubElement(root, "PeriodicTorsionForce")
        for quad, k, phase in zip(as_array(block.indices).tolist(), as_array(block.k),
                                  as_array(block.phase), strict=True):
            attrs = torsion_attributes(classes, quad, k, phase)
            if attrs:
                ET.SubElement(element, "Proper", attrs)


PROPERS = Propers()
