"""Harmonic angles: ``0.5 k (theta - angle)^2`` (OpenMM ``HarmonicAngleForce``).

Terms ``(i, j, k)``, ``j`` the apex, ``i < k`` (symmetry: reversal). Readout: 2 outputs per
angle, ``k = angle_k softplus(x0 + 0.5413)`` and ``angle = lo + (hi - lo) sigmoid(x1 - 0.125)``
(``angle_range`` of :class:`~espaloma_like.nn.model.HeadStatistics`; the offset starts angles
near 112 degrees). The optional Urey-Bradley springs of the angles are their own kind
(:mod:`espaloma_like.termkinds.urey_bradley`), stored beside the angles in the same block.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import TYPE_CHECKING

from espaloma_like.parameters import AngleParameters
from espaloma_like.termkinds._openmm import raw_method
from espaloma_like.termkinds.base import (
    ParameterField,
    ReadoutContext,
    ReadoutSpec,
    TermKind,
    as_array,
    fmt,
    relative_deviation,
    reversal,
)

if TYPE_CHECKING:
    import openmm
    import torch

    from espaloma_like.nn.model import HeadStatistics
    from espaloma_like.parameters import ParameterSet


def harmonic_angle_energy(xyz: torch.Tensor, indices: torch.Tensor, k: torch.Tensor,
                          angle: torch.Tensor) -> torch.Tensor:
    """Per-angle energies (C, A), kJ/mol: ``0.5 k (theta - angle)^2``.

    Parameters
    ----------
    xyz : torch.Tensor
        (C, N, 3) nm.
    indices : torch.Tensor
        (A, 3) atom triples, apex in the middle.
    k, angle : torch.Tensor
        (A,) kJ/mol/rad^2 and rad.
    """
    from espaloma_like.mm.geometry import angles

    return 0.5 * k * (angles(xyz, indices) - angle) ** 2


class Angles(TermKind):
    """Harmonic angles (block :class:`~espaloma_like.parameters.AngleParameters`)."""

    name = "angles"
    component = "angle"
    terms = "angles"
    arity = 3
    permutations = reversal(3)
    readout = ReadoutSpec("angle_readout", 2)
    fields = (ParameterField("k", "kJ/mol/rad^2"), ParameterField("angle", "rad"),
              ParameterField("urey_bradley_k", "kJ/mol/nm^2"),
              ParameterField("urey_bradley_length", "nm"))

    def from_readout(self, raw: torch.Tensor, indices: torch.Tensor,
                     context: ReadoutContext) -> AngleParameters:
        import torch
        from torch import nn

        heads = context.heads
        lo, hi = heads.angle_range
        angle = lo + (hi - lo) * torch.sigmoid(raw[:, 1] - 0.125)
        return AngleParameters(indices, heads.angle_k * nn.functional.softplus(raw[:, 0] + 0.5413), angle)

    def prior_deviation(self, predicted: AngleParameters, reference: AngleParameters,
                        heads: HeadStatistics) -> torch.Tensor:
        return relative_deviation(predicted.k, reference.k)

    def energy(self, block: AngleParameters, parameters: ParameterSet, xyz: torch.Tensor) -> torch.Tensor:
        return harmonic_angle_energy(xyz, block.indices, block.k, block.angle)

    def openmm_forces(self, block: AngleParameters, parameters: ParameterSet) -> list[openmm.Force]:
        import openmm

        force = openmm.HarmonicAngleForce()
        add_angle = raw_method(openmm.HarmonicAngleForce, "addAngle")
        for (i, j, m), k, theta in zip(as_array(block.indices).tolist(), as_array(block.k).tolist(),
                                       as_array(block.angle).tolist(), strict=True):
            add_angle(force, i, j, m, theta, k)
        return [force]

    def write_ffxml(self, root: ET.Element, classes: Sequence[str], block: AngleParameters,
                    parameters: ParameterSet) -> None:
        element = ET.SubElement(root, "HarmonicAngleForce")
        for (i, j, m), k, theta in zip(as_array(block.indices), as_array(block.k),
                                       as_array(block.angle), strict=True):
            ET.SubElement(element, "Angle", {
                "class1": classes[i], "class2": classes[j], "class3": classes[m],
                "angle": fmt(theta), "k": fmt(k)})


ANGLES = Angles()
