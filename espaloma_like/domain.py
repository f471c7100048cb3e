"""Applicability domain: where a model's training set says its parameters can be trusted.

An :class:`ApplicabilityDomain` records, for the molecules a model was trained on, the elements,
the range of net charges and of heavy-atom counts, and the set of hashed atom environments
(the atom with its bonded neighbours, a radius-1 Morgan-like invariant). A molecule lies outside
when it has another element, a net charge or size outside the ranges, or atoms whose environment
never occurs in the training set (the *novelty*: the fraction of such atoms). Outside is a
warning, not an error: the parameters are still produced, with the reasons attached
(:attr:`ParametrizedMolecule.domain_warnings`, an :class:`OutOfDomainWarning`, the CLI's stderr
and the exported XML's provenance).

The environment hash is computed from the molecule graph with fixed 64-bit integer mixing
(no RDKit hash, no Python ``hash``), so stored domains stay valid across library versions and
interpreter runs.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from espaloma_like.molecule import SUPPORTED_ELEMENTS, MoleculeGraph

#: Version of the environment hash; a domain stored with another version is not compared.
ENVIRONMENT_HASH_VERSION = 1

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


class OutOfDomainWarning(UserWarning):
    """A molecule lies outside the applicability domain of the model that parametrized it."""


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on a uint64 array (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x & _MASK


def atom_environments(graph: MoleculeGraph, radius: int = 1) -> np.ndarray:
    """Hashed atom environments, one per atom.

    Radius 0 is the atom itself: element, formal charge, number of bonded atoms, number of
    bonded hydrogens, and whether it has an aromatic bond. Each radius adds the neighbours'
    environments of the previous radius with the bond orders (an order-independent sum, as in
    Morgan / ECFP invariants).

    Parameters
    ----------
    graph : MoleculeGraph
        The molecule.
    radius : int
        Bonds from the atom taken into account (1: the atom and its neighbours).

    Returns
    -------
    np.ndarray
        (N,) uint64 environment hashes.
    """
    z = graph.atomic_numbers.astype(np.int64)
    n = z.shape[0]
    bonds = graph.bonds.reshape(-1, 2)
    order_code = np.rint(np.asarray(graph.bond_orders, dtype=np.float64) * 2).astype(np.int64)
    i, j = bonds[:, 0], bonds[:, 1]
    degree = np.bincount(i, minlength=n) + np.bincount(j, minlength=n)
    hydrogens = np.bincount(i, weights=(z[j] == 1), minlength=n) + np.bincount(
        j, weights=(z[i] == 1), minlength=n)
    aromatic_bond = order_code == 3
    aromatic = (np.bincount(i, weights=aromatic_bond, minlength=n)
                + np.bincount(j, weights=aromatic_bond, minlength=n)) > 0
    invariant = (z + 256 * (graph.formal_charges.astype(np.int64) + 8) + 256 * 32 * degree
                 + 256 * 32 * 16 * hydrogens.astype(np.int64) + 256 * 32 * 16 * 8 * aromatic)
    env = _mix(invariant.astype(np.uint64) + np.uint64(ENVIRONMENT_HASH_VERSION))
    # both directions of every bond: (centre, neighbour, bond order)
    centre = np.concatenate([i, j])
    neighbour = np.concatenate([j, i])
    orders = np.concatenate([order_code, order_code]).astype(np.uint64)
    for _ in range(radius):
        with np.errstate(over="ignore"):
            terms = _mix(env[neighbour] ^ (orders * np.uint64(0x9E3779B97F4A7C15)))
            summed = np.zeros(n, dtype=np.uint64)
            np.add.at(summed, centre, terms)
            env = _mix(env * np.uint64(31) + summed)
    return env


def _range(values: list[int]) -> tuple[int, int]:
    return (min(values), max(values)) if values else (0, 0)


@dataclass(frozen=True)
class ApplicabilityDomain:
    """The chemistry a model was trained on.

    Attributes
    ----------
    elements : tuple of int
        Atomic numbers present in the training molecules, sorted.
    net_charge_range : tuple of int
        Smallest and largest net charge, e.
    heavy_atom_range : tuple of int
        Smallest and largest number of non-hydrogen atoms.
    environments : frozenset of int
        Hashed atom environments (:func:`atom_environments`) of every training atom.
    radius : int
        Environment radius, bonds.
    max_novelty : float
        A molecule whose fraction of atoms with unseen environments exceeds this is outside
        (0: any unseen environment is reported).
    n_molecules : int
        Training molecules the domain was computed from.
    sources : tuple of str
        Where the molecules came from (file names), for provenance.
    hash_version : int
        :data:`ENVIRONMENT_HASH_VERSION` used for ``environments``.
    """

    elements: tuple[int, ...]
    net_charge_range: tuple[int, int]
    heavy_atom_range: tuple[int, int]
    environments: frozenset[int] = field(repr=False)
    radius: int = 1
    max_novelty: float = 0.0
    n_molecules: int = 0
    sources: tuple[str, ...] = ()
    hash_version: int = ENVIRONMENT_HASH_VERSION

    def novelty(self, graph: MoleculeGraph) -> float:
        """Fraction of the molecule's atoms whose environment never occurs in the training set."""
        return float(self._unseen(graph).mean()) if graph.n_atoms else 0.0

    @functools.cached_property
    def _known(self) -> np.ndarray:
        return np.array(sorted(self.environments), dtype=np.uint64)

    def _unseen(self, graph: MoleculeGraph) -> np.ndarray:
        """(N,) bool: atoms whose environment is not in the training set."""
        known = self._known
        env = atom_environments(graph, self.radius)
        if not len(known):
            return np.ones(env.shape, dtype=bool)
        # binary search in the sorted training environments (np.isin sorts both sides each call)
        position = np.minimum(np.searchsorted(known, env), len(known) - 1)
        return known[position] != env

    def check(self, graph: MoleculeGraph) -> tuple[str, ...]:
        """Why ``graph`` lies outside the domain: one short reason per criterion; empty inside."""
        reasons = []
        elements = set(self.elements)
        unknown = sorted({int(z) for z in graph.atomic_numbers.tolist()} - elements)
        if unknown:
            reasons.append("elements not in training set: "
                           + ", ".join(SUPPORTED_ELEMENTS.get(z, str(z)) for z in unknown))
        low, high = self.net_charge_range
        charge = graph.total_charge
        if not low <= charge <= high:
            reasons.append(f"net charge {charge:+d} outside training range [{low:+d}, {high:+d}]")
        low, high = self.heavy_atom_range
        heavy = int((graph.atomic_numbers > 1).sum())
        if not low <= heavy <= high:
            reasons.append(f"{heavy} heavy atoms outside training range [{low}, {high}]")
        if self.hash_version == ENVIRONMENT_HASH_VERSION and self.environments:
            unseen = self._unseen(graph)
            if unseen.mean() > self.max_novelty:
                symbols = [SUPPORTED_ELEMENTS.get(int(z), str(z))
                           for z in graph.atomic_numbers[unseen].tolist()]
                labels = [f"{i} ({s})" for s, i in zip(symbols, np.flatnonzero(unseen).tolist(),
                                                       strict=True)]
                shown = ", ".join(labels[:8])
                more = "" if len(symbols) <= 8 else ", ..."
                reasons.append(f"{int(unseen.sum())} of {graph.n_atoms} atoms "
                               f"({unseen.mean():.0%}) have environments not seen in training "
                               f"(atoms {shown}{more})")
        return tuple(reasons)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (environments as sorted integers)."""
        data = asdict(self)
        data["elements"] = list(self.elements)
        data["net_charge_range"] = list(self.net_charge_range)
        data["heavy_atom_range"] = list(self.heavy_atom_range)
        data["sources"] = list(self.sources)
        del data["environments"]
        data["environments"] = sorted(self.environments)  # last: the long part of the JSON
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApplicabilityDomain:
        """The inverse of :meth:`to_dict`."""
        return cls(
            elements=tuple(int(z) for z in data["elements"]),
            net_charge_range=(int(data["net_charge_range"][0]), int(data["net_charge_range"][1])),
            heavy_atom_range=(int(data["heavy_atom_range"][0]), int(data["heavy_atom_range"][1])),
            environments=frozenset(int(e) for e in data.get("environments", ())),
            radius=int(data.get("radius", 1)),
            max_novelty=float(data.get("max_novelty", 0.0)),
            n_molecules=int(data.get("n_molecules", 0)),
            sources=tuple(str(s) for s in data.get("sources", ())),
            hash_version=int(data.get("hash_version", ENVIRONMENT_HASH_VERSION)),
        )

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> ApplicabilityDomain:
        """The inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def compute_domain(molecules: Iterable[Any], radius: int = 1, max_novelty: float = 0.0,
                   sources: Iterable[str] = ()) -> ApplicabilityDomain:
    """The applicability domain of a set of training molecules.

    Parameters
    ----------
    molecules : iterable
        :class:`MoleculeGraph` objects, or any molecule inputs (SMILES, RDKit, OpenFF, files).
    radius : int
        Atom-environment radius, bonds.
    max_novelty : float
        Stored threshold of :meth:`ApplicabilityDomain.check`.
    sources : iterable of str
        Provenance (file names).

    Returns
    -------
    ApplicabilityDomain

    Raises
    ------
    ValueError
        No molecules were given.
    """
    from espaloma_like.molecule import as_molecule_graph

    elements: set[int] = set()
    charges: list[int] = []
    heavy: list[int] = []
    environments: set[int] = set()
    for molecule in molecules:
        graph = molecule if isinstance(molecule, MoleculeGraph) else as_molecule_graph(molecule)
        elements.update(int(z) for z in np.unique(graph.atomic_numbers).tolist())
        charges.append(graph.total_charge)
        heavy.append(int((graph.atomic_numbers > 1).sum()))
        environments.update(int(e) for e in atom_environments(graph, radius).tolist())
    if not charges:
        raise ValueError("compute_domain needs at least one molecule")
    return ApplicabilityDomain(
        elements=tuple(sorted(elements)), net_charge_range=_range(charges),
        heavy_atom_range=_range(heavy), environments=frozenset(environments), radius=radius,
        max_novelty=max_novelty, n_molecules=len(charges), sources=tuple(sources))


#: Key of the domain in checkpoint metadata and in a shipped model's sidecar JSON.
DOMAIN_KEY = "applicability_domain"


def model_domain(model: Any) -> ApplicabilityDomain | None:
    """The applicability domain stored with a loaded model, or None.

    Looked up in the sidecar JSON next to the checkpoint (``<name>.json``, which shipped models
    have and ``training/ship_model.py --domain-from`` writes), then in the checkpoint's metadata
    (``metadata["applicability_domain"]``); read once per model and cached on it.
    """
    cached = getattr(model, "_applicability_domain", False)
    if cached is None or isinstance(cached, ApplicabilityDomain):
        return cached
    metadata = getattr(model, "metadata", None) or {}
    data = None
    if metadata.get("path"):
        sidecar = Path(str(metadata["path"])).with_suffix(".json")
        if sidecar.is_file():
            try:
                data = json.loads(sidecar.read_text()).get(DOMAIN_KEY)
            except (OSError, ValueError, AttributeError):
                data = None
    if data is None:
        data = metadata.get(DOMAIN_KEY)
    domain = ApplicabilityDomain.from_dict(data) if isinstance(data, dict) else None
    try:
        object.__setattr__(model, "_applicability_domain", domain)
    except AttributeError:
        pass
    return domain


def domain_from_qm_files(paths: Iterable[str | Path], radius: int = 1, max_novelty: float = 0.0,
                         splits: tuple[str, ...] = ("train", "validation")) -> ApplicabilityDomain:
    """The domain of the training molecules of QM data files (SPICE ``.h5``, industry SDF).

    Only records whose ``metadata["split"]`` is in ``splits`` count (records without a split
    count as training); held-out molecules are left out. Records without bond orders (empty
    mapped SMILES) are skipped.
    """
    from espaloma_like.data.readers import read_qm_records
    from espaloma_like.data.records import record_graph

    files = [Path(p) for p in paths]

    def graphs() -> Iterable[MoleculeGraph]:
        for path in files:
            for record in read_qm_records(path):
                if record.metadata.get("split", "train") not in splits or not record.mapped_smiles:
                    continue
                yield record_graph(record)

    return compute_domain(graphs(), radius=radius, max_novelty=max_novelty,
                          sources=tuple(p.name for p in files))


def check_domain(model: Any, graph: MoleculeGraph, warn: bool = True) -> tuple[str, ...]:
    """Reasons why ``graph`` lies outside ``model``'s stored domain (empty inside or with none).

    With ``warn``, an :class:`OutOfDomainWarning` naming the molecule and the reasons is issued.
    """
    domain = model_domain(model)
    if domain is None:
        return ()
    reasons = domain.check(graph)
    if reasons and warn:
        import warnings

        warnings.warn(f"{graph.name or graph.smiles}: outside the model's applicability domain: "
                      + "; ".join(reasons), OutOfDomainWarning, stacklevel=_caller_level())
    return reasons


def _caller_level() -> int:
    """``stacklevel`` of the first frame outside the package: the user's call to parametrize."""
    import sys

    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and str(frame.f_globals.get("__name__", "")).startswith(
            "espaloma_like"):
        frame = frame.f_back
        level += 1
    return level
