"""Urey-Bradley springs: ``0.5 k (r_13 - length)^2`` between the outer atoms of each angle.

CHARMM's bond-angle coupling. Optional (``ModelConfig.urey_bradley``); reported in the angle
component and force group, since a spring belongs to its angle. Readout: 1 output per angle,
``k = urey_bradley_k softplus(x0)``, starting near zero coupling (``softplus(-4) ~ 0.02``);
the rest length is not learned: it is the outer-atom distance at the equilibrium geometry of the
angle's two bonds and the angle (law of cosines), so the spring couples them without moving the
minimum.

The parameters live in the angle block (``AngleParameters.urey_bradley_k`` and
``urey_bradley_length``, the layout of the shipped API); :class:`UreyBradleyParameters` is the
kind's own view of them. Export: a ``HarmonicBondForce`` of the springs in the angles' force
group (System) and ``AmoebaUreyBradleyForce`` (ffxml), whose generator adds ``2 k`` (AMOEBA's
``k (r - d)^2``) to a ``HarmonicBondForce``.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from espaloma_like.parameters import _TensorGroup
from espaloma_like.termkinds._openmm import raw_method
from espaloma_like.termkinds.base import (
    ParameterField,
    ReadoutContext,
    ReadoutSpec,
    TermKind,
    as_array,
    fmt,
    reversal,
    scaled_deviation,
)
from espaloma_like.termkinds.bonds import harmonic_bond_energy

if TYPE_CHECKING:
    import openmm
    import torch

    from espaloma_like.nn.model import HeadStatistics, JanossyReadout
    from espaloma_like.parameters import ParameterSet


@dataclass(frozen=True)
class UreyBradleyParameters(_TensorGroup):
    """Springs of the angles: ``indices`` (A, 3) the angles, ``k`` (A,) kJ/mol/nm^2,
    ``length`` (A,) nm."""

    indices: torch.Tensor
    k: torch.Tensor
    length: torch.Tensor


def urey_bradley_energy(xyz: torch.Tensor, indices: torch.Tensor, k: torch.Tensor,
                        length: torch.Tensor) -> torch.Tensor:
    """Per-angle Urey-Bradley energies (C, A), kJ/mol: ``0.5 k (r_13 - length)^2``."""
    return harmonic_bond_energy(xyz, indices[:, [0, 2]], k, length)


def outer_distance(bonds: torch.Tensor, bond_length: torch.Tensor, angles: torch.Tensor,
                   angle: torch.Tensor) -> torch.Tensor:
    """Distance (A,) between the outer atoms of each angle at its equilibrium geometry, nm.

    Parameters
    ----------
    bonds : torch.Tensor
        (B, 2) bonds; ``bond_length`` (B,) their equilibrium lengths, nm.
    angles : torch.Tensor
        (A, 3) angles; ``angle`` (A,) their equilibrium angles, rad.
    """
    import torch

    if angles.shape[0] == 0:
        # molecules with a bond but no angle (N2, HCl, [OH-]): no springs; the lookup below
        # would reduce an empty tensor
        return angle.new_zeros(0)
    n = int(max(bonds.max(), angles.max())) + 1
    keys = bonds.min(-1).values * n + bonds.max(-1).values
    order = torch.argsort(keys)

    def length_of(pair: torch.Tensor) -> torch.Tensor:
        key = pair.min(-1).values * n + pair.max(-1).values
        return bond_length[order[torch.searchsorted(keys[order], key)]]

    a = length_of(angles[:, [0, 1]])
    b = length_of(angles[:, [1, 2]])
    return torch.sqrt(a * a + b * b - 2.0 * a * b * torch.cos(angle))


class UreyBradley(TermKind):
    """Urey-Bradley springs of the angles (view :class:`UreyBradleyParameters`)."""

    name = "urey_bradley"
    component = "angle"
    terms = "angles"
    arity = 3
    permutations = reversal(3)
    optional = True
    config_flag = "urey_bradley"  # ModelConfig.urey_bradley, which checkpoints carry
    readout = ReadoutSpec("urey_bradley_readout", 1)
    fields = (ParameterField("k", "kJ/mol/nm^2"), ParameterField("length", "nm"))

    def init_readout(self, module: JanossyReadout) -> None:
        from torch import nn

        # start near zero coupling (softplus(-4) ~ 0.02), whatever the rest of the weights
        nn.init.zeros_(module.head.weight)
        nn.init.constant_(module.head.bias, -4.0)

    def from_readout(self, raw: torch.Tensor, indices: torch.Tensor,
                     context: ReadoutContext) -> UreyBradleyParameters:
        from torch import nn

        bonds, angles = context.blocks["bonds"], context.blocks["angles"]
        return UreyBradleyParameters(
            indices, context.heads.urey_bradley_k * nn.functional.softplus(raw[:, 0]),
            outer_distance(bonds.indices, bonds.length, indices, angles.angle))

    def finalize(self, block: UreyBradleyParameters, blocks: Mapping[str, Any]) -> UreyBradleyParameters:
        # a derived length: recomputed in float64 so the springs rest exactly where the
        # exported bonds and angles do, whatever precision the network ran in
        bonds, angles = blocks["bonds"], blocks["angles"]
        return dataclasses.replace(block, length=outer_distance(bonds.indices, bonds.length,
                                                                angles.indices, angles.angle))

    def prior_deviation(self, predicted: UreyBradleyParameters, reference: UreyBradleyParameters,
                        heads: HeadStatistics) -> torch.Tensor:
        return scaled_deviation(predicted.k, reference.k, heads.urey_bradley_k)

    def get(self, parameters: ParameterSet) -> UreyBradleyParameters | None:
        angles = parameters.angles
        if angles.urey_bradley_k is None or angles.urey_bradley_length is None:
            return None
        return UreyBradleyParameters(angles.indices, angles.urey_bradley_k, angles.urey_bradley_length)

    def put(self, parameters: ParameterSet, block: UreyBradleyParameters) -> ParameterSet:
        if block.indices.shape != parameters.angles.indices.shape:
            raise ValueError("Urey-Bradley springs must come one per angle, in the angles' order")
        return dataclasses.replace(parameters, angles=dataclasses.replace(
            parameters.angles, urey_bradley_k=block.k, urey_bradley_length=block.length))

    def energy(self, block: UreyBradleyParameters, parameters: ParameterSet,
               xyz: torch.Tensor) -> torch.Tensor:
        return urey_bradley_energy(xyz, block.indices, block.k, block.length)

    def openmm_forces(self, block: UreyBradleyParameters, parameters: ParameterSet) -> list[openmm.Force]:
        import openmm

        force = openmm.HarmonicBondForce()
        add_bond = raw_method(openmm.HarmonicBondForce, "addBond")
        for (i, _, m), k, r13 in zip(as_array(block.indices).tolist(), as_array(block.k).tolist(),
                                     as_array(block.length).tolist(), strict=True):
            if k != 0.0:
                add_bond(force, i, m, r13, k)
        return [force] if force.getNumBonds() else []

    def write_ffxml(self, root: ET.Element, classes: Sequence[str], block: UreyBradleyParameters,
                    parameters: ParameterSet) -> None:
        # OpenMM's generator adds 2 k (AMOEBA's k (r - d)^2 convention) to a HarmonicBondForce
        element = ET.SubElement(root, "AmoebaUreyBradleyForce")
        for (i, j, m), k, r13 in zip(as_array(block.indices), as_array(block.k),
                                     as_array(block.length), strict=True):
            if k != 0.0:
                ET.SubElement(element, "UreyBradley", {
                    "class1": classes[i], "class2": classes[j], "class3": classes[m],
                    "d": fmt(r13), "k": fmt(0.5 * k)})


UREY_BRADLEY = UreyBradley()
