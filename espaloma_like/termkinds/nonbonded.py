"""Nonbonded terms: Lennard-Jones and Coulomb between atoms more than two bonds apart.

Lorentz-Berthelot mixing, vacuum Coulomb, no cutoff; 1-2 and 1-3 pairs excluded, 1-4 pairs
scaled by ``coulomb_14_scale`` and ``lj_14_scale`` (OpenMM ``NonbondedForce`` exceptions). The
block is :class:`~espaloma_like.parameters.NonbondedParameters`: per-atom charges (the model's
charge equilibration, or a method's charges), LJ sigma and epsilon (Sage), and the pair lists.
It reports two energy components, ``lj`` and ``coulomb``, in one force group.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from espaloma_like.termkinds._openmm import raw_method
from espaloma_like.termkinds.base import FORCE_GROUPS, as_array, fmt

if TYPE_CHECKING:
    import openmm
    import torch

    from espaloma_like.parameters import NonbondedParameters


def lennard_jones_energy(xyz: torch.Tensor, pairs: torch.Tensor, sigma: torch.Tensor,
                         epsilon: torch.Tensor, scale: float) -> torch.Tensor:
    """Per-pair LJ energies (C, P), kJ/mol, with Lorentz-Berthelot mixing, times ``scale``.

    Parameters
    ----------
    xyz : torch.Tensor
        (C, N, 3) nm.
    pairs : torch.Tensor
        (P, 2) atom pairs.
    sigma, epsilon : torch.Tensor
        (N,) per-atom nm and kJ/mol.
    scale : float
        1 for full pairs, the 1-4 scale for 1-4 pairs.
    """
    import torch

    from espaloma_like.mm.geometry import distances

    r = distances(xyz, pairs)
    sigma_ij = 0.5 * (sigma[pairs[:, 0]] + sigma[pairs[:, 1]])
    epsilon_ij = torch.sqrt(epsilon[pairs[:, 0]] * epsilon[pairs[:, 1]])
    sr6 = (sigma_ij / r) ** 6
    return scale * 4.0 * epsilon_ij * (sr6 * sr6 - sr6)


def coulomb_energy(xyz: torch.Tensor, pairs: torch.Tensor, charges: torch.Tensor,
                   scale: float) -> torch.Tensor:
    """Per-pair Coulomb energies (C, P), kJ/mol, in vacuum, times ``scale``; ``charges`` (N,) e."""
    from espaloma_like.mm.geometry import distances
    from espaloma_like.units import ONE_4PI_EPS0

    r = distances(xyz, pairs)
    return scale * ONE_4PI_EPS0 * charges[pairs[:, 0]] * charges[pairs[:, 1]] / r


class Nonbonded:
    """LJ and Coulomb: energies, the ``NonbondedForce`` and its ffxml element."""

    name = "nonbonded"
    components = ("lj", "coulomb")
    force_group = FORCE_GROUPS["nonbonded"]

    def energies(self, block: NonbondedParameters, xyz: torch.Tensor
                 ) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Per-pair energies (C, P) and their pairs, by component: full pairs, then 1-4 pairs."""
        lj = [(lennard_jones_energy(xyz, block.pairs_full, block.sigma, block.epsilon, 1.0),
               block.pairs_full),
              (lennard_jones_energy(xyz, block.pairs_14, block.sigma, block.epsilon,
                                    block.lj_14_scale), block.pairs_14)]
        coulomb = [(coulomb_energy(xyz, block.pairs_full, block.charges, 1.0), block.pairs_full),
                   (coulomb_energy(xyz, block.pairs_14, block.charges, block.coulomb_14_scale),
                    block.pairs_14)]
        return {"lj": lj, "coulomb": coulomb}

    def openmm_forces(self, block: NonbondedParameters) -> list[openmm.Force]:
        """A ``NonbondedForce`` (no cutoff) with 1-2/1-3 exclusions and scaled 1-4 exceptions."""
        import openmm

        force = openmm.NonbondedForce()
        force.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
        q, sigma, eps = as_array(block.charges), as_array(block.sigma), as_array(block.epsilon)
        add_particle = raw_method(openmm.NonbondedForce, "addParticle")
        add_exception = raw_method(openmm.NonbondedForce, "addException")
        for qi, si, ei in zip(q.tolist(), sigma.tolist(), eps.tolist(), strict=True):
            add_particle(force, qi, si, ei)
        for i, j in as_array(block.exclusions).tolist():
            add_exception(force, i, j, 0.0, 1.0, 0.0, False)
        pairs = as_array(block.pairs_14)
        if len(pairs):
            i, j = pairs[:, 0], pairs[:, 1]
            charge_products = (block.coulomb_14_scale * q[i] * q[j]).tolist()
            sigmas = (0.5 * (sigma[i] + sigma[j])).tolist()
            epsilons = (block.lj_14_scale * np.sqrt(eps[i] * eps[j])).tolist()
            for a, b, qq, ss, ee in zip(i.tolist(), j.tolist(), charge_products, sigmas, epsilons,
                                        strict=True):
                add_exception(force, a, b, qq, ss, ee, False)
        return [force]

    def write_ffxml(self, root: ET.Element, types: Sequence[str], block: NonbondedParameters) -> None:
        """The ``NonbondedForce`` element: 1-4 scales, per-type LJ; charges from the residue."""
        element = ET.SubElement(root, "NonbondedForce", {
            "coulomb14scale": fmt(block.coulomb_14_scale), "lj14scale": fmt(block.lj_14_scale)})
        ET.SubElement(element, "UseAttributeFromResidue", {"name": "charge"})
        for t, sigma, eps in zip(types, as_array(block.sigma), as_array(block.epsilon), strict=True):
            ET.SubElement(element, "Atom", {"type": t, "sigma": fmt(sigma), "epsilon": fmt(eps)})


NONBONDED = Nonbonded()
