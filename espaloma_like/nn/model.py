"""The GNN parameter assigner: message passing, Janossy readouts, charge equilibration.

Pipeline (all batched, PyG-style):

1. atom features -> linear embedding -> ``n_layers`` residual message-passing layers
   (gather over directed edges, ``index_add_`` to the receiving atom);
2. embeddings averaged over resonance-aware symmetry classes, so equivalent atoms (methyl H,
   carboxylate O) are exactly equal;
3. Janossy pooling per term kind of the registry (:mod:`espaloma_like.termkinds`): a shared
   MLP applied to the concatenated embeddings of every symmetry-related ordering of a term's
   atoms (the kind's ``permutations``: reversal for bonds, angles and propers; the three cyclic
   orders of the outer atoms for impropers), summed, then a linear head;
4. constrained heads (each kind's ``from_readout``), scaled by fixed per-term statistics:
   positive force constants, equilibrium lengths and angles inside physical ranges, signed
   torsion constants for n = 1..6 (phase 0), positive improper constants for n = 2 (phase pi);
5. charges by charge equilibration: per-atom electronegativity ``e`` and hardness ``s > 0``,
   ``q = (lambda - e) / s`` with ``lambda`` fixing the net charge, solved in closed form in
   float64 so the sum equals the formal charge to float precision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from espaloma_like.nn.batch import GraphBatch
from espaloma_like.nn.features import (
    DEFAULT_ATOM_FEATURES,
    DEFAULT_BOND_FEATURES,
    atom_feature_size,
    bond_feature_size,
)
from espaloma_like.termkinds import OPTIONAL_KINDS, model_kinds
from espaloma_like.termkinds.base import ReadoutContext

if TYPE_CHECKING:
    from espaloma_like.parameters import AngleParameters, BondParameters, TorsionParameters


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
    #: bounds of the log-factors on Sage's sigma and epsilon of the learned-LJ kinds
    #: (``learned_lj``, ``intramolecular_lj``): ``sigma_sage exp(bound tanh(x))``
    lj_sigma_log_bound: float = Field(default=0.1, gt=0.0, le=0.5)
    lj_epsilon_log_bound: float = Field(default=0.5, gt=0.0, le=1.0)
    #: bound of the log of the per-atom Coulomb factors of ``intramolecular_coulomb``
    coulomb_log_bound: float = Field(default=0.3, gt=0.0, le=1.0)


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
    #: Sage's LJ; learned LJ on top of it is the optional kind ``extra_terms=("learned_lj",)``
    #: (every pair) or ``("intramolecular_lj",)`` (within the molecule only)
    lj: Literal["sage"] = "sage"
    #: predict a Urey-Bradley spring for every angle (bond-angle coupling, CHARMM's form)
    urey_bradley: bool = False
    #: optional term kinds to predict besides the classical ones, by registry name
    #: (:data:`espaloma_like.termkinds.OPTIONAL_KINDS`), e.g. ``("morse",)``
    extra_terms: tuple[str, ...] = ()

    @field_validator("extra_terms")
    @classmethod
    def _known_kinds(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        allowed = [k.name for k in OPTIONAL_KINDS if k.config_flag is None]
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise ValueError(f"unknown optional term kinds {unknown}; choose from {allowed}")
        if len(set(names)) != len(names):
            raise ValueError(f"extra_terms names a kind twice: {list(names)}")
        if {"learned_lj", "intramolecular_lj"} <= set(names):
            raise ValueError("learned_lj and intramolecular_lj are alternatives (LJ learned for "
                             "every pair, or within the molecule only): choose one")
        if {"scaled_14", "intramolecular_coulomb"} <= set(names):
            raise ValueError("scaled_14 and intramolecular_coulomb both rescale the 1-4 Coulomb "
                             "pairs (the correction of each assumes the other's absent): choose one")
        return names


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
    """Model output for a batch: canonical batch indexing, OpenMM units.

    Attributes
    ----------
    blocks : Mapping[str, Any]
        The parameter block of every term kind the model predicts, by registry name, in
        registry order (indices are the batch's term indices): ``bonds``
        (:class:`~espaloma_like.parameters.BondParameters`), ``angles``, ``propers`` (phase 0),
        ``impropers`` (phase pi, only n = 2 non-zero), and optional kinds (``urey_bradley``,
        ...) as their modules define them.
    charges : torch.Tensor
        (N,) float64, e.
    """

    blocks: Mapping[str, Any]
    charges: torch.Tensor

    @property
    def bonds(self) -> BondParameters:
        return self.blocks["bonds"]

    @property
    def angles(self) -> AngleParameters:
        return self.blocks["angles"]

    @property
    def propers(self) -> TorsionParameters:
        return self.blocks["propers"]

    @property
    def impropers(self) -> TorsionParameters:
        return self.blocks["impropers"]

    def replace_block(self, name: str, **changes: Any) -> PredictedParameters:
        """A copy with fields of block ``name`` changed (``replace_block("bonds", k=...)``)."""
        import dataclasses

        block = dataclasses.replace(self.blocks[name], **changes)
        return dataclasses.replace(self, blocks={**self.blocks, name: block})


class ParameterModel(nn.Module):
    """GNN that maps a :class:`GraphBatch` to :class:`PredictedParameters`.

    One :class:`JanossyReadout` per term kind the config enables, an attribute named by the
    kind's ``readout.module`` (``bond_readout``, ``urey_bradley_readout``, ...): those names
    are the keys of the weights in checkpoints.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        self.embed = nn.Linear(atom_feature_size(c.atom_features), c.hidden)
        edge_dim = bond_feature_size(c.bond_features)
        self.layers = nn.ModuleList(
            [InteractionLayer(c.hidden, edge_dim, c.activation) for _ in range(c.n_layers)]
        )
        # created in registry order: it fixes a fresh model's random initialisation
        for kind in model_kinds(c):
            if kind.readout is None:
                continue
            readout = JanossyReadout(c.hidden, kind.arity, c.readout_hidden, c.readout_layers,
                                     kind.readout.n_outputs, c.activation)
            kind.init_readout(readout)
            self.add_module(kind.readout.module, readout)
        self.charge_readout = _mlp(c.hidden, c.readout_hidden, 2, c.readout_layers - 1, c.activation)
        radii = torch.zeros(max(COVALENT_RADII_NM) + 1)
        for z, r in COVALENT_RADII_NM.items():
            radii[z] = r
        self.register_buffer("covalent_radii", radii, persistent=False)

    def readouts(self) -> dict[str, JanossyReadout]:
        """The term readouts by kind name, in registry order."""
        return {kind.name: getattr(self, kind.readout.module) for kind in model_kinds(self.config)
                if kind.readout is not None}

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
        bit-identical parameters. Kinds run in registry order; each may use the blocks before it.
        """
        hc = self.embed_classes(batch)
        classes = batch.symmetry_classes
        n_classes = hc.shape[0]
        radii: torch.Tensor = self.covalent_radii[batch.atomic_numbers]  # type: ignore[index]
        blocks: dict[str, Any] = {}
        context = ReadoutContext(batch, self.config.heads, radii, blocks)
        unique_terms: dict[tuple[str, Any], tuple[torch.Tensor, torch.Tensor]] = {}
        for kind in model_kinds(self.config):
            if kind.readout is None:
                continue
            module = getattr(self, kind.readout.module)
            indices = getattr(batch, kind.terms)
            key = (kind.terms, kind.permutations)
            if key not in unique_terms:  # kinds on the same terms share the class-level terms
                unique_terms[key] = _unique_class_terms(classes[indices], kind.permutations, n_classes)
            unique, inverse = unique_terms[key]
            orderings = [unique[:, list(p)] for p in kind.permutations]
            blocks[kind.name] = kind.from_readout(module(hc, orderings)[inverse], indices, context)
        return PredictedParameters(blocks=blocks, charges=self.equilibrate_charges(hc, batch))

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
    term_classes: torch.Tensor, permutations: Sequence[Sequence[int]], n_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deduplicate terms by the symmetry classes of their atoms, in canonical orientation.

    Parameters
    ----------
    term_classes : torch.Tensor
        (T, k) class of each atom of each term.
    permutations : sequence of sequences of int
        The term kind's symmetry, identity first (reversal; cyclic orders of the outer atoms
        for impropers).
    n_classes : int
        Number of classes (class ids are below it).

    Returns
    -------
    unique : torch.Tensor
        (U, k) class tuples, one per distinct term up to its symmetry.
    inverse : torch.Tensor
        (T,) row of ``unique`` for every term.
    """
    if term_classes.shape[0] == 0:
        return term_classes, torch.zeros(0, dtype=torch.long, device=term_classes.device)
    variants = [term_classes[:, list(p)] for p in permutations]
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
