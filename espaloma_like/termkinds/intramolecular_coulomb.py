"""Learned Coulomb scaling within the molecule, an optional kind
(``ModelConfig.extra_terms=("intramolecular_coulomb",)``).

Fixed point charges miss polarization: in a molecule's own field, and most for charged
molecules in vacuum, the interaction of distant polar or charged groups is screened or enhanced
relative to the charges' Coulomb energy. This kind lets the network predict, per atom (one-atom
terms ``Terms.atoms``, per symmetry class, so equivalent atoms get identical values), a bounded
factor

    f = exp(b tanh(x)),  b = ``HeadStatistics.coulomb_log_bound`` (0.3: f within [0.74, 1.35]),

and scales the Coulomb energy of every intramolecular pair the ``NonbondedForce`` does not
exclude by ``f_i f_j``; the kind adds the difference,

    E = sum_(i<j beyond 1-3) s_ij (f_i f_j - 1) q_i q_j / (4 pi eps0 r_ij),

with ``s_ij`` 1 beyond 1-4 and the nonbonded block's ``coulomb_14_scale`` for 1-4 pairs. Within
the molecule the pairs so act as if atom ``i`` carried ``f_i q_i`` (no net-charge constraint on
those: a cation's groups may screen each other); between molecules the charges are the nonbonded
block's, unchanged, so solvent, protein and other copies see the model's charges with their
exact net charge. The head starts at zero (``f = 1`` exactly: a fresh readout adds nothing) and
the prior is the mean squared ``log f``.

The per-pair energies are attributed to the pair's first atom (the block's terms are the atoms,
so batches reduce per molecule as every kind's do) and reported in the ``coulomb`` component
(force group 4, the ``NonbondedForce``'s).

Export: one ``openmm.CustomBondForce`` over the intramolecular pairs with the per-pair charge
product ``(f_i f_j - 1) s_ij q_i q_j`` (pairs where it vanishes left out), no cutoff and no
periodic boundary conditions, like the ``NonbondedForce`` exceptions. Under PME, the
``NonbondedForce`` computes the molecule's own pairs with Ewald's split; the correction adds the
plain vacuum difference, as the 1-4 exceptions do. System-only (no ForceField XML form, for the
reason of :mod:`~espaloma_like.termkinds.intramolecular_lj`; a ForceField XML file carries it
inside the package's ``<EspalomaLikeMolecule>`` element); ParmEd's GROMACS and Amber files
refuse it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from espaloma_like.parameters import _TensorGroup
from espaloma_like.termkinds._openmm import pair_correction_force
from espaloma_like.termkinds.base import (
    FORCE_GROUPS,
    ParameterField,
    ReadoutContext,
    ReadoutSpec,
    TermKind,
    as_array,
    check_one_per_atom,
)
from espaloma_like.termkinds.learned_lj import corrected, log_ratio_deviation
from espaloma_like.termkinds.nonbonded import coulomb_energy

if TYPE_CHECKING:
    import openmm
    import torch

    from espaloma_like.nn.model import HeadStatistics
    from espaloma_like.parameters import ParameterSet

#: Per-pair parameter of the exported ``CustomBondForce``: the charge product to add, e^2.
PER_BOND = ("qq",)


def energy_expression() -> str:
    """``CustomBondForce`` expression: vacuum Coulomb of the per-pair charge product ``qq``."""
    from espaloma_like.units import ONE_4PI_EPS0

    return f"{ONE_4PI_EPS0!r}*qq/r"


@dataclass(frozen=True)
class IntramolecularCoulombParameters(_TensorGroup):
    """Per-atom Coulomb factors within the molecule.

    Attributes
    ----------
    indices : torch.Tensor
        (N, 1) the atoms, ``arange(N)`` (atom order of the parameter set).
    factor : torch.Tensor
        (N,) dimensionless, float64.
    """

    indices: torch.Tensor
    factor: torch.Tensor


class IntramolecularCoulomb(TermKind):
    """Per-atom learned Coulomb factors acting within the molecule only (block
    :class:`IntramolecularCoulombParameters`); see the module docstring."""

    name = "intramolecular_coulomb"
    component = "coulomb"
    terms = "atoms"
    arity = 1
    permutations = ((0,),)
    optional = True
    readout = ReadoutSpec("intramolecular_coulomb_readout", 1)
    zero_start = True  # every factor starts at exactly 1
    fields = (ParameterField("factor", "1"),)
    system_only = ("Coulomb scaled between atoms of the same molecule only: OpenMM's ForceField "
                   "takes charges per atom, the same within and between molecules, and applies "
                   "a CustomBondForce to the bonds of the Topology only")

    @property
    def force_group(self) -> int:
        """The ``NonbondedForce``'s group (the correction is electrostatics)."""
        return FORCE_GROUPS["nonbonded"]

    def from_readout(self, raw: torch.Tensor, indices: torch.Tensor,
                     context: ReadoutContext) -> IntramolecularCoulombParameters:
        import torch

        ones = torch.ones(indices.shape[0], dtype=torch.float64, device=raw.device)
        return IntramolecularCoulombParameters(
            indices, corrected(ones, raw[:, 0], context.heads.coulomb_log_bound))

    def prior_deviation(self, predicted: IntramolecularCoulombParameters,
                        reference: IntramolecularCoulombParameters,
                        heads: HeadStatistics) -> torch.Tensor:
        return log_ratio_deviation(predicted.factor, reference.factor)

    def put(self, parameters: ParameterSet, block: IntramolecularCoulombParameters) -> ParameterSet:
        """``parameters`` with the block in ``extra_terms``, checked to hold one factor per
        atom in the nonbonded block's order."""
        check_one_per_atom(block.indices, parameters.nonbonded.charges.shape[0],
                           "intramolecular Coulomb factors")
        return super().put(parameters, block)

    def energy(self, block: IntramolecularCoulombParameters, parameters: ParameterSet,
               xyz: torch.Tensor) -> torch.Tensor:
        """Per-atom energies (C, N), kJ/mol: each intramolecular pair's correction on its first
        atom."""
        nonbonded = parameters.nonbonded
        factor = block.factor
        per_atom = xyz.new_zeros((xyz.shape[0], block.indices.shape[0]))
        for pairs, scale in ((nonbonded.pairs_full, 1.0),
                             (nonbonded.pairs_14, nonbonded.coulomb_14_scale)):
            if not len(pairs):
                continue
            plain = coulomb_energy(xyz, pairs, nonbonded.charges, scale)
            extra = factor[pairs[:, 0]] * factor[pairs[:, 1]] - 1.0
            per_atom = per_atom.index_add(1, pairs[:, 0], (plain * extra).to(xyz.dtype))
        return per_atom

    def _rows(self, block: IntramolecularCoulombParameters, parameters: ParameterSet) -> np.ndarray:
        """(P, 3) rows ``i, j, qq`` of every pair whose correction is not exactly zero."""
        nonbonded = parameters.nonbonded
        factor, q = as_array(block.factor), as_array(nonbonded.charges)
        rows = []
        for pairs, scale in ((as_array(nonbonded.pairs_full), 1.0),
                             (as_array(nonbonded.pairs_14), nonbonded.coulomb_14_scale)):
            pairs = pairs.reshape(-1, 2)
            i, j = pairs[:, 0], pairs[:, 1]
            rows.append(np.column_stack([i, j, (factor[i] * factor[j] - 1.0) * scale * q[i] * q[j]]))
        table = np.concatenate(rows)
        return table[table[:, 2] != 0.0]

    def openmm_forces(self, block: IntramolecularCoulombParameters,
                      parameters: ParameterSet) -> list[openmm.Force]:
        rows = self._rows(block, parameters).tolist()
        return pair_correction_force(energy_expression(), PER_BOND,
                                     ((int(r[0]), int(r[1]), r[2:]) for r in rows))


INTRAMOLECULAR_COULOMB = IntramolecularCoulomb()
