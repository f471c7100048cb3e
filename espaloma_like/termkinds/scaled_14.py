"""Learned 1-4 scaling per atom pair, an optional kind (``ModelConfig.extra_terms=("scaled_14",)``).

Every 1-4 pair (atoms three bonds apart and not closer, ``i < j``) normally gets Sage's global
scales, Coulomb ``c14 = 1/1.2`` and Lennard-Jones ``l14 = 0.5``
(``NonbondedParameters.coulomb_14_scale`` and ``lj_14_scale``, applied by the
``NonbondedForce`` exceptions). With this kind the network predicts, per 1-4 pair, its own
scales ``s_q`` and ``s_lj`` in (0, 1), and the kind adds the difference,

    E = (s_q - c14) ONE_4PI_EPS0 q_i q_j / r + (s_lj - l14) 4 eps_ij ((sig_ij / r)^12 - (sig_ij / r)^6),

so the nonbonded block, the ``NonbondedForce`` and every consumer of the 1-4 scales are
unchanged, and the 1-4 pair interacts exactly with its own scales. ``q`` are the model's charges
(the gradient of the term flows to them too), ``sigma`` and ``epsilon`` Sage's, mixed by
Lorentz-Berthelot as in :mod:`~espaloma_like.termkinds.nonbonded`; vacuum Coulomb and plain LJ,
no cutoff, as OpenMM computes the exceptions whatever the nonbonded method.

The term is reported in the **proper** component (force group 2): the 1-4 interaction is, with
the torsion terms, what shapes a torsion profile (Amber fits its torsions with the 1-4 scales
in place), so a torsion scan sees both in one group.

Readout: 2 outputs per pair, ``s = sigmoid(x + logit(default))`` with Sage's value as default,
computed in float64 (as the charges are), whatever the model's precision. The head's weight and
bias start at zero, so a fresh readout gives exactly Sage's scales and the correction is exactly
zero. The block (:class:`Scaled14Parameters`) holds the pairs in the order of the nonbonded
block's ``pairs_14``.

Export: one ``openmm.CustomBondForce`` over the 1-4 pairs (a ``CustomBondForce`` term may join
any two particles of a System), with per-pair charge product times ``s_q - c14``, ``sigma_ij``
and ``epsilon_ij`` times ``s_lj - l14``; pairs whose correction vanishes are left out, and no
force at all when none is left. It does not use periodic boundary conditions: neither do the
``NonbondedForce`` exceptions it corrects (``getExceptionsUsePeriodicBoundaryConditions()`` is
False by default and the package never sets it), under any nonbonded method, PME included.
There is no ForceField XML form (:attr:`Scaled14.system_only`): OpenMM's ``CustomBondForce``
generator applies to bonds of the Topology only, and its ``NonbondedForce`` has only global 1-4
scales (a ForceField XML file carries it inside the package's ``<EspalomaLikeMolecule>``
element). ParmEd's GROMACS and Amber files refuse it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from espaloma_like.parameters import _TensorGroup
from espaloma_like.termkinds._openmm import pair_correction_force
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
    from espaloma_like.parameters import NonbondedParameters, ParameterSet

#: Per-pair parameters of the exported ``CustomBondForce``: ``qq`` the charge product times
#: ``s_q - c14`` (e^2), ``sig`` the mixed sigma (nm), ``eps`` the mixed epsilon times
#: ``s_lj - l14`` (kJ/mol).
PER_BOND = ("qq", "sig", "eps")


def _energy_expression() -> str:
    """The correction in OpenMM's expression language, with the package's Coulomb constant."""
    from espaloma_like.units import ONE_4PI_EPS0

    return f"{ONE_4PI_EPS0!r}*qq/r+4*eps*((sig/r)^12-(sig/r)^6)"


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class Scaled14Parameters(_TensorGroup):
    """Own scales of the 1-4 pairs: ``indices`` (P, 2) the pairs (``i < j``, the order of the
    nonbonded block's ``pairs_14``); ``coulomb_scale`` and ``lj_scale`` (P,) dimensionless, in
    (0, 1)."""

    indices: torch.Tensor
    coulomb_scale: torch.Tensor
    lj_scale: torch.Tensor


def scaled_14_correction_energy(xyz: torch.Tensor, pairs: torch.Tensor, coulomb_delta: torch.Tensor,
                                lj_delta: torch.Tensor, charges: torch.Tensor, sigma: torch.Tensor,
                                epsilon: torch.Tensor) -> torch.Tensor:
    """Per-pair energies (C, P), kJ/mol, of the scale corrections (see the module docstring).

    Parameters
    ----------
    xyz : torch.Tensor
        (C, N, 3) nm.
    pairs : torch.Tensor
        (P, 2) atom pairs.
    coulomb_delta, lj_delta : torch.Tensor
        (P,) dimensionless: the pair's own scale minus the global one, ``s_q - c14`` and
        ``s_lj - l14``.
    charges : torch.Tensor
        (N,) e.
    sigma, epsilon : torch.Tensor
        (N,) per-atom LJ, nm and kJ/mol (Lorentz-Berthelot mixing).
    """
    import torch

    from espaloma_like.mm.geometry import distances
    from espaloma_like.units import ONE_4PI_EPS0

    i, j = pairs[:, 0], pairs[:, 1]
    r = distances(xyz, pairs)
    coulomb = ONE_4PI_EPS0 * charges[i] * charges[j] / r
    sigma_ij = 0.5 * (sigma[i] + sigma[j])
    epsilon_ij = torch.sqrt(epsilon[i] * epsilon[j])
    sr6 = (sigma_ij / r) ** 6
    lj = 4.0 * epsilon_ij * (sr6 * sr6 - sr6)
    return coulomb_delta * coulomb + lj_delta * lj


class Scaled14(TermKind):
    """Learned Coulomb and LJ scales of every 1-4 pair, as a correction to the global ones
    (block :class:`Scaled14Parameters`); proper component, see the module docstring."""

    name = "scaled_14"
    component = "proper"
    terms = "pairs_14"
    arity = 2
    permutations = reversal(2)
    optional = True
    readout = ReadoutSpec("scaled_14_readout", 2)
    zero_start = True  # every pair starts exactly at the global scales
    fields = (ParameterField("coulomb_scale", "dimensionless"),
              ParameterField("lj_scale", "dimensionless"))
    system_only = ("per-pair 1-4 scales: OpenMM's ForceField applies a CustomBondForce to the "
                   "bonds of the Topology only, and its NonbondedForce has global 1-4 scales only")

    @staticmethod
    def defaults() -> tuple[float, float]:
        """The global scales the pairs start at, ``(c14, l14)``: those of the model's nonbonded
        block (Sage's)."""
        from espaloma_like.nn.assemble import COULOMB_14_SCALE, LJ_14_SCALE

        return COULOMB_14_SCALE, LJ_14_SCALE

    def from_readout(self, raw: torch.Tensor, indices: torch.Tensor,
                     context: ReadoutContext) -> Scaled14Parameters:
        import torch

        c14, l14 = self.defaults()
        # float64 (as the charges): a fresh head gives the global scales to the last bit, so the
        # exported correction is exactly zero whatever precision the network ran in
        x = raw.double()
        return Scaled14Parameters(indices, torch.sigmoid(x[:, 0] + _logit(c14)),
                                  torch.sigmoid(x[:, 1] + _logit(l14)))

    def prior_deviation(self, predicted: Scaled14Parameters, reference: Scaled14Parameters,
                        heads: HeadStatistics) -> torch.Tensor:
        return (scaled_deviation(predicted.coulomb_scale, reference.coulomb_scale, 1.0)
                + scaled_deviation(predicted.lj_scale, reference.lj_scale, 1.0))

    def put(self, parameters: ParameterSet, block: Scaled14Parameters) -> ParameterSet:
        import torch

        if not torch.equal(block.indices.cpu(), parameters.nonbonded.pairs_14.cpu()):
            raise ValueError("1-4 scales must come one per 1-4 pair, in the order of the "
                             "nonbonded block's pairs_14")
        return super().put(parameters, block)

    def energy(self, block: Scaled14Parameters, parameters: ParameterSet,
               xyz: torch.Tensor) -> torch.Tensor:
        nonbonded = parameters.nonbonded
        dtype = nonbonded.charges.dtype
        # the scales are float64; the energy in the precision of the rest of the parameters
        coulomb_delta = (block.coulomb_scale - nonbonded.coulomb_14_scale).to(dtype)
        lj_delta = (block.lj_scale - nonbonded.lj_14_scale).to(dtype)
        return scaled_14_correction_energy(xyz, block.indices, coulomb_delta, lj_delta,
                                           nonbonded.charges, nonbonded.sigma, nonbonded.epsilon)

    def _rows(self, block: Scaled14Parameters, nonbonded: NonbondedParameters
              ) -> list[tuple[int, int, list[float]]]:
        """``(i, j, [qq, sig, eps])`` of every pair whose correction is not exactly zero."""
        pairs = as_array(block.indices).reshape(-1, 2)
        if not len(pairs):
            return []
        q, sigma, eps = (as_array(nonbonded.charges), as_array(nonbonded.sigma),
                         as_array(nonbonded.epsilon))
        i, j = pairs[:, 0], pairs[:, 1]
        qq = (as_array(block.coulomb_scale) - nonbonded.coulomb_14_scale) * q[i] * q[j]
        sig = 0.5 * (sigma[i] + sigma[j])
        ee = (as_array(block.lj_scale) - nonbonded.lj_14_scale) * np.sqrt(eps[i] * eps[j])
        keep = (qq != 0.0) | (ee != 0.0)
        return [(a, b, [x, s, e]) for a, b, x, s, e in zip(
            i[keep].tolist(), j[keep].tolist(), qq[keep].tolist(), sig[keep].tolist(),
            ee[keep].tolist(), strict=True)]

    def openmm_forces(self, block: Scaled14Parameters, parameters: ParameterSet) -> list[openmm.Force]:
        return pair_correction_force(_energy_expression(), PER_BOND,
                                     self._rows(block, parameters.nonbonded))


SCALED_14 = Scaled14()
