"""Torsion-torsion coupling: the CMAP-like option, an optional kind
(``ModelConfig.extra_terms=("torsion_coupling",)``).

It acts on torsion pairs, chains ``i-j-k-l-m`` whose torsions ``phi1 = dihedral(i, j, k, l)`` and
``phi2 = dihedral(j, k, l, m)`` are both propers (two consecutive torsions sharing the bonds
``j-k`` and ``k-l``; none of ``j``, ``k``, ``l`` a linear centre, five distinct atoms;
enumerated by :func:`espaloma_like.terms.torsion_pairs`). Reading the chain backwards swaps
``phi1`` and ``phi2`` (the dihedral is invariant under reversal of its four atoms), so the
energy is a Fourier series symmetric in the two angles,

    E = sum_{n=1,2} k_plus_n cos(n (phi1 + phi2)) + k_minus_n cos(n (phi1 - phi2)),

with signed couplings ``k_plus_n``, ``k_minus_n`` (kJ/mol): the part of a 2-D torsion map that
the separate 1-D proper series cannot express. It reports into the proper component (force
group 2).

Readout: 4 outputs per chain (a Janossy readout over both orientations), ``k = COUPLING_SCALE
tanh(x)`` (bounded, either sign); the head's weight and bias start at zero, so every coupling
starts at exactly 0 and a model grafted with the kind starts as the model without it. The scale
is a module constant, not a :class:`~espaloma_like.nn.model.HeadStatistics` field, so no existing
checkpoint changes. Export: one OpenMM ``CustomCompoundBondForce`` (5 particles, per-bond
couplings) in the System. OpenMM's ``ForceField`` has no generator for that force (its
``CMAPTorsion`` is a bicubic grid, not this series), so the kind is System-only: a ForceField
XML file carries it only inside the package's ``<EspalomaLikeMolecule>`` element, and ParmEd's
GROMACS and Amber files refuse it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from espaloma_like.parameters import _TensorGroup
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

#: Bound of every coupling, kJ/mol: ``k = COUPLING_SCALE tanh(x)``.
COUPLING_SCALE = 4.0
#: Periodicities of the series.
N_COUPLING_PERIODICITIES = 2
#: The energy in OpenMM's expression language; per-bond couplings (kJ/mol), ``kp<n>`` of
#: ``cos(n (phi1 + phi2))``, ``km<n>`` of ``cos(n (phi1 - phi2))``.
ENERGY = ("kp1*cos(phi1+phi2)+km1*cos(phi1-phi2)+kp2*cos(2*(phi1+phi2))+km2*cos(2*(phi1-phi2));"
          "phi1=dihedral(p1,p2,p3,p4);phi2=dihedral(p2,p3,p4,p5)")
PER_BOND = ("kp1", "kp2", "km1", "km2")


@dataclass(frozen=True)
class TorsionCouplingParameters(_TensorGroup):
    """Couplings of the torsion pairs.

    Attributes
    ----------
    indices : torch.Tensor
        (T, 5) chains ``(i, j, k, l, m)``, ``i < m``.
    k_plus : torch.Tensor
        (T, 2) kJ/mol; column ``n - 1`` multiplies ``cos(n (phi1 + phi2))``.
    k_minus : torch.Tensor
        (T, 2) kJ/mol; column ``n - 1`` multiplies ``cos(n (phi1 - phi2))``.
    """

    indices: torch.Tensor
    k_plus: torch.Tensor
    k_minus: torch.Tensor


def torsion_coupling_energy(xyz: torch.Tensor, indices: torch.Tensor, k_plus: torch.Tensor,
                            k_minus: torch.Tensor) -> torch.Tensor:
    """Per-chain energies (C, T), kJ/mol (see the module docstring).

    Parameters
    ----------
    xyz : torch.Tensor
        (C, N, 3) nm.
    indices : torch.Tensor
        (T, 5) chains ``(i, j, k, l, m)``.
    k_plus, k_minus : torch.Tensor
        (T, 2) couplings, kJ/mol; column ``n - 1`` holds periodicity ``n``.
    """
    import torch

    from espaloma_like.mm.geometry import dihedrals

    phi1 = dihedrals(xyz, indices[:, :4])
    phi2 = dihedrals(xyz, indices[:, 1:])
    n = torch.arange(1, k_plus.shape[-1] + 1, dtype=phi1.dtype, device=phi1.device)
    plus = torch.cos((phi1 + phi2)[..., None] * n)
    minus = torch.cos((phi1 - phi2)[..., None] * n)
    return (k_plus * plus + k_minus * minus).sum(-1)


class TorsionCoupling(TermKind):
    """Torsion-torsion coupling on torsion pairs (block :class:`TorsionCouplingParameters`)."""

    name = "torsion_coupling"
    component = "proper"
    terms = "torsion_pairs"
    arity = 5
    permutations = reversal(5)
    optional = True
    readout = ReadoutSpec("torsion_coupling_readout", 2 * N_COUPLING_PERIODICITIES)
    zero_start = True  # every coupling starts at exactly 0: grafted on, the kind changes nothing
    fields = (ParameterField("k_plus", "kJ/mol", str(N_COUPLING_PERIODICITIES)),
              ParameterField("k_minus", "kJ/mol", str(N_COUPLING_PERIODICITIES)))
    system_only = ("OpenMM's ForceField has no generator for CustomCompoundBondForce "
                   "(CMAPTorsionForce is a bicubic grid, not this Fourier series)")

    def from_readout(self, raw: torch.Tensor, indices: torch.Tensor,
                     context: ReadoutContext) -> TorsionCouplingParameters:
        import torch

        k = COUPLING_SCALE * torch.tanh(raw)
        n = N_COUPLING_PERIODICITIES
        return TorsionCouplingParameters(indices, k[:, :n], k[:, n:])

    def prior_deviation(self, predicted: TorsionCouplingParameters,
                        reference: TorsionCouplingParameters, heads: HeadStatistics) -> torch.Tensor:
        import torch

        return scaled_deviation(torch.cat([predicted.k_plus, predicted.k_minus], dim=-1),
                                torch.cat([reference.k_plus, reference.k_minus], dim=-1),
                                COUPLING_SCALE)

    def energy(self, block: TorsionCouplingParameters, parameters: ParameterSet,
               xyz: torch.Tensor) -> torch.Tensor:
        return torsion_coupling_energy(xyz, block.indices, block.k_plus, block.k_minus)

    def openmm_forces(self, block: TorsionCouplingParameters,
                      parameters: ParameterSet) -> list[openmm.Force]:
        import numpy as np
        import openmm

        values = np.concatenate([as_array(block.k_plus), as_array(block.k_minus)], axis=1)
        chains = as_array(block.indices)
        nonzero = (values != 0.0).any(axis=1)
        if not nonzero.any():
            return []
        force = openmm.CustomCompoundBondForce(5, ENERGY)
        for name in PER_BOND:
            force.addPerBondParameter(name)
        for chain, row in zip(chains[nonzero].tolist(), values[nonzero].tolist(), strict=True):
            force.addBond(chain, row)
        return [force]


TORSION_COUPLING = TorsionCoupling()
