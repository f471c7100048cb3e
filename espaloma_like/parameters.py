"""Typed molecular-mechanics parameter sets in OpenMM units.

Every parameter array is a ``torch.Tensor`` so that the same object feeds the differentiable
energy (:mod:`espaloma_like.mm`) during training and the OpenMM exporters afterwards. Index
arrays are ``torch.long``. Units: nm, radians, kJ/mol, elementary charge.

Energy conventions (identical to OpenMM):

* bond ``0.5 k (r - length)^2``, ``k`` in kJ/mol/nm^2;
* angle ``0.5 k (theta - angle)^2``, ``k`` in kJ/mol/rad^2;
* torsion ``sum_n k_n (1 + cos(n phi - phase_n))`` for n = 1..6 (column ``n - 1``), kJ/mol;
* impropers: with ``trefoil=True`` each row ``(c, a, b, d)`` (central first) contributes the three
  torsions ``(c, a, b, d)``, ``(c, b, d, a)``, ``(c, d, a, b)`` at ``k / 3`` each (SMIRNOFF);
  with ``trefoil=False`` each row is one torsion in the given order (Amber/GAFF, central third);
* Lennard-Jones ``4 eps ((sigma/r)^12 - (sigma/r)^6)`` with Lorentz-Berthelot mixing, Coulomb
  ``q_i q_j / (4 pi eps0 r)``; 1-2 and 1-3 pairs excluded, 1-4 pairs scaled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

N_PERIODICITIES = 6


def _to(tensor: torch.Tensor, device: Any, dtype: Any) -> torch.Tensor:
    if tensor.is_floating_point():
        return tensor.to(device=device, dtype=dtype)
    return tensor.to(device=device)


class _TensorGroup:
    """Mixin of the parameter blocks: move or detach every tensor field at once."""

    def to(self, device: Any = None, dtype: Any = None) -> Any:
        import torch

        changes = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                changes[f.name] = _to(value, device, dtype)
        return replace(self, **changes)  # type: ignore[type-var]

    def detach(self) -> Any:
        import torch

        changes = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                changes[f.name] = value.detach()
        return replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class BondParameters(_TensorGroup):
    """Harmonic bonds: ``indices`` (B, 2), ``k`` (B,) kJ/mol/nm^2, ``length`` (B,) nm."""

    indices: torch.Tensor
    k: torch.Tensor
    length: torch.Tensor


@dataclass(frozen=True)
class AngleParameters(_TensorGroup):
    """Harmonic angles: ``indices`` (A, 3), ``k`` (A,) kJ/mol/rad^2, ``angle`` (A,) rad.

    Optional Urey-Bradley coupling of each angle (CHARMM's form): a harmonic spring between the
    two outer atoms, ``0.5 urey_bradley_k (r_13 - urey_bradley_length)^2`` with
    ``urey_bradley_k`` (A,) kJ/mol/nm^2 and ``urey_bradley_length`` (A,) nm; None: no coupling.
    """

    indices: torch.Tensor
    k: torch.Tensor
    angle: torch.Tensor
    urey_bradley_k: torch.Tensor | None = None
    urey_bradley_length: torch.Tensor | None = None


@dataclass(frozen=True)
class TorsionParameters(_TensorGroup):
    """Periodic torsions: ``indices`` (T, 4), ``k`` (T, 6) kJ/mol, ``phase`` (T, 6) rad.

    Column ``n - 1`` holds periodicity ``n``. For impropers, ``trefoil`` selects the convention
    (see the module docstring); it is ignored for propers.
    """

    indices: torch.Tensor
    k: torch.Tensor
    phase: torch.Tensor
    trefoil: bool = False


@dataclass(frozen=True)
class NonbondedParameters(_TensorGroup):
    """Per-atom nonbonded parameters and the pair lists they act on.

    Attributes
    ----------
    charges : torch.Tensor
        (N,) partial charges, e.
    sigma : torch.Tensor
        (N,) LJ sigma, nm.
    epsilon : torch.Tensor
        (N,) LJ epsilon, kJ/mol.
    pairs_full, pairs_14, exclusions : torch.Tensor
        (F, 2), (P14, 2), (E, 2) atom pairs, ``i < j``.
    coulomb_14_scale, lj_14_scale : float
        Scale factors of 1-4 interactions.
    """

    charges: torch.Tensor
    sigma: torch.Tensor
    epsilon: torch.Tensor
    pairs_full: torch.Tensor
    pairs_14: torch.Tensor
    exclusions: torch.Tensor
    coulomb_14_scale: float = 0.8333333333
    lj_14_scale: float = 0.5


@dataclass(frozen=True)
class ParameterSet(_TensorGroup):
    """All MM parameters of one molecule (or a batch of molecules, indices offset).

    Attributes
    ----------
    atomic_numbers : np.ndarray
        (N,) int64, for masses and elements on export.
    bonds, angles : BondParameters, AngleParameters
    propers, impropers : TorsionParameters
    nonbonded : NonbondedParameters
    provenance : dict
        Free-form strings (method, force field, model name) written into exported XML.
    extra_terms : Mapping[str, Any]
        Blocks of the optional term kinds this set holds (Morse bonds, ...), by the kind's
        registry name (:mod:`espaloma_like.termkinds`); each kind module defines its block.
        The Urey-Bradley springs, older than the registry, live in ``angles``.
    """

    atomic_numbers: np.ndarray
    bonds: BondParameters
    angles: AngleParameters
    propers: TorsionParameters
    impropers: TorsionParameters
    nonbonded: NonbondedParameters
    provenance: dict[str, str] = field(default_factory=dict)
    extra_terms: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return int(self.atomic_numbers.shape[0])

    def to(self, device: Any = None, dtype: Any = None) -> ParameterSet:
        """Move every tensor to ``device``; floating tensors also to ``dtype``."""
        return replace(
            self,
            bonds=self.bonds.to(device, dtype),
            angles=self.angles.to(device, dtype),
            propers=self.propers.to(device, dtype),
            impropers=self.impropers.to(device, dtype),
            nonbonded=self.nonbonded.to(device, dtype),
            extra_terms={name: block.to(device, dtype) for name, block in self.extra_terms.items()},
        )

    def detach(self) -> ParameterSet:
        """A copy cut from the autograd graph."""
        return replace(
            self,
            bonds=self.bonds.detach(),
            angles=self.angles.detach(),
            propers=self.propers.detach(),
            impropers=self.impropers.detach(),
            nonbonded=self.nonbonded.detach(),
            extra_terms={name: block.detach() for name, block in self.extra_terms.items()},
        )

    def numpy(self) -> dict[str, np.ndarray]:
        """Flat float64/int64 numpy view of every array, keyed ``"bonds.k"`` etc.

        For inspection and tests (an optional kind's fields are keyed by its name); code that
        consumes parameters reads the typed blocks instead.
        """
        out: dict[str, np.ndarray] = {"atomic_numbers": np.asarray(self.atomic_numbers)}
        groups = {name: getattr(self, name)
                  for name in ("bonds", "angles", "propers", "impropers", "nonbonded")}
        for group_name, group in {**groups, **self.extra_terms}.items():
            for f in fields(group):
                value = getattr(group, f.name)
                if hasattr(value, "detach"):
                    array = value.detach().cpu().numpy()
                    out[f"{group_name}.{f.name}"] = (
                        array.astype(np.float64) if array.dtype.kind == "f" else array
                    )
        return out


def empty_torsions(trefoil: bool = False) -> TorsionParameters:
    """A torsion block with no terms."""
    import torch

    return TorsionParameters(
        indices=torch.zeros((0, 4), dtype=torch.long),
        k=torch.zeros((0, N_PERIODICITIES), dtype=torch.float64),
        phase=torch.zeros((0, N_PERIODICITIES), dtype=torch.float64),
        trefoil=trefoil,
    )
