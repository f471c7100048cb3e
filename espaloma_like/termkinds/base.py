"""What a term kind is: the :class:`TermKind` interface every kind module implements.

A term kind owns everything about one kind of MM term: its arity and symmetry (the permutations
of a term's atoms that leave it unchanged: canonical order and Janossy orderings alike), which
enumerated terms it acts on, the readout head of the network (outputs and their transform into
parameters), its parameter block (typed fields with units), the torch energy, the OpenMM force
builder and force group, and the ffxml writer. Layers iterate over the registry
(:mod:`espaloma_like.termkinds.registry`) instead of naming kinds.

Nothing here imports torch or OpenMM at module import: they are imported where used, so that
the exporters and ``import espaloma_like`` stay cheap.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import openmm
    import torch

    from espaloma_like.nn.batch import GraphBatch
    from espaloma_like.nn.model import HeadStatistics, JanossyReadout, ModelConfig
    from espaloma_like.parameters import ParameterSet
    from espaloma_like.terms import Terms

#: Energy components, in report order; every valence kind reports into one of the first four
#: (a component is also an OpenMM force group, so per-term energies can be read back).
COMPONENTS = ("bond", "angle", "proper", "improper", "lj", "coulomb")

#: OpenMM force group of each component; Lennard-Jones and Coulomb share the NonbondedForce.
FORCE_GROUPS = {"bond": 0, "angle": 1, "proper": 2, "improper": 3, "nonbonded": 4}


def reversal(arity: int) -> tuple[tuple[int, ...], ...]:
    """The identity and the reversal of ``arity`` atoms, e.g. ``((0, 1, 2), (2, 1, 0))``: the
    symmetry of bonds, angles and propers (a term read backwards is the same term)."""
    return (tuple(range(arity)), tuple(range(arity - 1, -1, -1)))


@dataclass(frozen=True)
class ParameterField:
    """One per-term field of a parameter block.

    Attributes
    ----------
    name : str
        Attribute of the block.
    unit : str
        OpenMM MD units (``"kJ/mol/nm^2"``, ``"nm"``, ``"rad"``, ...).
    shape : str
        Per-term shape after the term axis: ``""`` for a scalar, ``"6"`` for periodicities.
    """

    name: str
    unit: str
    shape: str = ""


@dataclass(frozen=True)
class ReadoutSpec:
    """The Janossy readout head of a kind.

    Attributes
    ----------
    module : str
        Attribute name of the readout on :class:`~espaloma_like.nn.model.ParameterModel`, also
        the prefix of its weights in checkpoints (``"bond_readout"``): never rename one.
    n_outputs : int
        Raw outputs per term, turned into parameters by :meth:`TermKind.from_readout`.
    """

    module: str
    n_outputs: int


@dataclass(frozen=True)
class ReadoutContext:
    """What a readout transform may use besides its own raw outputs.

    Attributes
    ----------
    batch : GraphBatch
        The batch (canonical term indices, atomic numbers).
    heads : HeadStatistics
        Fixed scales and ranges of the heads.
    covalent_radii : torch.Tensor
        (N,) single-bond covalent radius of every atom of the batch, nm.
    blocks : Mapping[str, Any]
        Parameter blocks of the kinds earlier in the registry (e.g. bond lengths).
    """

    batch: GraphBatch
    heads: HeadStatistics
    covalent_radii: torch.Tensor
    blocks: Mapping[str, Any]


def as_array(value: Any) -> np.ndarray:
    """A tensor (or array) as numpy: float64 for floating values, unchanged integers."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    return array.astype(np.float64) if array.dtype.kind == "f" else array


def check_one_per_atom(indices: Any, n_atoms: int, what: str) -> None:
    """Raise ``ValueError`` unless ``indices`` (N, 1) are the atoms ``0..n_atoms-1`` in order:
    the block of a per-atom kind (``Terms.atoms``) must match the nonbonded block's atoms."""
    import torch

    atoms = indices.detach().cpu()
    if atoms.shape != (n_atoms, 1) or not torch.equal(atoms[:, 0], torch.arange(n_atoms)):
        raise ValueError(f"{what} must come one per atom, in the atom order of the nonbonded "
                         "block")


def fmt(x: float) -> str:
    """A float written for ffxml without loss (``repr`` of the float64)."""
    return repr(float(x))


def relative_deviation(k: torch.Tensor, k0: torch.Tensor) -> torch.Tensor:
    """Mean squared relative deviation of ``k`` from ``k0`` (float64; 0 for no terms)."""
    import torch

    k, k0 = k.to(torch.float64), k0.to(torch.float64)
    return ((k - k0) / k0.abs().clamp_min(1e-6)).pow(2).mean() if k.numel() else k.new_zeros(())


def scaled_deviation(k: torch.Tensor, k0: torch.Tensor, scale: float) -> torch.Tensor:
    """Mean squared deviation of ``k`` from ``k0`` in units of ``scale`` (float64)."""
    import torch

    k, k0 = k.to(torch.float64), k0.to(torch.float64)
    return ((k - k0) / scale).pow(2).mean() if k.numel() else k.new_zeros(())


def canonical_rows(rows: np.ndarray, permutations: Sequence[Sequence[int]]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row in its canonical form (the lexicographically smallest symmetry-equivalent
    ordering), rows sorted.

    Parameters
    ----------
    rows : np.ndarray
        (T, k) atom indices of T terms.
    permutations : sequence of sequences of int
        The kind's symmetry (first the identity).

    Returns
    -------
    rows : np.ndarray
        (T, k) canonical rows, sorted lexicographically.
    order : np.ndarray
        (T,) input row of each output row.
    chosen : np.ndarray
        (T,) index into ``permutations`` of the ordering each output row was read in (for
        blocks with orientation-dependent fields).
    """
    width = len(permutations[0])
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, width)
    n = len(rows)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return rows, empty, empty
    variants = rows[:, np.asarray(permutations)]  # (T, V, k)
    base = int(rows.max()) + 1
    if float(base) ** width < 2.0**62:
        # one integer per ordering orders them as the lexicographic order does: a few array
        # operations whatever the symmetry (this runs per molecule on the parametrize path)
        keys = variants @ (base ** np.arange(width - 1, -1, -1, dtype=np.int64))  # (T, V)
        chosen = keys.argmin(axis=1)  # the first smallest: the identity on ties
        order = np.argsort(keys[np.arange(n), chosen], kind="stable")
    else:  # the keys could overflow: compare rows
        best = variants[:, 0]
        chosen = np.zeros(n, dtype=np.int64)
        for v in range(1, variants.shape[1]):
            difference = variants[:, v] - best
            nonzero = difference != 0
            first = np.argmax(nonzero, axis=1)
            smaller = nonzero.any(axis=1) & (np.take_along_axis(difference, first[:, None], 1)[:, 0] < 0)
            best = np.where(smaller[:, None], variants[:, v], best)
            chosen = np.where(smaller, v, chosen)
        order = np.lexsort(best.T[::-1])
    chosen = chosen[order]
    return variants[order, chosen], order, chosen


class TermKind:
    """One kind of valence term; subclasses are the kind modules.

    Class attributes
    ----------------
    name : str
        Registry name. Core kinds are also the :class:`~espaloma_like.parameters.ParameterSet`
        field of their block; an optional kind's block lives in ``ParameterSet.extra_terms``.
    component : str
        Energy component (one of the first four :data:`COMPONENTS`) and so the force group;
        ``"lj"`` or ``"coulomb"`` for a nonbonded kind (learned LJ: no energy
        of its own, the ``NonbondedForce``'s group).
    terms : str
        The enumerated terms the kind acts on: a field of :class:`~espaloma_like.terms.Terms`
        and of :class:`~espaloma_like.nn.batch.GraphBatch` (``"bonds"``, ``"angles"``, ...).
    arity : int
        Atoms per term.
    permutations : tuple of tuple of int
        The term's symmetry, identity first: canonical order (the smallest ordering) and the
        Janossy orderings of the readout.
    optional : bool
        False: every model predicts it and every method provides it. True: switched on per
        model by ``ModelConfig.extra_terms`` (default off).
    config_flag : str or None
        An optional kind older than ``extra_terms`` is switched by this boolean field of
        ``ModelConfig`` instead (``urey_bradley``), which checkpoints carry.
    readout : ReadoutSpec or None
        The network head (None: the network does not predict this kind).
    fields : tuple of ParameterField
        Per-term fields of the block besides ``indices``.
    zero_start : bool
        Whether a fresh readout's head starts at zero (see :meth:`init_readout`).
    system_only : str or None
        Why the kind cannot be written as ForceField XML (OpenMM's ``ForceField`` has no
        generator for its force, e.g. ``CustomCompoundBondForce``), or None.
    """

    name: ClassVar[str]
    component: ClassVar[str]
    terms: ClassVar[str]
    arity: ClassVar[int]
    permutations: ClassVar[tuple[tuple[int, ...], ...]]
    optional: ClassVar[bool] = False
    config_flag: ClassVar[str | None] = None
    readout: ClassVar[ReadoutSpec | None] = None
    fields: ClassVar[tuple[ParameterField, ...]] = ()
    #: why the kind has no ForceField XML element (None: it has one). Such a kind exports as its
    #: OpenMM force: in the System, and in a ForceField XML file only inside the package's
    #: ``<EspalomaLikeMolecule>`` element (:mod:`espaloma_like.export.system_only`).
    system_only: ClassVar[str | None] = None
    #: a fresh readout's head starts at zero weight and bias, so that every term gets the same
    #: starting parameters, whatever the rest of the weights (grafted onto a trained model, an
    #: optional kind then starts where :meth:`from_readout` maps 0)
    zero_start: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"<term kind {self.name!r}>"

    @property
    def force_group(self) -> int:
        """The OpenMM force group of the kind's forces."""
        return FORCE_GROUPS[self.component]

    # ----------------------------------------------------------------- enumeration, symmetry

    def enumerate(self, terms: Terms) -> np.ndarray:
        """(T, arity) int64 canonical terms of a molecule."""
        return np.asarray(getattr(terms, self.terms))

    def canonicalize(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows re-oriented to canonical form and sorted; see :func:`canonical_rows`."""
        return canonical_rows(rows, self.permutations)

    # ----------------------------------------------------------------- the model's readout

    def enabled(self, config: ModelConfig) -> bool:
        """Whether a model with ``config`` predicts this kind."""
        if not self.optional:
            return True
        if self.config_flag is not None:
            return bool(getattr(config, self.config_flag))
        return self.name in config.extra_terms

    def switch(self, config: ModelConfig, on: bool) -> ModelConfig:
        """``config`` with this optional kind switched on or off."""
        if not self.optional:
            raise ValueError(f"{self.name} is not an optional term kind")
        if self.config_flag is not None:
            return config.model_copy(update={self.config_flag: on})
        names = tuple(n for n in config.extra_terms if n != self.name) + ((self.name,) if on else ())
        return config.model_copy(update={"extra_terms": names})

    def init_readout(self, module: JanossyReadout) -> None:
        """Set a fresh readout's starting weights: a zero head with :attr:`zero_start`, else
        PyTorch's initialisation."""
        if self.zero_start:
            from torch import nn

            nn.init.zeros_(module.head.weight)
            nn.init.zeros_(module.head.bias)

    def from_readout(self, raw: torch.Tensor, indices: torch.Tensor, context: ReadoutContext) -> Any:
        """The parameter block of the batch's terms from the raw readout ``raw`` (T, n_outputs)."""
        raise NotImplementedError

    def finalize(self, block: Any, blocks: Mapping[str, Any]) -> Any:
        """The block after the network's output is cast to float64 for export: derived fields
        recomputed at full precision (default: unchanged)."""
        return block

    def prior_deviation(self, predicted: Any, reference: Any, heads: HeadStatistics) -> torch.Tensor:
        """Mean squared deviation of the force constants from a reference model's (float64)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- parameter blocks

    def get(self, parameters: ParameterSet) -> Any:
        """This kind's block of ``parameters``, or None where it has none."""
        if self.optional:
            return parameters.extra_terms.get(self.name)
        return getattr(parameters, self.name)

    def put(self, parameters: ParameterSet, block: Any) -> ParameterSet:
        """``parameters`` with this kind's block set to ``block``."""
        if self.optional:
            return dataclasses.replace(parameters, extra_terms={**parameters.extra_terms, self.name: block})
        return dataclasses.replace(parameters, **{self.name: block})

    def slice(self, block: Any, start: int, stop: int) -> Any:
        """Terms ``start:stop`` of ``block`` (one molecule of a batch), indices unchanged."""
        return dataclasses.replace(block, **{
            f.name: getattr(block, f.name)[start:stop] for f in self.fields
            if getattr(block, f.name) is not None})

    def select(self, block: Any, indices: np.ndarray, order: np.ndarray, chosen: np.ndarray) -> Any:
        """The block with new ``indices`` (T, arity) and its per-term fields taken in ``order``.

        ``chosen`` (see :func:`canonical_rows`) tells how each term was re-oriented; blocks whose
        fields depend on the orientation override this.
        """
        import torch

        take = torch.as_tensor(order, dtype=torch.long)
        return dataclasses.replace(block, indices=torch.as_tensor(indices), **{
            f.name: getattr(block, f.name)[take] for f in self.fields
            if getattr(block, f.name) is not None})

    # ----------------------------------------------------------------- energy

    def energy(self, block: Any, parameters: ParameterSet, xyz: torch.Tensor) -> torch.Tensor:
        """Per-term energies (C, T), kJ/mol, at conformations ``xyz`` (C, N, 3), nm."""
        raise NotImplementedError

    # ----------------------------------------------------------------- export

    def openmm_forces(self, block: Any, parameters: ParameterSet) -> list[openmm.Force]:
        """The OpenMM forces of the block (group set by the caller); empty for no terms."""
        raise NotImplementedError

    def write_ffxml(self, root: ET.Element, classes: Sequence[str], block: Any,
                    parameters: ParameterSet) -> None:
        """Append the block's force elements to the ForceField XML ``root``; ``classes`` are the
        atom classes (one per atom). A :attr:`system_only` kind keeps this default, which
        refuses with its reason."""
        if self.system_only:
            raise NotImplementedError(f"{self.name} has no ForceField XML form "
                                      f"({self.system_only}); export to an OpenMM System instead")
        raise NotImplementedError
