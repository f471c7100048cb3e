"""Learned Lennard-Jones with Sage as the prior, an optional kind
(``ModelConfig.extra_terms=("learned_lj",)``).

Every atom's LJ parameters are otherwise OpenFF Sage 2.2.1's (``GraphBatch.sigma`` and
``epsilon``, put into :class:`~espaloma_like.parameters.NonbondedParameters` by
:mod:`espaloma_like.nn.assemble`). With this kind the network predicts, per atom (one-atom
terms ``Terms.atoms``; the readout runs per symmetry class, so equivalent atoms get identical
values), bounded multiplicative corrections of Sage's values:

    sigma   = sigma_sage   exp(b_sigma tanh(x0)),    by default within [0.905, 1.105] x Sage's,
    epsilon = epsilon_sage exp(b_epsilon tanh(x1)),  by default within [0.607, 1.649] x Sage's,

with the bounds ``b_sigma`` and ``b_epsilon`` of the model's head statistics
(``HeadStatistics.lj_sigma_log_bound`` and ``lj_epsilon_log_bound``, stored in the checkpoint;
by default :data:`SIGMA_SCALE` and :data:`EPSILON_SCALE`).

The head's weight and bias start at zero, so a fresh readout (grafted onto a trained model,
or a fresh model) gives Sage's values to the last bit: the factors are computed in float64 as
``sage + sage expm1(s tanh(x))`` (``expm1(0) = 0`` exactly), from Sage's float64 values, which
:class:`~espaloma_like.nn.batch.GraphBatch` keeps in float64 whatever precision the network
runs in (float32 for :func:`~espaloma_like.api.load_model`).

The parameters live in the nonbonded block: :meth:`LearnedLJ.put` writes them into
``parameters.nonbonded.sigma`` and ``epsilon`` (as Urey-Bradley writes into the angle block)
and keeps the kind's block (:class:`LearnedLJParameters`) in ``extra_terms`` as the record
that the LJ is learned. Everything that reads the nonbonded block then uses the learned values
with no change: the torch LJ energy (and the 1-4 LJ of ``scaled_14``), the ``NonbondedForce``
of the OpenMM System, the ffxml ``<NonbondedForce>`` (one atom type per atom, so per-atom
values are exported as they are; ``openmm.app.ForceField``, the template generator,
``SystemGenerator``, host force-field adaptation) and ParmEd's GROMACS / Amber files. The kind
adds no energy and no force of its own: its energy is zero, reported in the ``lj`` component
(force group 4, the ``NonbondedForce``'s), so per-component reports are the nonbonded ones.

Prior (fine-tuning): the mean squared log-ratio of sigma and of epsilon to the reference
model's. A kind switched on at fine-tuning is switched on in the frozen reference too, with
its fresh readout, so the reference values are exactly Sage's: the prior anchors to Sage.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from espaloma_like.parameters import _TensorGroup
from espaloma_like.termkinds.base import (
    FORCE_GROUPS,
    ParameterField,
    ReadoutContext,
    ReadoutSpec,
    TermKind,
    check_one_per_atom,
)

if TYPE_CHECKING:
    import openmm
    import torch

    from espaloma_like.nn.model import HeadStatistics
    from espaloma_like.parameters import ParameterSet

#: Default bound of the log-factor of sigma: ``sigma = sigma_sage exp(SIGMA_SCALE tanh(x0))``
#: (about +-10 %; ``HeadStatistics.lj_sigma_log_bound``).
SIGMA_SCALE = 0.1
#: Default bound of the log-factor of epsilon (``HeadStatistics.lj_epsilon_log_bound``).
EPSILON_SCALE = 0.5


@dataclass(frozen=True)
class LearnedLJParameters(_TensorGroup):
    """Learned LJ of every atom.

    Attributes
    ----------
    indices : torch.Tensor
        (N, 1) the atoms, ``arange(N)`` (atom order of the parameter set).
    sigma : torch.Tensor
        (N,) nm, float64.
    epsilon : torch.Tensor
        (N,) kJ/mol, float64.
    """

    indices: torch.Tensor
    sigma: torch.Tensor
    epsilon: torch.Tensor


def corrected(prior: torch.Tensor, raw: torch.Tensor, scale: float) -> torch.Tensor:
    """``prior exp(scale tanh(raw))`` in float64, exactly ``prior`` where ``raw`` is 0.

    Parameters
    ----------
    prior : torch.Tensor
        (N,) Sage's values (nm or kJ/mol).
    raw : torch.Tensor
        (N,) raw readout outputs.
    scale : float
        Bound of the log-factor.

    Returns
    -------
    torch.Tensor
        (N,) float64, in the unit of ``prior``.
    """
    import torch

    prior = prior.to(torch.float64)
    # prior + prior expm1(0) is prior to the bit (prior exp(0) is too, but needs exp(0) == 1)
    return prior + prior * torch.expm1(scale * torch.tanh(raw.to(torch.float64)))


def log_ratio_deviation(value: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean squared ``log(value / reference)`` (float64; 0 for no atoms, 0 where both are 0)."""
    import torch

    if not value.numel():
        return value.new_zeros((), dtype=torch.float64)
    tiny = torch.finfo(torch.float64).tiny
    value, reference = value.to(torch.float64), reference.to(torch.float64)
    return (torch.log(value.clamp_min(tiny)) - torch.log(reference.clamp_min(tiny))).pow(2).mean()


class LearnedLJ(TermKind):
    """Per-atom LJ, Sage's times learned bounded factors (block :class:`LearnedLJParameters`,
    written into the nonbonded block); see the module docstring."""

    name = "learned_lj"
    component = "lj"  # no energy of its own: zeros, with the NonbondedForce's LJ
    terms = "atoms"
    arity = 1
    permutations = ((0,),)
    optional = True
    readout = ReadoutSpec("learned_lj_readout", 2)
    zero_start = True  # every atom starts exactly at Sage's values
    fields = (ParameterField("sigma", "nm"), ParameterField("epsilon", "kJ/mol"))

    @property
    def force_group(self) -> int:
        """The ``NonbondedForce``'s group (the kind adds no force of its own)."""
        return FORCE_GROUPS["nonbonded"]

    def from_readout(self, raw: torch.Tensor, indices: torch.Tensor,
                     context: ReadoutContext) -> LearnedLJParameters:
        atoms, heads = indices[:, 0], context.heads
        return LearnedLJParameters(
            indices, corrected(context.batch.sigma[atoms], raw[:, 0], heads.lj_sigma_log_bound),
            corrected(context.batch.epsilon[atoms], raw[:, 1], heads.lj_epsilon_log_bound))

    def prior_deviation(self, predicted: LearnedLJParameters, reference: LearnedLJParameters,
                        heads: HeadStatistics) -> torch.Tensor:
        return (log_ratio_deviation(predicted.sigma, reference.sigma)
                + log_ratio_deviation(predicted.epsilon, reference.epsilon))

    def put(self, parameters: ParameterSet, block: LearnedLJParameters) -> ParameterSet:
        """``parameters`` with the block in ``extra_terms`` and its sigma and epsilon as the
        nonbonded block's (same atoms, same order)."""
        check_one_per_atom(block.indices, parameters.nonbonded.sigma.shape[0], "learned LJ")
        nonbonded = dataclasses.replace(parameters.nonbonded, sigma=block.sigma,
                                        epsilon=block.epsilon)
        return super().put(dataclasses.replace(parameters, nonbonded=nonbonded), block)

    def energy(self, block: LearnedLJParameters, parameters: ParameterSet,
               xyz: torch.Tensor) -> torch.Tensor:
        """Zeros (C, N), kJ/mol: the LJ energy is the nonbonded block's, with these values."""
        return xyz.new_zeros((xyz.shape[0], block.indices.shape[0]))

    def openmm_forces(self, block: LearnedLJParameters, parameters: ParameterSet) -> list[openmm.Force]:
        return []  # the NonbondedForce carries the learned values

    def write_ffxml(self, root: ET.Element, classes: Sequence[str], block: LearnedLJParameters,
                    parameters: ParameterSet) -> None:
        """Nothing: the ``<NonbondedForce>`` atom types (one per atom) carry the values."""


LEARNED_LJ = LearnedLJ()
