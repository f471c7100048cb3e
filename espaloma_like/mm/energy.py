"""Pure, differentiable MM energies of a :class:`~espaloma_like.parameters.ParameterSet`.

Each term kind (:mod:`espaloma_like.termkinds`) owns its energy, written to mirror its OpenMM
force term by term, so that what is trained is what is simulated; this module sums them by
component. Conformations are batched: ``xyz`` is (C, N, 3) in nm; energies are kJ/mol.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from espaloma_like.parameters import ParameterSet
from espaloma_like.termkinds import COMPONENTS, NONBONDED, present_kinds
from espaloma_like.termkinds.angles import harmonic_angle_energy
from espaloma_like.termkinds.bonds import harmonic_bond_energy
from espaloma_like.termkinds.impropers import improper_energy
from espaloma_like.termkinds.nonbonded import coulomb_energy, lennard_jones_energy
from espaloma_like.termkinds.propers import periodic_torsion_energy
from espaloma_like.termkinds.urey_bradley import urey_bradley_energy

__all__ = [  # the per-term energies are re-exported from their kinds' modules
    "COMPONENTS", "EnergyBreakdown", "coulomb_energy", "energy", "energy_and_forces",
    "energy_terms", "harmonic_angle_energy", "harmonic_bond_energy", "improper_energy",
    "lennard_jones_energy", "periodic_torsion_energy", "urey_bradley_energy",
]


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

    def reduce(per_term: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return _reduce(per_term, index[:, 0], atom_molecule, n_molecules)

    # per component, a list of (per-term energies, term indices); kinds on the same terms
    # (an angle and its Urey-Bradley spring) are added per term before the sum over terms
    parts: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {c: [] for c in COMPONENTS}
    for kind, block in present_kinds(parameters):
        per_term = kind.energy(block, parameters, xyz)
        same = parts[kind.component]
        if same and same[-1][1] is block.indices:
            same[-1] = (same[-1][0] + per_term, block.indices)
        else:
            same.append((per_term, block.indices))
    for component, pairs in NONBONDED.energies(parameters.nonbonded, xyz).items():
        parts[component].extend(pairs)
    totals = {}
    for component, pairs in parts.items():
        reduced = [reduce(per_term, index) for per_term, index in pairs]
        if not reduced:  # no kind reports here
            shape = (xyz.shape[0],) if atom_molecule is None else (xyz.shape[0], n_molecules)
            reduced = [xyz.new_zeros(shape)]
        total = reduced[0]
        for value in reduced[1:]:
            total = total + value
        totals[component] = total
    return EnergyBreakdown(**totals)


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
