"""Learned Lennard-Jones within the molecule only, an optional kind
(``ModelConfig.extra_terms=("intramolecular_lj",)``).

The network predicts per-atom LJ exactly as :mod:`~espaloma_like.termkinds.learned_lj` does
(bounded factors on Sage 2.2.1's values, equal for equivalent atoms, Sage at a fresh readout,
the prior anchored to Sage), but the learned values act only between atoms of the same molecule:
the nonbonded block, and so the ``NonbondedForce``, keeps Sage's sigma and epsilon, which every
interaction with other molecules (solvent, protein, other ligand copies) uses, and the kind adds
the difference on every intramolecular pair the ``NonbondedForce`` does not exclude,

    E = sum_(i<j beyond 1-3) s_ij [LJ(sigma_ij, epsilon_ij) - LJ(sigma0_ij, epsilon0_ij)],

with ``s_ij`` 1 for pairs beyond 1-4 and Sage's ``lj_14_scale`` for 1-4 pairs, Lorentz-Berthelot
mixing of the learned (``sigma``, ``epsilon``) and of Sage's values (``sigma0``, ``epsilon0``).
In vacuum the molecule's energy is therefore exactly that of ``learned_lj``; the kind exists
because ``learned_lj`` also changes the intermolecular LJ, and that makes neat liquids 8-15 %
too dense (``benchmarks/results/liquids/``; Sage's LJ: within 5 %): what the DFT minima ask of
the LJ within a molecule is not what the condensed phase needs between molecules, so the two are
kept apart.

The per-pair energies are attributed to the pair's first atom: the block's terms are the atoms
(one-atom terms ``Terms.atoms``, as for ``learned_lj``), so a batch's energies reduce per
molecule as every kind's do. The energy is reported in the ``lj`` component (force group 4, the
``NonbondedForce``'s).

Export: one ``openmm.CustomBondForce`` over the intramolecular pairs (a ``CustomBondForce``
term may join any two particles of a System), with the learned and Sage's mixed values per pair
(the 1-4 scale folded into both epsilons); pairs whose correction vanishes are left out. It uses
no cutoff and no periodic boundary conditions, as the ``NonbondedForce`` exceptions do: under a
cutoff method the ``NonbondedForce`` drops Sage's part of pairs farther apart than the cutoff
(switched from the switch distance) while the correction keeps them: for those few pairs of a
large ligand, more than 0.8-0.9 nm apart, the learned part acts without the cutoff (LJ there is
hundredths of a kJ/mol). There is
no ForceField XML element for it (:attr:`IntramolecularLJ.system_only`): a ForceField XML file
carries it inside the package's ``<EspalomaLikeMolecule>`` element; ParmEd's GROMACS and Amber
files refuse it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from espaloma_like.termkinds._openmm import pair_correction_force
from espaloma_like.termkinds.base import ReadoutSpec, TermKind, as_array, check_one_per_atom
from espaloma_like.termkinds.learned_lj import LearnedLJ, LearnedLJParameters
from espaloma_like.termkinds.nonbonded import lennard_jones_energy

if TYPE_CHECKING:
    import openmm
    import torch

    from espaloma_like.parameters import ParameterSet

#: Per-pair parameters of the exported ``CustomBondForce``: the learned mixed sigma (nm) and
#: epsilon (kJ/mol, times the pair's scale), then Sage's.
PER_BOND = ("sig", "eps", "sig0", "eps0")
ENERGY_EXPRESSION = "4*eps*((sig/r)^12-(sig/r)^6)-4*eps0*((sig0/r)^12-(sig0/r)^6)"


class IntramolecularLJ(LearnedLJ):
    """Per-atom learned LJ acting within the molecule only (block
    :class:`~espaloma_like.termkinds.learned_lj.LearnedLJParameters`, the nonbonded block keeps
    Sage's values); see the module docstring."""

    name = "intramolecular_lj"
    readout = ReadoutSpec("intramolecular_lj_readout", 2)
    system_only = ("LJ between atoms of the same molecule only: OpenMM's ForceField gives every "
                   "pair of atom types one LJ, within and between molecules, and applies a "
                   "CustomBondForce to the bonds of the Topology only")

    def put(self, parameters: ParameterSet, block: LearnedLJParameters) -> ParameterSet:
        """``parameters`` with the block in ``extra_terms``; the nonbonded block is unchanged."""
        check_one_per_atom(block.indices, parameters.nonbonded.sigma.shape[0], "intramolecular LJ")
        return TermKind.put(self, parameters, block)

    def energy(self, block: LearnedLJParameters, parameters: ParameterSet,
               xyz: torch.Tensor) -> torch.Tensor:
        """Per-atom energies (C, N), kJ/mol: each intramolecular pair's correction on its first
        atom."""
        nonbonded = parameters.nonbonded
        per_atom = xyz.new_zeros((xyz.shape[0], block.indices.shape[0]))
        for pairs, scale in ((nonbonded.pairs_full, 1.0), (nonbonded.pairs_14, nonbonded.lj_14_scale)):
            if not len(pairs):
                continue
            learned = lennard_jones_energy(xyz, pairs, block.sigma, block.epsilon, scale)
            sage = lennard_jones_energy(xyz, pairs, nonbonded.sigma, nonbonded.epsilon, scale)
            per_atom = per_atom.index_add(1, pairs[:, 0], (learned - sage).to(xyz.dtype))
        return per_atom

    def _rows(self, block: LearnedLJParameters, parameters: ParameterSet) -> np.ndarray:
        """(P, 6) rows ``i, j, sig, eps, sig0, eps0`` of every pair whose correction is not
        exactly zero."""
        nonbonded = parameters.nonbonded
        sigma, epsilon = as_array(block.sigma), as_array(block.epsilon)
        sigma0, epsilon0 = as_array(nonbonded.sigma), as_array(nonbonded.epsilon)
        rows = []
        for pairs, scale in ((as_array(nonbonded.pairs_full), 1.0),
                             (as_array(nonbonded.pairs_14), nonbonded.lj_14_scale)):
            pairs = pairs.reshape(-1, 2)
            i, j = pairs[:, 0], pairs[:, 1]
            rows.append(np.column_stack([
                i, j, 0.5 * (sigma[i] + sigma[j]), scale * np.sqrt(epsilon[i] * epsilon[j]),
                0.5 * (sigma0[i] + sigma0[j]), scale * np.sqrt(epsilon0[i] * epsilon0[j])]))
        table = np.concatenate(rows)
        keep = (table[:, 2] != table[:, 4]) | (table[:, 3] != table[:, 5])
        return table[keep]

    def openmm_forces(self, block: LearnedLJParameters, parameters: ParameterSet) -> list[openmm.Force]:
        rows = self._rows(block, parameters).tolist()
        return pair_correction_force(ENERGY_EXPRESSION, PER_BOND,
                                     ((int(r[0]), int(r[1]), r[2:]) for r in rows))

    # learned_lj writes nothing (its values are the NonbondedForce's); this kind has no ffxml
    # form, so it takes TermKind's refusal back
    write_ffxml = TermKind.write_ffxml


INTRAMOLECULAR_LJ = IntramolecularLJ()
