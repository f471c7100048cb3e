"""Morse bonds: the anharmonic option, an optional kind (``ModelConfig.extra_terms=("morse",)``).

With it, the bond energy becomes the Morse potential ``D (1 - exp(-a (r - r0)))^2`` with the
harmonic bond's curvature at the minimum, ``a = sqrt(k / (2 D))``: ``k`` and ``r0`` stay the
harmonic bond's parameters and the network learns one more per bond, the well depth ``D``
(kJ/mol). The kind adds the difference to the harmonic bond,

    E = D (1 - exp(-a (r - r0)))^2 - 0.5 k (r - r0)^2,

so the bond block, constraints and every consumer of bond parameters are unchanged, the bond
component (force group 0) is exactly Morse, and the term vanishes with its derivative at
``r0`` (a constrained bond sees none of it). A deep well is the harmonic limit.

Readout: 1 output per bond, ``D = DEPTH_FLOOR + DEPTH_SCALE softplus(x0 + 0.5413)``, starting at
``DEPTH_FLOOR + DEPTH_SCALE`` for every bond (a typical single-bond dissociation energy); the
floor keeps ``a`` finite. Export: an OpenMM ``CustomBondForce`` with per-bond ``D``, ``k`` and
``r0``, in the System and in ffxml (OpenMM's ``CustomBondForce`` generator) alike. ParmEd's
GROMACS and Amber files have no such term: those exports refuse a System with it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from espaloma_like.parameters import _TensorGroup
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
    from espaloma_like.parameters import BondParameters, ParameterSet

#: Scale and floor of the learned well depth, kJ/mol.
DEPTH_SCALE = 400.0
DEPTH_FLOOR = 20.0
#: The energy in OpenMM's expression language; per-bond ``D`` (kJ/mol), ``k`` (kJ/mol/nm^2),
#: ``r0`` (nm).
ENERGY = "D*(1-exp(-sqrt(k/(2*D))*(r-r0)))^2-0.5*k*(r-r0)^2"
PER_BOND = ("D", "k", "r0")


@dataclass(frozen=True)
class MorseParameters(_TensorGroup):
    """Morse well depths of the bonds: ``indices`` (B, 2), the bonds in the bond block's
    order; ``depth`` (B,) kJ/mol."""

    indices: torch.Tensor
    depth: torch.Tensor


def morse_correction_energy(xyz: torch.Tensor, depth: torch.Tensor, bonds: BondParameters
                            ) -> torch.Tensor:
    """Per-bond energies (C, B), kJ/mol, of Morse minus harmonic (see the module docstring).

    Parameters
    ----------
    xyz : torch.Tensor
        (C, N, 3) nm.
    depth : torch.Tensor
        (B,) well depths, kJ/mol.
    bonds : BondParameters
        The harmonic bonds (``k`` kJ/mol/nm^2, ``length`` nm), one per depth.
    """
    import torch

    from espaloma_like.mm.geometry import distances

    dr = distances(xyz, bonds.indices) - bonds.length
    a = torch.sqrt(bonds.k / (2.0 * depth))
    return depth * (1.0 - torch.exp(-a * dr)) ** 2 - 0.5 * bonds.k * dr**2


class Morse(TermKind):
    """Morse bonds, as a correction to the harmonic bonds (block :class:`MorseParameters`)."""

    name = "morse"
    component = "bond"
    terms = "bonds"
    arity = 2
    permutations = reversal(2)
    optional = True
    readout = ReadoutSpec("morse_readout", 1)
    zero_start = True  # every bond starts at the same, typical depth
    fields = (ParameterField("depth", "kJ/mol"),)

    def from_readout(self, raw: torch.Tensor, indices: torch.Tensor,
                     context: ReadoutContext) -> MorseParameters:
        from torch import nn

        depth = DEPTH_FLOOR + DEPTH_SCALE * nn.functional.softplus(raw[:, 0] + 0.5413)
        return MorseParameters(indices, depth)

    def prior_deviation(self, predicted: MorseParameters, reference: MorseParameters,
                        heads: HeadStatistics) -> torch.Tensor:
        return relative_deviation(predicted.depth, reference.depth)

    def put(self, parameters: ParameterSet, block: MorseParameters) -> ParameterSet:
        import torch

        if not torch.equal(block.indices.cpu(), parameters.bonds.indices.cpu()):
            raise ValueError("Morse depths must come one per bond, in the bonds' order")
        return super().put(parameters, block)

    def energy(self, block: MorseParameters, parameters: ParameterSet, xyz: torch.Tensor) -> torch.Tensor:
        return morse_correction_energy(xyz, block.depth, parameters.bonds)

    def _rows(self, block: MorseParameters, parameters: ParameterSet) -> list[tuple[int, int, list[float]]]:
        bonds = parameters.bonds
        values = zip(as_array(block.depth).tolist(), as_array(bonds.k).tolist(),
                     as_array(bonds.length).tolist(), strict=True)
        return [(i, j, list(v)) for (i, j), v in zip(as_array(bonds.indices).tolist(), values, strict=True)]

    def openmm_forces(self, block: MorseParameters, parameters: ParameterSet) -> list[openmm.Force]:
        import openmm

        force = openmm.CustomBondForce(ENERGY)
        for name in PER_BOND:
            force.addPerBondParameter(name)
        for i, j, values in self._rows(block, parameters):
            force.addBond(i, j, values)
        return [force]

    def write_ffxml(self, root: ET.Element, classes: Sequence[str], block: MorseParameters,
                    parameters: ParameterSet) -> None:
        element = ET.SubElement(root, "CustomBondForce", {"energy": ENERGY})
        for name in PER_BOND:
            ET.SubElement(element, "PerBondParameter", {"name": name})
        for i, j, values in self._rows(block, parameters):
            ET.SubElement(element, "Bond", {"class1": classes[i], "class2": classes[j],
                                            **{n: fmt(v) for n, v in zip(PER_BOND, values, strict=True)}})


MORSE = Morse()
