"""Pure, differentiable MM energies of a :class:`~espaloma_like.parameters.ParameterSet`.

The functions mirror OpenMM's ``HarmonicBondForce``, ``HarmonicAngleForce``,
``PeriodicTorsionForce`` and ``NonbondedForce`` (no cutoff) term by term, so that what is trained
is what is simulated. Conformations are batched: ``xyz`` is (C, N, 3) in nm; energies are kJ/mol.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from espaloma_like.mm.geometry import angles, dihedrals, distances
from espaloma_like.parameters import N_PERIODICITIES, ParameterSet, TorsionParameters
from espaloma_like.units import ONE_4PI_EPS0

#: Names of the energy components, in report order.
COMPONENTS = ("bond", "angle", "proper", "improper", "lj", "coulomb")


@dataclass(frozen=True)
class EnergyBreakdown:
    """Energy components, each (C,) for one molecule or (C, M) for a batch of M, kJ/mol."""

    bond: torch.Tensor
    angle: torch.Tensor
    proper: torch.Tensor
    improper: torch.Tensor
    lj: torch.Tensor
    coulomb: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """Sum of all components."""
        return self.bond + self.angle + self.proper + self.improper + self.lj + self.coulomb

    def as_dict(self) -> dict[str, torch.Tensor]:
        """Components and ``"total"`` by name."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["total"] = self.total
        return out


def harmonic_bond_energy(
    xyz: torch.Tensor, indices: torch.Tensor, k: torch.Tensor, length: torch.Tensor
) -> torch.Tensor:
    """Per-bond energies (C, B): ``0.5 k (r - length)^2``."""
    return 0.5 * k * (distances(xyz, indices) - length) ** 2


def harmonic_angle_energy(
    xyz: torch.Tensor, indices: torch.Tensor, k: torch.Tensor, angle: torch.Tensor
) -> torch.Tensor:
    """Per-angle energies (C, A): ``0.5 k (theta - angle)^2``."""
    return 0.5 * k * (angles(xyz, indices) - angle) ** 2


def urey_bradley_energy(xyz: torch.Tensor, indices: torch.Tensor, k: torch.Tensor,
                        length: torch.Tensor) -> torch.Tensor:
    """Per-angle Urey-Bradley energies (C, A): ``0.5 k (r_13 - length)^2`` (outer atoms)."""
    return harmonic_bond_energy(xyz, indices[:, [0, 2]], k, length)


def periodic_torsion_energy(
    xyz: torch.Tensor, indices: torch.Tensor, k: torch.Tensor, phase: torch.Tensor
) -> torch.Tensor:
    """Per-torsion energies (C, T): ``sum_n k_n (1 + cos(n phi - phase_n))``, n = 1..6."""
    phi = dihedrals(xyz, indices)
    n = torch.arange(1, N_PERIODICITIES + 1, dtype=phi.dtype, device=phi.device)
    return (k * (1.0 + torch.cos(phi[..., None] * n - phase))).sum(-1)


def improper_energy(xyz: torch.Tensor, impropers: TorsionParameters) -> torch.Tensor:
    """Per-improper energies (C, I), trefoil-expanded when ``impropers.trefoil``."""
    if not impropers.trefoil:
        return periodic_torsion_energy(xyz, impropers.indices, impropers.k, impropers.phase)
    c, a, b, d = impropers.indices.unbind(-1)
    total = xyz.new_zeros((xyz.shape[0], impropers.indices.shape[0]))
    for quad in ((c, a, b, d), (c, b, d, a), (c, d, a, b)):
        total = total + periodic_torsion_energy(
            xyz, torch.stack(quad, -1), impropers.k / 3.0, impropers.phase
        )
    return total


def lennard_jones_energy(
    xyz: torch.Tensor, pairs: torch.Tensor, sigma: torch.Tensor, epsilon: torch.Tensor, scale: float
) -> torch.Tensor:
    """Per-pair LJ energies (C, P) with Lorentz-Berthelot mixing, times ``scale``."""
    r = distances(xyz, pairs)
    sigma_ij = 0.5 * (sigma[pairs[:, 0]] + sigma[pairs[:, 1]])
    epsilon_ij = torch.sqrt(epsilon[pairs[:, 0]] * epsilon[pairs[:, 1]])
    sr6 = (sigma_ij / r) ** 6
    return scale * 4.0 * epsilon_ij * (sr6 * sr6 - sr6)


def coulomb_energy(
    xyz: torch.Tensor, pairs: torch.Tensor, charges: torch.Tensor, scale: float
) -> torch.Tensor:
    """Per-pair Coulomb energies (C, P) in vacuum, times ``scale``."""
    r = distances(xyz, pairs)
    return scale * ONE_4PI_EPS0 * charges[pairs[:, 0]] * charges[pairs[:, 1]] / r


def _reduce(
    per_term: torch.Tensor,
    first_atoms: torch.Tensor,
    atom_molecule: torch.Tensor | None,
    n_molecules: int,
) -> torch.Tensor:
    if atom_molecule is None:
        return per_term.sum(-1)
    out = per_term.new_zeros((per_term.shape[0], n_molecules))
    return out.index_add_(1, atom_molecule[first_atoms], per_term)


def energy_terms(
    parameters: ParameterSet,
    xyz: torch.Tensor,
    atom_molecule: torch.Tensor | None = None,
    n_molecules: int = 1,
) -> EnergyBreakdown:
    """Energy components of ``parameters`` at conformations ``xyz``.

    Parameters
    ----------
    parameters : ParameterSet
        Parameters (tensors on the device and dtype of ``xyz``).
    xyz : torch.Tensor
        (C, N, 3) coordinates, nm.
    atom_molecule : torch.Tensor, optional
        (N,) molecule index of each atom, for a batch of molecules concatenated PyG-style; then
        every component is (C, M). Without it, components are (C,).
    n_molecules : int
        M, the number of molecules in the batch.

    Returns
    -------
    EnergyBreakdown
        kJ/mol.
    """
    if xyz.dim() == 2:
        xyz = xyz[None]
    nb = parameters.nonbonded

    def reduce(per_term: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return _reduce(per_term, index[:, 0], atom_molecule, n_molecules)

    b, a, p, i = parameters.bonds, parameters.angles, parameters.propers, parameters.impropers
    # Urey-Bradley terms belong to their angle: one component (and one OpenMM force group)
    angle_energy = harmonic_angle_energy(xyz, a.indices, a.k, a.angle)
    if a.urey_bradley_k is not None and a.urey_bradley_length is not None:
        angle_energy = angle_energy + urey_bradley_energy(xyz, a.indices, a.urey_bradley_k,
                                                          a.urey_bradley_length)
    lj = reduce(
        lennard_jones_energy(xyz, nb.pairs_full, nb.sigma, nb.epsilon, 1.0), nb.pairs_full
    ) + reduce(
        lennard_jones_energy(xyz, nb.pairs_14, nb.sigma, nb.epsilon, nb.lj_14_scale), nb.pairs_14
    )
    coulomb = reduce(
        coulomb_energy(xyz, nb.pairs_full, nb.charges, 1.0), nb.pairs_full
    ) + reduce(coulomb_energy(xyz, nb.pairs_14, nb.charges, nb.coulomb_14_scale), nb.pairs_14)
    return EnergyBreakdown(
        bond=reduce(harmonic_bond_energy(xyz, b.indices, b.k, b.length), b.indices),
        angle=reduce(angle_energy, a.indices),
        proper=reduce(periodic_torsion_energy(xyz, p.indices, p.k, p.phase), p.indices),
        improper=reduce(improper_energy(xyz, i), i.indices),
        lj=lj,
        coulomb=coulomb,
    )


def energy(parameters: ParameterSet, xyz: torch.Tensor) -> torch.Tensor:
    """Total energy (C,), kJ/mol, of one molecule at conformations ``xyz`` (C, N, 3), nm."""
    return energy_terms(parameters, xyz).total


def energy_and_forces(
    parameters: ParameterSet, xyz: torch.Tensor, create_graph: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Total energy (C,) in kJ/mol and forces ``-dE/dxyz`` (C, N, 3) in kJ/mol/nm."""
    if not xyz.requires_grad:
        xyz = xyz.detach().requires_grad_(True)
    total = energy(parameters, xyz)
    (grad,) = torch.autograd.grad(total.sum(), xyz, create_graph=create_graph)
    if not create_graph:
        total = total.detach()
    return total, -grad
