"""Differentiable internal coordinates, batched over conformations.

All functions take ``xyz`` of shape (C, N, 3) (nm) and an index tensor of shape (T, k), and
return (C, T). They are pure and deterministic; degenerate geometries (collinear atoms) give
finite values and zero gradients instead of NaN.
"""

from __future__ import annotations

import torch

# Squared-length floor (nm^2 or nm^4) that keeps square roots and atan2 differentiable at exact
# degeneracy. It is far below any physical value, so energies are unchanged to float precision.
_TINY = 1e-24


def _safe_norm(vectors: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(torch.clamp((vectors * vectors).sum(-1), min=_TINY))


def distances(xyz: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Distances (C, T), nm, between atoms ``pairs[:, 0]`` and ``pairs[:, 1]``."""
    return _safe_norm(xyz[:, pairs[:, 1]] - xyz[:, pairs[:, 0]])


def angles(xyz: torch.Tensor, triples: torch.Tensor) -> torch.Tensor:
    """Angles (C, T), rad, at the middle atom of each triple, in [0, pi]."""
    u = xyz[:, triples[:, 0]] - xyz[:, triples[:, 1]]
    v = xyz[:, triples[:, 2]] - xyz[:, triples[:, 1]]
    return torch.atan2(_safe_norm(torch.cross(u, v, dim=-1)), (u * v).sum(-1))


def dihedrals(xyz: torch.Tensor, quads: torch.Tensor) -> torch.Tensor:
    """Dihedral angles (C, T), rad, in (-pi, pi], IUPAC sign convention (same as OpenMM)."""
    b0 = xyz[:, quads[:, 1]] - xyz[:, quads[:, 0]]
    b1 = xyz[:, quads[:, 2]] - xyz[:, quads[:, 1]]
    b2 = xyz[:, quads[:, 3]] - xyz[:, quads[:, 2]]
    n1 = torch.cross(b0, b1, dim=-1)
    n2 = torch.cross(b1, b2, dim=-1)
    y = _safe_norm(b1) * (b0 * n2).sum(-1)
    x = (n1 * n2).sum(-1)
    # A torsion through collinear atoms is undefined: use a fixed angle with zero gradient
    # (the double `where` keeps NaN out of the backward pass).
    degenerate = (x * x + y * y) < _TINY
    x_safe = torch.where(degenerate, torch.ones_like(x), x)
    y_safe = torch.where(degenerate, torch.zeros_like(y), y)
    return torch.where(degenerate, torch.zeros_like(x), torch.atan2(y_safe, x_safe))
