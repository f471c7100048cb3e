"""Class-II cross terms of the angles: bond-bond and bond-angle couplings, an optional kind
(``ModelConfig.extra_terms=("class2",)``).

For each angle ``i-j-k`` (apex ``j``) the kind adds

    E = k_bb dr1 dr2 + k_ba (dr1 + dr2) dtheta,

with ``dr1 = r_ij - b1``, ``dr2 = r_kj - b2`` and ``dtheta = theta - theta0``, where ``b1`` and
``b2`` are the equilibrium lengths of the angle's two bonds (the bond block) and ``theta0`` the
angle's equilibrium (the angle block). The network learns two couplings per angle, ``k_bb``
(kJ/mol/nm^2) and ``k_ba`` (kJ/mol/nm/rad); the reference geometry is not learned here, so the
term vanishes with its gradient at the equilibrium geometry of the harmonic terms and the
minimum does not move. It is reported in the angle component (force group 1).

Restriction: both couplings are symmetric under reversing the angle (``dr1`` and ``dr2`` swap),
which is what the Janossy readout, a sum over both orderings of the angle, can predict. A
per-side bond-angle coupling (COMPASS's ``k_ba1 dr1 dtheta + k_ba2 dr2 dtheta`` with
``k_ba1 != k_ba2``) would need outputs that depend on the orientation of the term, which this
class-level readout cannot give; the kind has one shared ``k_ba`` per angle.

Readout: 2 outputs per angle, ``k_bb = K_BB_SCALE tanh(x0)`` and ``k_ba = K_BA_SCALE tanh(x1)``:
couplings of either sign, bounded well inside the range where the quadratic form of bonds,
angle and couplings stays positive definite for ordinary bond and angle constants. The head's
weights and bias start at zero, so every coupling starts at exactly 0 (a model with the kind
grafted on starts with the energies of the one without it). The scales are module constants,
not :class:`~espaloma_like.nn.model.HeadStatistics` fields, so no existing checkpoint changes.

Export: one OpenMM ``CustomCompoundBondForce`` (3 particles per angle, per-bond ``kbb``,
``kba``, ``b1``, ``b2``, ``theta0``) in the System. OpenMM's ``ForceField`` has no generator for
``CustomCompoundBondForce``, so the kind is System-only (:attr:`Class2.system_only`): a
ForceField XML file carries it only inside the package's ``<EspalomaLikeMolecule>`` element.
ParmEd's GROMACS and Amber files have no such term either: those exports refuse it.
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

#: Bound of the bond-bond coupling ``k_bb``, kJ/mol/nm^2 (about 12 kcal/mol/A^2).
K_BB_SCALE = 5.0e4
#: Bound of the bond-angle coupling ``k_ba``, kJ/mol/nm/rad (about 24 kcal/mol/A/rad).
K_BA_SCALE = 1.0e3
#: The energy in OpenMM's expression language; per-angle ``kbb`` (kJ/mol/nm^2), ``kba``
#: (kJ/mol/nm/rad), ``b1``, ``b2`` (nm) and ``theta0`` (rad); particles ``p1-p2-p3``, apex ``p2``.
ENERGY = ("kbb*dr1*dr2+kba*(dr1+dr2)*dtheta; dr1=distance(p1,p2)-b1; dr2=distance(p3,p2)-b2; "
          "dtheta=angle(p1,p2,p3)-theta0")
PER_ANGLE = ("kbb", "kba", "b1", "b2", "theta0")


@dataclass(frozen=True)
class Class2Parameters(_TensorGroup):
    """Cross-term couplings of the angles: ``indices`` (A, 3), the angles in the angle block's
    order; ``k_bb`` (A,) kJ/mol/nm^2; ``k_ba`` (A,) kJ/mol/nm/rad."""

    indices: torch.Tensor
    k_bb: torch.Tensor
    k_ba: torch.Tensor


def angle_bond_lengths(bonds: torch.Tensor, bond_length: torch.Tensor, angles: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Equilibrium lengths of the two bonds of each angle, nm.

    Parameters
    ----------
    bonds : torch.Tensor
        (B, 2) bonds; ``bond_length`` (B,) their equilibrium lengths, nm.
    angles : torch.Tensor
        (A, 3) angles ``i-j-k``, apex ``j``; each of ``i-j`` and ``j-k`` must be a bond.

    Returns
    -------
    b1, b2 : torch.Tensor
        (A,) lengths of bonds ``i-j`` and ``k-j``, nm.
    """
    import torch

    if angles.shape[0] == 0:  # molecules with a bond but no angle: nothing to look up
        empty = bond_length.new_zeros(0)
        return empty, empty
    n = int(max(bonds.max(), angles.max())) + 1
    keys = bonds.min(-1).values * n + bonds.max(-1).values
    order = torch.argsort(keys)
    sorted_keys = keys[order]

    def length_of(pair: torch.Tensor) -> torch.Tensor:
        key = pair.min(-1).values * n + pair.max(-1).values
        return bond_length[order[torch.searchsorted(sorted_keys, key)]]

    return length_of(angles[:, [0, 1]]), length_of(angles[:, [2, 1]])


def class2_energy(xyz: torch.Tensor, indices: torch.Tensor, k_bb: torch.Tensor, k_ba: torch.Tensor,
                  b1: torch.Tensor, b2: torch.Tensor, theta0: torch.Tensor) -> torch.Tensor:
    """Per-angle cross-term energies (C, A), kJ/mol:
    ``k_bb dr1 dr2 + k_ba (dr1 + dr2) (theta - theta0)``.

    Parameters
    ----------
    xyz : torch.Tensor
        (C, N, 3) nm.
    indices : torch.Tensor
        (A, 3) atom triples ``i-j-k``, apex ``j`` in the middle.
    k_bb : torch.Tensor
        (A,) bond-bond couplings, kJ/mol/nm^2.
    k_ba : torch.Tensor
        (A,) bond-angle couplings, kJ/mol/nm/rad.
    b1, b2 : torch.Tensor
        (A,) equilibrium lengths of bonds ``i-j`` and ``k-j``, nm.
    theta0 : torch.Tensor
        (A,) equilibrium angles, rad.
    """
    from espaloma_like.mm.geometry import angles, distances

    dr1 = distances(xyz, indices[:, [0, 1]]) - b1
    dr2 = distances(xyz, indices[:, [2, 1]]) - b2
    dtheta = angles(xyz, indices) - theta0
    return k_bb * dr1 * dr2 + k_ba * (dr1 + dr2) * dtheta


class Class2(TermKind):
    """Class-II bond-bond and bond-angle cross terms of the angles (block
    :class:`Class2Parameters`)."""

    name = "class2"
    component = "angle"
    terms = "angles"
    arity = 3
    permutations = reversal(3)
    optional = True
    readout = ReadoutSpec("class2_readout", 2)
    zero_start = True  # every coupling starts at exactly 0
    fields = (ParameterField("k_bb", "kJ/mol/nm^2"), ParameterField("k_ba", "kJ/mol/nm/rad"))
    system_only = ("CustomCompoundBondForce (bond-bond and bond-angle cross terms), which OpenMM's "
                   "ForceField cannot generate")

    def from_readout(self, raw: torch.Tensor, indices: torch.Tensor,
                     context: ReadoutContext) -> Class2Parameters:
        import torch

        return Class2Parameters(indices, K_BB_SCALE * torch.tanh(raw[:, 0]),
                                K_BA_SCALE * torch.tanh(raw[:, 1]))

    def prior_deviation(self, predicted: Class2Parameters, reference: Class2Parameters,
                        heads: HeadStatistics) -> torch.Tensor:
        return (scaled_deviation(predicted.k_bb, reference.k_bb, K_BB_SCALE)
                + scaled_deviation(predicted.k_ba, reference.k_ba, K_BA_SCALE))

    def put(self, parameters: ParameterSet, block: Class2Parameters) -> ParameterSet:
        import torch

        if not torch.equal(block.indices.cpu(), parameters.angles.indices.cpu()):
            raise ValueError("class-II couplings must come one per angle, in the angles' order")
        return super().put(parameters, block)

    def _reference(self, parameters: ParameterSet) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``b1``, ``b2`` (nm) and ``theta0`` (rad), (A,) each, of the angles of ``parameters``."""
        bonds, angles = parameters.bonds, parameters.angles
        b1, b2 = angle_bond_lengths(bonds.indices, bonds.length, angles.indices)
        return b1, b2, angles.angle

    def energy(self, block: Class2Parameters, parameters: ParameterSet, xyz: torch.Tensor) -> torch.Tensor:
        return class2_energy(xyz, block.indices, block.k_bb, block.k_ba, *self._reference(parameters))

    def openmm_forces(self, block: Class2Parameters, parameters: ParameterSet) -> list[openmm.Force]:
        import openmm

        force = openmm.CustomCompoundBondForce(3, ENERGY)
        for name in PER_ANGLE:
            force.addPerBondParameter(name)
        columns = [as_array(v).tolist() for v in (block.k_bb, block.k_ba, *self._reference(parameters))]
        for (i, j, k), values in zip(as_array(block.indices).tolist(), zip(*columns, strict=True),
                                     strict=True):
            if values[0] != 0.0 or values[1] != 0.0:
                force.addBond([i, j, k], list(values))
        return [force] if force.getNumBonds() else []


CLASS2 = Class2()
