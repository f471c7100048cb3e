"""Harmonic bonds: ``0.5 k (r - length)^2`` between bonded atoms (OpenMM ``HarmonicBondForce``).

Terms ``(i, j)``, ``i < j`` (symmetry: reversal). Readout: 2 outputs per bond, ``k =
bond_k softplus(x0 + 0.5413)`` (so a zero output gives ``bond_k``) and ``length = (r_i + r_j)
(lo + (hi - lo) sigmoid(x1))`` with ``r`` the single-bond covalent radii and ``(lo, hi)`` the
``bond_length_factor_range`` of :class:`~espaloma_like.nn.model.HeadStatistics`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from espaloma_like.parameters import BondParameters
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


def harmonic_bond_energy(xyz: torch.Tensor, indices: torch.Tensor, k: torch.Tensor,
                         length: torch.Tensor) -> torch.Tensor:
    """Per-bond energies (C, B), kJ/mol: ``0.5 k (r - length)^2``.

    Parameters
    ----------
    xyz : torch.Tensor
        (C, N, 3) nm.
    indices : torch.Tensor
        (B, 2) atom pairs.
    k, length : torch.Tensor
        (B,) kJ/mol/nm^2 and nm.
    """
    from espaloma_like.mm.geometry import distances

    return 0.5 * k * (distances(xyz, indices) - length) ** 2


class Bonds(TermKind):
    """Harmonic bonds (block :class:`~espaloma_like.parameters.BondParameters`)."""

    name = "bonds"
    component = "bond"
    terms = "bonds"
    arity = 2
    permutations = reversal(2)
    readout = ReadoutSpec("bond_readout", 2)
    fields = (ParameterField("k", "kJ/mol/nm^2"), ParameterField("length", "nm"))

    def from_readout(self, raw: torch.Tensor, indices: torch.Tensor,
                     context: ReadoutContext) -> BondParameters:
        import torch
        from torch import nn

        heads = context.heads
        lo, hi = heads.bond_length_factor_range
        reference_length = context.covalent_radii[indices].sum(-1)
        length = reference_length * (lo + (hi - lo) * torch.sigmoid(raw[:, 1]))
        return BondParameters(indices, heads.bond_k * nn.functional.softplus(raw[:, 0] + 0.5413), length)

    def prior_deviation(self, predicted: BondParameters, reference: BondParameters,
                        heads: HeadStatistics) -> torch.Tensor:
        return relative_deviation(predicted.k, reference.k)

    def energy(self, block: BondParameters, parameters: ParameterSet, xyz: torch.Tensor) -> torch.Tensor:
        return harmonic_bond_energy(xyz, block.indices, block.k, block.length)

    def openmm_forces(self, block: BondParameters, parameters: ParameterSet) -> list[openmm.Force]:
        import openmm

        force = openmm.HarmonicBondForce()
        add_bond = raw_method(openmm.HarmonicBondForce, "addBond")
        for (i, j), k, r0 in zip(as_array(block.indices).tolist(), as_array(block.k).tolist(),
                                 as_array(block.length).tolist(), strict=True):
            add_bond(force, i, j, r0, k)
        return [force]

    def write_ffxml(self, root: ET.Element, classes: Sequence[str], block: Any,
                    parameters: ParameterSet) -> None:
        element = ET.SubElement(root, "HarmonicBondForce")
        for (i, j), k, r0 in zip(as_array(block.indices), as_array(block.k), as_array(block.length),
                                 strict=True):
            ET.SubElement(element, "Bond", {
                "class1": classes[i], "class2": classes[j], "length": fmt(r0), "k": fmt(k)})


BONDS = Bonds()
