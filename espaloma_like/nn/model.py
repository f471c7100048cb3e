"""The GNN parameter assigner: message passing, Janossy readouts, charge equilibration.

Pipeline (all batched, PyG-style):

1. atom features -> linear embedding -> ``n_layers`` residual message-passing layers
   (gather over directed edges, ``index_add_`` to the receiving atom);
2. embeddings averaged over resonance-aware symmetry classes, so equivalent atoms (methyl H,
   carboxylate O) are exactly equal;
3. Janossy pooling per term: a shared MLP applied to the concatenated embeddings of every
   symmetry-related ordering of a term's atoms (reversal for bonds, angles and propers; the three
   cyclic orders of the outer atoms for impropers), summed, then a linear head;
4. constrained heads, scaled by fixed per-term statistics: positive force constants, equilibrium
   lengths and angles inside physical ranges, signed torsion constants for n = 1..6 (phase 0),
   positive improper constants for n = 2 (phase pi);
5. charges by charge equilibration: per-atom electronegativity ``e`` and hardness ``s > 0``,
   ``q = (lambda - e) / s`` with ``lambda`` fixing the net charge, solved in closed form in
   float64 so the sum equals the formal charge to float precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from espaloma_like.nn.batch import GraphBatch
from espaloma_like.nn.features import (
    DEFAULT_ATOM_FEATURES,
    DEFAULT_BOND_FEATURES,
    atom_feature_size,
    bond_feature_size,
)


class HeadStatistics(BaseModel):
    """Fixed scales and ranges of the parameter heads (OpenMM units)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bond_k: float = 3.0e5  # kJ/mol/nm^2
    #: equilibrium length = (sum of covalent radii) x a factor in this range
    bond_length_factor_range: tuple[float, float] = (0.75, 1.25)
    angle_k: float = 500.0  # kJ/mol/rad^2
    angle_range: tuple[float, float] = (0.9, math.pi)  # rad
    proper_k: float = 5.0  # kJ/mol
    improper_k: float = 10.0  # kJ/mol
    #: soft threshold on proper torsion constants, kJ/mol: |k| is shrunk by this much and
    #: constants below it are exactly zero, so the exported system carries only the terms that
    #: matter (MM speed) and training sees exactly what is simulated
    proper_k_threshold: float = Field(default=0.0, ge=0.0)
    urey_bradley_k: float = 2.0e4  # kJ/mol/nm^2


class ModelConfig(BaseModel):
    """Architecture of :class:`ParameterModel`; stored in every checkpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = 1
    atom_features: tuple[str, ...] = DEFAULT_ATOM_FEATURES
    bond_features: tuple[str, ...] = DEFAULT_BOND_FEATURES
    hidden: int = 128
    n_layers: int = 4
    readout_hidden: int = 128
    readout_layers: int = 2
    activation: Literal["silu", "relu", "gelu"] = "silu"
    heads: HeadStatistics = HeadStatistics()
    lj: Literal["sage"] = "sage"  # the seam for learned LJ later
    #: predict a Urey-Bradley spring for every angle (bond-angle coupling, CHARMM's form)
    urey_bradley: bool = False


def _outer_distance(bonds: torch.Tensor, bond_length: torch.Tensor, angles: torch.Tensor,
                    angle: torch.Tensor) -> torch.Tensor:
    """Distance (A,) between the outer atoms of each angle at its equilibrium geometry, nm.

    The law of cosines on the two equilibrium bond lengths and the equilibrium angle: the
    Urey-Bradley spring then rests where the bonds and the angle do, so it couples them without
    moving the minimum.
    """
    if angles.shape[0] == 0:
        # molecules with a bond but no angle (N2, HCl, [OH-]): no springs; the lookup below
        # would reduce an empty tensor
        return angle.new_zeros(0)
    n = int(max(bonds.max(), angles.max())) + 1
    keys = bonds.min(-1).values * n + bonds.max(-1).values
    order = torch.argsort(keys)

    def length_of(pair: torch.Tensor) -> torch.Tensor:
        key = pair.min(-1).values * n + pair.max(-1).values
        return bond_length[order[torch.searchsorted(keys[order], key)]]

    a = length_of(angles[:, [0, 1]])
    b = length_of(angles[:, [1, 2]])
    return torch.sqrt(a * a + b * b - 2.0 * a * b * torch.cos(angle))


def _soft_threshold(values: torch.Tensor, threshold: float) -> torch.Tensor:
    """sign(x) max(|x| - threshold, 0): exact zeros below the threshold, continuous above."""
    if threshold == 0.0:
        return values
    return torch.sign(values) * nn.functional.relu(values.abs() - threshold)


_ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU}

#: Single-bond covalent radii (Cordero et al., Dalton Trans. 2008), nm: the reference scale of
#: equilibrium bond lengths.
COVALENT_RADII_NM = {1: 0.031, 6: 0.076, 7: 0.071, 8: 0.066, 9: 0.057, 15: 0.107, 16: 0.105,
                     17: 0.102, 35: 0.120, 53: 0.139}


def _mlp(n_in: int, hidden: int, n_out: int, layers: int, activation: str) -> nn.Sequential:
    modules: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), _ACTIVATIONS[activation]()]
        width = hidden
    modules.append(nn.Linear(width, n_out))
    return nn.Sequential(*modules)


class InteractionLayer(nn.Module):
    """One residual message-passing layer: ``h_i += U(h_i, sum_j M(h_i, h_j, e_ij))``."""

    def __init__(self, hidden: int, edge_dim: int, activation: str) -> None:
        super().__init__()
        self.message = _mlp(2 * hidden + edge_dim, hidden, hidden, 1, activation)
        self.update = _mlp(2 * hidden, hidden, hidden, 1, activation)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h: torch.Tensor, edges: torch.Tensor, edge_features: torch.Tensor) -> torch.Tensor:
        source, target = edges[0], edges[1]
        messages = self.message(torch.cat([h[target], h[source], edge_features], dim=-1))
        aggregated = torch.zeros_like(h).index_add_(0, target, messages)
        return self.norm(h + self.update(torch.cat([h, aggregated], dim=-1)))


class JanossyReadout(nn.Module):
    """Sum of a shared MLP over the given atom orderings of each term, then a linear head."""

    def __init__(self, hidden: int, order: int, readout_hidden: int, layers: int,
                 n_out: int, activation: str) -> None:
        super().__init__()
        self.body = _mlp(order * hidden, readout_hidden, readout_hidden, layers - 1, activation)
        self.act = _ACTIVATIONS[activation]()
        self.head = nn.Linear(readout_hidden, n_out)

    def forward(self, h: torch.Tensor, orderings: list[torch.Tensor]) -> torch.Tensor:
        pooled = sum(self.body(h[idx].flatten(-2)) for idx in orderings)
        return self.head(self.act(pooled))


@dataclass(frozen=True)
class PredictedParameters:
    """Raw model output for a batch, canonical batch indexing, OpenMM units.

    Shapes: ``bond_k``/``bond_length`` (B,), ``angle_k``/``angle`` (A,), ``proper_k`` (P, 6)
    (phase 0), ``improper_k`` (I, 6) (phase pi, only n = 2 non-zero), ``charges`` (N,) float64;
    with ``ModelConfig.urey_bradley``, ``urey_bradley_k``/``urey_bradley_length`` (A,).
    """

    bond_k: torch.Tensor
    bond_length: torch.Tensor
    angle_k: torch.Tensor
    angle: torch.Tensor
    proper_k: torch.Tensor
    improper_k: torch.Tensor
    charges: torch.Tensor
    urey_bradley_k: torch.Tensor | None = None
    urey_bradley_length: torch.Tensor | None = None


class ParameterModel(nn.Module):
    """GNN that maps a :class:`GraphBatch` to :class:`PredictedParameters`."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        self.embed = nn.Linear(atom_feature_size(c.atom_features), c.hidden)
        edge_dim = bond_feature_size(c.bond_features)
        self.layers = nn.ModuleList(
            [InteractionLayer(c.hidden, edge_dim, c.activation) for _ in range(c.n_layers)]
        )
        args = (c.readout_hidden, c.readout_layers)
        self.bond_readout = JanossyReadout(c.hidden, 2, *args, 2, c.activation)
        self.angle_readout = JanossyReadout(c.hidden, 3, *args, 2, c.activation)
        self.proper_readout = JanossyReadout(c.hidden, 4, *args, 6, c.activation)
        self.improper_readout = JanossyReadout(c.hidden, 4, *args, 1, c.activation)
        if c.urey_bradley:
            self.urey_bradley_readout = JanossyReadout(c.hidden, 3, *args, 1, c.activation)
            # start near zero coupling (softplus(-4) ~ 0.02), whatever the rest of the weights
            nn.init.zeros_(self.urey_bradley_readout.head.weight)
            nn.init.constant_(self.urey_bradley_readout.head.bias, -4.0)
        self.charge_readout = _mlp(c.hidden, c.readout_hidden, 2, c.readout_layers - 1, c.activation)
        radii = torch.zeros(max(COVALENT_RADII_NM) + 1)
        for z, r in COVALENT_RADII_NM.items():
            radii[z] = r
        self.register_buffer("covalent_radii", radii, persistent=False)

    def embed_classes(self, batch: GraphBatch) -> torch.Tensor:
        """Embeddings (K, hidden) of the K symmetry classes: the mean over their atoms."""
        h = self.embed(batch.atom_features)
        for layer in self.layers:
            h = layer(h, batch.edges, batch.edge_features)
        classes = batch.symmetry_classes
        n_classes = int(classes.max()) + 1 if classes.numel() else 0
        sums = h.new_zeros((n_classes, h.shape[1])).index_add_(0, classes, h)
        ones = torch.ones_like(classes, dtype=h.dtype)
        counts = h.new_zeros(n_classes).index_add_(0, classes, ones)
        return sums / counts[:, None]

    def forward(self, batch: GraphBatch) -> PredictedParameters:
        """Parameters of every term of the batch.

        Readouts run once per *class-level* term (terms whose atoms belong to the same symmetry
        classes, in a canonical orientation) and are gathered back, so equivalent terms get
        bit-identical parameters.
        """
        stats = self.config.heads
        hc = self.embed_classes(batch)
        classes = batch.symmetry_classes
        n_classes = hc.shape[0]

        def readout(module: JanossyReadout, indices: torch.Tensor, kind: str) -> torch.Tensor:
            unique, inverse = _unique_class_terms(classes[indices], kind, n_classes)
            if kind == "improper":
                orderings = [unique, unique[:, [0, 2, 3, 1]], unique[:, [0, 3, 1, 2]]]
            else:
                orderings = [unique, unique.flip(-1)]
            return module(hc, orderings)[inverse]

        bond_out = readout(self.bond_readout, batch.bonds, "reversal")
        angle_out = readout(self.angle_readout, batch.angles, "reversal")
        proper_out = readout(self.proper_readout, batch.propers, "reversal")
        improper_out = readout(self.improper_readout, batch.impropers, "improper")

        lo, hi = stats.bond_length_factor_range
        alo, ahi = stats.angle_range
        radii: torch.Tensor = self.covalent_radii[batch.atomic_numbers]  # type: ignore[index]
        reference_length = radii[batch.bonds].sum(-1)
        improper_k = improper_out.new_zeros((improper_out.shape[0], 6))
        improper_k[:, 1] = stats.improper_k * nn.functional.softplus(improper_out[:, 0])

        bond_length = reference_length * (lo + (hi - lo) * torch.sigmoid(bond_out[:, 1]))
        # the offset starts angles near 112 degrees
        angle = alo + (ahi - alo) * torch.sigmoid(angle_out[:, 1] - 0.125)
        urey_bradley_k = urey_bradley_length = None
        if self.config.urey_bradley:
            ub_out = readout(self.urey_bradley_readout, batch.angles, "reversal")
            urey_bradley_k = stats.urey_bradley_k * nn.functional.softplus(ub_out[:, 0])
            urey_bradley_length = _outer_distance(batch.bonds, bond_length, batch.angles, angle)
        return PredictedParameters(
            bond_k=stats.bond_k * nn.functional.softplus(bond_out[:, 0] + 0.5413),
            bond_length=bond_length,
            angle_k=stats.angle_k * nn.functional.softplus(angle_out[:, 0] + 0.5413),
            angle=angle,
            proper_k=_soft_threshold(stats.proper_k * proper_out, stats.proper_k_threshold),
            improper_k=improper_k,
            charges=self.equilibrate_charges(hc, batch),
            urey_bradley_k=urey_bradley_k,
            urey_bradley_length=urey_bradley_length,
        )

    def equilibrate_charges(self, hc: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        """Closed-form charge equilibration (N,), float64, exact net charge per molecule."""
        out = self.charge_readout(hc).double()[batch.symmetry_classes]
        electronegativity = out[:, 0]
        hardness = nn.functional.softplus(out[:, 1]) + 1e-2
        m = batch.atom_molecule
        n_mol = batch.n_molecules
        inv = 1.0 / hardness
        sum_inv = inv.new_zeros(n_mol).index_add_(0, m, inv)
        sum_e_inv = inv.new_zeros(n_mol).index_add_(0, m, electronegativity * inv)
        lagrange = (batch.total_charges.to(inv) + sum_e_inv) / sum_inv
        q = (lagrange[m] - electronegativity) * inv
        # remove the last float rounding: the same shift for every atom of a molecule keeps
        # equivalent atoms equal
        residual = batch.total_charges.to(q) - q.new_zeros(n_mol).index_add_(0, m, q)
        counts = q.new_zeros(n_mol).index_add_(0, m, torch.ones_like(q))
        return q + (residual / counts)[m]


def _unique_class_terms(
    term_classes: torch.Tensor, kind: str, n_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deduplicate terms by the symmetry classes of their atoms, in canonical orientation.

    Parameters
    ----------
    term_classes : torch.Tensor
        (T, k) class of each atom of each term.
    kind : str
        "reversal" (bonds, angles, propers) or "improper" (cyclic order of the outer atoms).

    Returns
    -------
    unique : torch.Tensor
        (U, k) class tuples, one per distinct term up to its symmetry.
    inverse : torch.Tensor
        (T,) row of ``unique`` for every term.
    """
    if term_classes.shape[0] == 0:
        return term_classes, torch.zeros(0, dtype=torch.long, device=term_classes.device)
    if kind == "improper":
        variants = [term_classes[:, [0, 1, 2, 3]], term_classes[:, [0, 2, 3, 1]],
                    term_classes[:, [0, 3, 1, 2]]]
    else:
        variants = [term_classes, term_classes.flip(-1)]
    base = n_classes + 1
    width = term_classes.shape[1]
    weights = base ** torch.arange(width - 1, -1, -1, device=term_classes.device)
    keys = torch.stack([(v * weights).sum(-1) for v in variants])  # (V, T), lexicographic
    best_key, best = keys.min(0)
    canonical = torch.stack(variants)[best, torch.arange(term_classes.shape[0])]
    if float(base) ** width >= 2.0**62:  # the integer keys could overflow: compare rows
        unique, inverse = torch.unique(canonical, dim=0, return_inverse=True)
        return unique, inverse
    # one integer key per row orders rows as the lexicographic row order does, and a 1-D
    # unique is several times faster than unique(dim=0)
    unique_keys, inverse = torch.unique(best_key, return_inverse=True)
    first = torch.empty_like(unique_keys).scatter_(
        0, inverse, torch.arange(len(inverse), device=inverse.device))
    return canonical[first], inverse
