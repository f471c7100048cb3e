"""Training batches and the loss: model -> ParameterSet -> MM energy (torch) vs QM.

The energy the loss differentiates is :func:`espaloma_like.mm.energy_terms` of the same
ParameterSet type that is exported to OpenMM, summed in float64: what is trained is what is
simulated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from espaloma_like.mm.energy import energy_terms
from espaloma_like.nn.assemble import batch_parameter_set
from espaloma_like.nn.batch import GraphBatch, collate
from espaloma_like.nn.model import HeadStatistics, ParameterModel, PredictedParameters
from espaloma_like.parameters import TorsionParameters
from espaloma_like.termkinds import get_kind
from espaloma_like.termkinds.base import scaled_deviation
from espaloma_like.training.config import LossConfig
from espaloma_like.training.dataset import TrainingMolecule
from espaloma_like.units import KCAL_TO_KJ, KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A

ENERGY_UNIT = KCAL_TO_KJ  # 1 kcal/mol in kJ/mol
FORCE_UNIT = 1.0 / KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A  # 1 kcal/mol/A in kJ/mol/nm
CHARGE_UNIT = 0.05  # e
TORQUE_UNIT = KCAL_TO_KJ  # 1 kcal/mol/rad in kJ/mol/rad
#: predicted RMSDs (A) well above this count less than linearly (log1p): the linear prediction
#: of the minimum holds for small moves, not for slides into another basin
GEOMETRY_SCALE = 0.5


@dataclass(frozen=True)
class GeometryItem:
    """One molecule's geometry target in a batch: atoms ``start:start + n`` of the batch,
    ``offsets`` (n, 3) nm, ``modes`` (K, 3n), ``inverse_curvatures`` (K,) nm^2 mol/kJ
    (one conformation of :class:`~espaloma_like.training.geometry_targets.GeometryTarget`)."""

    start: int
    offsets: torch.Tensor
    modes: torch.Tensor
    inverse_curvatures: torch.Tensor

    def to(self, device: torch.device | str) -> GeometryItem:
        return GeometryItem(self.start, self.offsets.to(device), self.modes.to(device),
                            self.inverse_curvatures.to(device))


@dataclass(frozen=True)
class TrainingBatch:
    """Molecules with K conformations each, concatenated along the atom axis.

    ``xyz`` (K, N, 3) nm, ``energies`` (K, M) kJ/mol, ``forces`` (K, N, 3) kJ/mol/nm,
    ``charges`` (N,) e with ``charge_mask`` (N,) marking atoms that have labels;
    ``energy_weights`` and ``force_weights`` (M,) multiply the loss terms per molecule
    (multi-fidelity data; metrics stay unweighted); ``rotor_axes`` (T, 2) batch atoms of each
    rotatable bond, ``rotor_members`` (P, 2) rows (bond, atom) of the atoms turning with its
    second atom, ``rotor_molecule`` (T,) the molecule of each bond; ``geometry_xyz`` (1, N, 3)
    nm holds the MM minima of the molecules with a geometry target (``geometry``, one item
    each) and an ordinary conformation of the others (their gradients there go unused).
    """

    graph: GraphBatch
    xyz: torch.Tensor
    energies: torch.Tensor
    forces: torch.Tensor
    charges: torch.Tensor
    charge_mask: torch.Tensor
    energy_weights: torch.Tensor
    force_weights: torch.Tensor
    rotor_axes: torch.Tensor
    rotor_members: torch.Tensor
    rotor_molecule: torch.Tensor
    geometry_xyz: torch.Tensor | None = None
    geometry: tuple[GeometryItem, ...] = ()

    def to(self, device: torch.device | str) -> TrainingBatch:
        return TrainingBatch(self.graph.to(device), self.xyz.to(device), self.energies.to(device),
                             self.forces.to(device), self.charges.to(device),
                             self.charge_mask.to(device), self.energy_weights.to(device),
                             self.force_weights.to(device), self.rotor_axes.to(device),
                             self.rotor_members.to(device), self.rotor_molecule.to(device),
                             None if self.geometry_xyz is None else self.geometry_xyz.to(device),
                             tuple(item.to(device) for item in self.geometry))


def make_batch(molecules: Sequence[TrainingMolecule], n_conformations: int,
               rng: np.random.Generator) -> TrainingBatch:
    """Batch ``molecules`` with ``n_conformations`` conformations each, drawn by ``rng``.

    Molecules with fewer conformations are sampled with replacement. A molecule with a
    geometry target contributes one of its conformations (drawn by ``rng``) to ``geometry``.
    """
    xyz, forces, energies, charges, mask = [], [], [], [], []
    axes, members, rotor_molecule = [], [], []
    geometry_xyz, geometry = [], []
    atom_offset = rotor_offset = 0
    for index, m in enumerate(molecules):
        if m.geometry is not None:
            c = int(rng.integers(m.geometry.n_conformations))
            geometry_xyz.append(m.geometry.minima[c])
            geometry.append(GeometryItem(
                atom_offset, torch.as_tensor(m.geometry.offsets[c]),
                torch.as_tensor(m.geometry.modes[c], dtype=torch.float64),
                torch.as_tensor(m.geometry.inverse_curvatures[c])))
        else:
            geometry_xyz.append(m.conformations[0])
        axes.append(m.rotor_axes + atom_offset)
        members.append(m.rotor_members + np.array([rotor_offset, atom_offset]))
        rotor_molecule.append(np.full(len(m.rotor_axes), index, dtype=np.int64))
        atom_offset += m.prepared.n_atoms
        rotor_offset += len(m.rotor_axes)
        c = m.n_conformations
        chosen = rng.choice(c, size=n_conformations, replace=c < n_conformations)
        xyz.append(m.conformations[chosen])
        forces.append(m.forces[chosen])
        energies.append(m.energies[chosen])
        n = m.prepared.n_atoms
        charges.append(m.charges if m.charges is not None else np.zeros(n))
        mask.append(np.full(n, m.charges is not None))
    return TrainingBatch(
        graph=collate([m.prepared for m in molecules]),
        xyz=torch.as_tensor(np.concatenate(xyz, axis=1)),
        energies=torch.as_tensor(np.stack(energies, axis=1)),
        forces=torch.as_tensor(np.concatenate(forces, axis=1)),
        charges=torch.as_tensor(np.concatenate(charges)),
        charge_mask=torch.as_tensor(np.concatenate(mask)),
        energy_weights=torch.tensor([m.energy_weight for m in molecules], dtype=torch.float64),
        force_weights=torch.tensor([m.force_weight for m in molecules], dtype=torch.float64),
        rotor_axes=torch.as_tensor(np.concatenate(axes).reshape(-1, 2)),
        rotor_members=torch.as_tensor(np.concatenate(members).reshape(-1, 2)),
        rotor_molecule=torch.as_tensor(np.concatenate(rotor_molecule)),
        geometry_xyz=torch.as_tensor(np.concatenate(geometry_xyz)[None]) if geometry else None,
        geometry=tuple(geometry),
    )


def rotor_torques(xyz: torch.Tensor, forces: torch.Tensor, axes: torch.Tensor,
                  members: torch.Tensor) -> torch.Tensor:
    """Torques of ``forces`` about each rotatable bond on the atoms turning with it.

    The torque on the side of bond ``j-k`` that holds ``k`` is minus the derivative of the energy
    along a rigid rotation of that side, the generalized force of the torsion: zero at a
    minimum. It weighs the soft coordinates that decide where a minimization ends (its
    components are small next to bond-stretch forces, so a force loss alone neglects them).

    Parameters
    ----------
    xyz : torch.Tensor
        (K, N, 3) nm.
    forces : torch.Tensor
        (K, N, 3) kJ/mol/nm (or force errors).
    axes, members : torch.Tensor
        (T, 2) and (P, 2), as in :class:`TrainingBatch`.

    Returns
    -------
    torch.Tensor
        (K, T) kJ/mol/rad.
    """
    j, k = axes[:, 0], axes[:, 1]
    axis = xyz[:, k] - xyz[:, j]
    axis = axis / axis.norm(dim=-1, keepdim=True)
    bond, atom = members[:, 0], members[:, 1]
    arm = xyz[:, atom] - xyz[:, k[bond]]
    contribution = (torch.cross(arm, forces[:, atom], dim=-1) * axis[:, bond]).sum(-1)
    return forces.new_zeros(xyz.shape[0], axes.shape[0]).index_add_(1, bond, contribution)


def rotor_stiffness(xyz: torch.Tensor, propers: TorsionParameters,
                    axes: torch.Tensor) -> torch.Tensor:
    """Curvature of the proper torsion energy along each rotor's rigid rotation.

    Turning one side of bond ``j-k`` rigidly changes every dihedral about ``j-k`` by the same
    angle, so the curvature is the sum of ``-sum_n k_n n^2 cos(n phi - phase_n)`` over the
    torsions about that bond. The torsion terms only: the 1-4 and longer-range pairs add to
    the true stiffness, so this is an estimate (for weighting, not for physics).

    Parameters
    ----------
    xyz : torch.Tensor
        (K, N, 3) nm.
    propers : TorsionParameters
        The batch's proper torsions (atom indices into ``xyz``'s second axis).
    axes : torch.Tensor
        (T, 2) rotor bonds, as in :class:`TrainingBatch`.

    Returns
    -------
    torch.Tensor
        (K, T) kJ/mol/rad^2; zero for a rotor with no torsion term.
    """
    from espaloma_like.mm.geometry import dihedrals

    n_atoms = xyz.shape[1]
    out = xyz.new_zeros(xyz.shape[0], axes.shape[0])
    indices = propers.indices.reshape(-1, 4)
    if not indices.shape[0] or not axes.shape[0]:
        return out

    def bond_key(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.minimum(a, b) * n_atoms + torch.maximum(a, b)

    rotor_keys = bond_key(axes[:, 0], axes[:, 1])
    order = torch.argsort(rotor_keys)
    torsion_keys = bond_key(indices[:, 1], indices[:, 2])
    position = torch.searchsorted(rotor_keys[order], torsion_keys).clamp(max=len(order) - 1)
    about_a_rotor = rotor_keys[order][position] == torsion_keys
    if not bool(about_a_rotor.any()):
        return out
    phi = dihedrals(xyz, indices[about_a_rotor])
    n = torch.arange(1, propers.k.shape[-1] + 1, dtype=phi.dtype, device=phi.device)
    k = propers.k[about_a_rotor].to(phi.dtype)
    phase = propers.phase[about_a_rotor].to(phi.dtype)
    curvature = -(k * n.pow(2) * torch.cos(phi[..., None] * n - phase)).sum(-1)  # (K, T')
    return out.index_add_(1, order[position[about_a_rotor]], curvature)


def predicted_minimum_rmsd(gradient: torch.Tensor, items: Sequence[GeometryItem]) -> torch.Tensor:
    """Predicted RMSD (A) of each target's MM minimum from its DFT minimum.

    The minimum moves by ``-H0^-1 g`` when the gradient at the stored minimum becomes ``g``
    (:mod:`espaloma_like.training.geometry_targets`), so the deviation is
    ``offsets - H0^-1 g`` on the stored soft modes.

    Parameters
    ----------
    gradient : torch.Tensor
        (N, 3) kJ/mol/nm, the MM gradient at the batch's ``geometry_xyz``.
    items : sequence of GeometryItem

    Returns
    -------
    torch.Tensor
        (len(items),) A.
    """
    from espaloma_like.units import NM_TO_ANGSTROM

    values = []
    for item in items:
        n = item.offsets.shape[0]
        g = gradient[item.start : item.start + n].reshape(-1)
        step = item.modes.T @ (item.inverse_curvatures * (item.modes @ g))
        deviation = item.offsets.reshape(-1) - step
        values.append((deviation.pow(2).sum() / n).sqrt() * NM_TO_ANGSTROM)
    return torch.stack(values)


def prior_deviation(predicted: PredictedParameters, reference: PredictedParameters,
                    stats: HeadStatistics, charge_mask: torch.Tensor,
                    exclude: Sequence[str] = ()) -> torch.Tensor:
    """Mean squared deviation of force constants and unlabelled charges from a reference model.

    Every term kind both predict contributes its ``prior_deviation``: bonds, angles (and Morse
    depths) relative to the reference's constants; torsions, impropers and Urey-Bradley springs
    in units of their head scales. Charges of atoms without labels (``~charge_mask``) count in
    units of 0.05 e. Equilibrium values are free. Kinds named in ``exclude`` are left free too.
    """
    total = predicted.charges.new_zeros((), dtype=torch.float64)
    deviations = [get_kind(name).prior_deviation(block, reference.blocks[name], stats)
                  for name, block in predicted.blocks.items()
                  if name in reference.blocks and name not in exclude]
    if deviations:  # each kind's own measure (its module), in registry order
        total = deviations[0]
        for deviation in deviations[1:]:
            total = total + deviation
    unlabelled = ~charge_mask
    if bool(unlabelled.any()):
        total = total + scaled_deviation(predicted.charges[unlabelled],
                                         reference.charges[unlabelled], CHARGE_UNIT)
    return total


def compute_loss(model: ParameterModel | torch.nn.Module, batch: TrainingBatch, config: LossConfig,
                 autocast_dtype: torch.dtype | None = None, create_graph: bool = True,
                 reference_model: ParameterModel | None = None,
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss and metrics (RMSEs in kcal/mol, kcal/mol/A, e) of one batch.

    The network may run under autocast; parameters are cast to float64 before the MM energy.
    ``create_graph=False`` (evaluation) skips the graph of the forces that only training needs.
    ``reference_model`` (frozen, the starting model) is needed when ``config.prior_weight > 0``.
    """
    graph = batch.graph
    device_type = batch.xyz.device.type
    if autocast_dtype is not None:
        with torch.autocast(device_type=device_type, dtype=autocast_dtype):
            predicted = model(graph)
    else:
        predicted = model(graph)
    parameters = batch_parameter_set(graph, predicted).to(dtype=torch.float64)
    if not config.charges_from_energy:
        from dataclasses import replace

        parameters = replace(parameters, nonbonded=replace(
            parameters.nonbonded, charges=parameters.nonbonded.charges.detach()))
    xyz = batch.xyz.to(torch.float64).requires_grad_(True)
    energy = energy_terms(parameters, xyz, graph.atom_molecule, graph.n_molecules).total
    (gradient,) = torch.autograd.grad(energy.sum(), xyz, create_graph=create_graph)
    forces = -gradient

    # every molecule weighs the same whatever its size, so the loss of a batch split across
    # data-parallel ranks (equal molecule counts) averages to the loss of the whole batch
    m, n_mol = graph.atom_molecule, graph.n_molecules

    def per_molecule_mean(values: torch.Tensor, mask: torch.Tensor | None = None,
                          molecule_weights: torch.Tensor | None = None) -> torch.Tensor:
        weights = torch.ones_like(values) if mask is None else mask.to(values.dtype)
        sums = values.new_zeros(n_mol).index_add_(0, m, values * weights)
        counts = values.new_zeros(n_mol).index_add_(0, m, weights)
        has = counts > 0
        if not bool(has.any()):
            return values.new_zeros(())
        means = sums[has] / counts[has]
        if molecule_weights is not None:
            means = means * molecule_weights[has]
        return means.mean()

    reference = batch.energies.to(torch.float64)
    energy_error = (energy - energy.mean(0)) - (reference - reference.mean(0))
    force_error = forces - batch.forces.to(torch.float64)
    energy_se = (energy_error / ENERGY_UNIT).pow(2)  # (K, M)
    atom_force_se = (force_error / FORCE_UNIT).pow(2).sum(-1).mean(0) / 3.0  # (N,)
    energy_mse = energy_se.mean()
    force_mse = per_molecule_mean(atom_force_se)
    weighted_energy = (energy_se * batch.energy_weights.to(energy_se)).mean()
    weighted_force = per_molecule_mean(atom_force_se, molecule_weights=batch.force_weights)
    torque_mse = weighted_torque = energy_mse.new_zeros(())
    if batch.rotor_axes.shape[0]:
        torque_se = (rotor_torques(xyz.detach(), force_error, batch.rotor_axes, batch.rotor_members)
                     / TORQUE_UNIT).pow(2)  # (K, T)
        if config.torque_stiffness_floor is not None:
            # a torque error turns a rotor by about error / stiffness on minimization: stiff
            # rotors (conjugated, amide-like) barely move, soft ones decide the geometry
            floor = config.torque_stiffness_floor * KCAL_TO_KJ  # kJ/mol/rad^2
            with torch.no_grad():
                stiffness = rotor_stiffness(xyz.detach(), parameters.propers, batch.rotor_axes)
                torque_se = torque_se * (floor / stiffness.clamp(min=floor)).pow(2)
        torque_se = torque_se.mean(0)  # (T,)
        torque_mse = torque_se.mean()
        weighted_torque = (torque_se * batch.force_weights.to(torque_se)[batch.rotor_molecule]).mean()
    mask = batch.charge_mask
    charge_error = predicted.charges.to(torch.float64) - batch.charges.to(torch.float64)
    charge_mse = per_molecule_mean((charge_error / CHARGE_UNIT).pow(2), mask)
    network = model.module if hasattr(model, "module") else model
    stats: HeadStatistics = network.config.heads  # type: ignore[union-attr,assignment]
    scaled_k = predicted.propers.k.to(torch.float64) / stats.proper_k
    loss = (config.energy_weight * weighted_energy + config.force_weight * weighted_force
            + config.charge_weight * charge_mse
            + config.torque_weight * weighted_torque
            + config.torsion_l2 * scaled_k.pow(2).sum() / n_mol
            + config.torsion_l1 * scaled_k.abs().sum() / n_mol)
    geometry_rmsd = None
    if config.geometry_weight > 0 and batch.geometry and batch.geometry_xyz is not None:
        geometry_xyz = batch.geometry_xyz.to(torch.float64).requires_grad_(True)
        geometry_energy = energy_terms(parameters, geometry_xyz, m, n_mol).total
        (geometry_gradient,) = torch.autograd.grad(geometry_energy.sum(), geometry_xyz,
                                                   create_graph=create_graph)
        geometry_rmsd = predicted_minimum_rmsd(geometry_gradient[0], batch.geometry)
        robust = GEOMETRY_SCALE * torch.log1p(geometry_rmsd / GEOMETRY_SCALE)
        loss = loss + config.geometry_weight * robust.mean()
    prior = loss.new_zeros(())
    if config.prior_weight > 0:
        if reference_model is None:
            raise ValueError("loss.prior_weight > 0 needs the reference (starting) model")
        with torch.no_grad():
            reference = reference_model(graph)
        prior = prior_deviation(predicted, reference, stats, batch.charge_mask,
                                exclude=config.prior_exclude)
        loss = loss + config.prior_weight * prior
    metrics = {
        "loss": float(loss.detach()),
        "prior": float(prior.detach()),
        "torque_rmse": float(torque_mse.detach().sqrt()),
        "energy_rmse": float(energy_mse.detach().sqrt()),
        "force_rmse": float(force_mse.detach().sqrt()),
        "charge_rmse": float(charge_mse.detach().sqrt()) * CHARGE_UNIT,
    }
    if geometry_rmsd is not None:  # root mean square over the batch's targets
        metrics["geometry_rmsd"] = float(geometry_rmsd.detach().pow(2).mean().sqrt())
    return loss, metrics
