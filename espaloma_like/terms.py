"""Enumerate the valence terms and nonbonded pair lists of a molecular graph, each term once.

Canonical orders (so that a term has exactly one representation):

* bonds ``(i, j)`` with ``i < j``;
* angles ``(i, j, k)``, ``j`` the apex, ``i < k``;
* propers ``(i, j, k, l)`` along a bonded path, oriented so that ``(i, j, k, l) < (l, k, j, i)``,
  except those whose ``j`` or ``k`` is a linear centre (an sp atom with two neighbours: alkyne and
  nitrile carbons, allene centres): there ``i-j-k`` or ``j-k-l`` is collinear, the dihedral is
  undefined and its gradient diverges, so Sage and GAFF give those torsions zero barriers;
* torsion pairs ``(i, j, k, l, m)``: two consecutive propers ``(i, j, k, l)`` and ``(j, k, l, m)``
  (so none of ``j``, ``k``, ``l`` a linear centre) with ``i != m``, oriented so that ``i < m``
  (the smaller of the chain and its reversal): the terms of the torsion-torsion coupling;
* impropers ``(c, a, b, d)`` for every atom ``c`` with exactly three neighbours, ``a < b < d``.
  The energy is the SMIRNOFF trefoil: the torsions ``(c, a, b, d)``, ``(c, b, d, a)`` and
  ``(c, d, a, b)``, each with a third of the force constant;
* 1-4 pairs: atoms three bonds apart and not closer; exclusions: atoms one or two bonds apart;
  every other pair interacts fully;
* atoms ``(i,)``: every atom once, in order, the one-atom terms of per-atom kinds (learned
  Lennard-Jones).

Each valence kind's symmetry (and so its canonical order) is stated once, by its module in
:mod:`espaloma_like.termkinds` (``permutations``); the orders above are the smallest ordering
under it, which the enumeration here produces directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from espaloma_like._rdkit import atoms as rdkit_atoms
from espaloma_like.molecule import MoleculeGraph
from espaloma_like.termkinds.impropers import trefoil_torsions

__all__ = ["Terms", "enumerate_terms", "linear_centres", "terms_from_bonds", "torsion_pairs",
           "trefoil_torsions"]


@dataclass(frozen=True)
class Terms:
    """Index arrays of a molecule's terms (all int64, atom indices of the graph).

    Attributes
    ----------
    bonds : np.ndarray
        (B, 2)
    angles : np.ndarray
        (A, 3), apex in the middle.
    propers : np.ndarray
        (P, 4)
    impropers : np.ndarray
        (I, 4), central atom first, outer atoms ascending.
    pairs_14 : np.ndarray
        (P14, 2), ``i < j``.
    exclusions : np.ndarray
        (E, 2), ``i < j``: 1-2 and 1-3 pairs.
    pairs_full : np.ndarray
        (F, 2), ``i < j``: every remaining pair, full nonbonded strength.
    torsion_pairs : np.ndarray
        (T, 5), ``i < m``: chains ``i-j-k-l-m`` of two propers sharing ``j-k-l``
        (:func:`torsion_pairs`).
    atoms : np.ndarray
        (N, 1), ``arange(N)``: every atom as a one-atom term (per-atom kinds, learned LJ).
    """

    bonds: np.ndarray
    angles: np.ndarray
    propers: np.ndarray
    impropers: np.ndarray
    pairs_14: np.ndarray
    exclusions: np.ndarray
    pairs_full: np.ndarray
    torsion_pairs: np.ndarray
    atoms: np.ndarray


def _sorted_rows(rows: np.ndarray) -> np.ndarray:
    """Distinct rows in lexicographic order, int64, shape (R, width)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) < 2:
        return rows
    rows = rows[np.lexsort(rows.T[::-1])]
    distinct = np.ones(len(rows), dtype=bool)
    distinct[1:] = (rows[1:] != rows[:-1]).any(axis=1)
    return rows[distinct]


def linear_centres(graph: MoleculeGraph) -> np.ndarray:
    """(N,) bool: atoms with two neighbours and sp hybridization (collinear bonds)."""
    from rdkit import Chem

    return np.array([
        a.GetDegree() == 2 and a.GetHybridization() == Chem.HybridizationType.SP
        for a in rdkit_atoms(graph.rdkit_mol)
    ], dtype=bool)


def enumerate_terms(graph: MoleculeGraph) -> Terms:
    """All terms of ``graph`` in canonical order (see module docstring)."""
    return terms_from_bonds(graph.n_atoms, graph.bonds, linear_centres(graph))


def _expand(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows with ``counts[r]`` items from ``starts[r]``: (row of each item, item index)."""
    rows = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    return rows, starts[rows] + np.arange(int(counts.sum())) - first[rows]


def torsion_pairs(propers: np.ndarray, n_atoms: int) -> np.ndarray:
    """Chains ``(i, j, k, l, m)`` whose torsions ``(i, j, k, l)`` and ``(j, k, l, m)`` are both
    among ``propers``, with five distinct atoms, each once, oriented so that ``i < m``, sorted.

    Vectorized (it runs on the parametrization hot path): the propers in both directions are
    joined on their last three / first three atoms by ``searchsorted`` over integer keys.

    Parameters
    ----------
    propers : np.ndarray
        (P, 4) int64 proper torsions (any orientation, each once).
    n_atoms : int
        Atom count (the keys' base).

    Returns
    -------
    np.ndarray
        (T, 5) int64.
    """
    propers = np.asarray(propers, dtype=np.int64).reshape(-1, 4)
    directed = np.concatenate([propers, propers[:, ::-1]])
    base = np.int64(max(n_atoms, 1))
    head = (directed[:, 0] * base + directed[:, 1]) * base + directed[:, 2]  # (i, j, k)
    tail = (directed[:, 1] * base + directed[:, 2]) * base + directed[:, 3]  # (j, k, l)
    by_head = np.argsort(head, kind="stable")
    heads = head[by_head]
    first = np.searchsorted(heads, tail, side="left")
    counts = np.searchsorted(heads, tail, side="right") - first
    row, match = _expand(first, counts)
    m = directed[by_head[match], 3]
    # i != m makes the five atoms distinct; i < m keeps one of the two directions of each chain
    keep = directed[row, 0] < m
    chains = np.concatenate([directed[row[keep]], m[keep, None]], axis=1)
    if float(base) ** 5 < 2.0**62:  # one integer per row orders rows as lexicographic order does
        order = np.argsort(chains @ (base ** np.arange(4, -1, -1, dtype=np.int64)))
    else:
        order = np.lexsort(chains.T[::-1])
    return chains[order]


def terms_from_bonds(n_atoms: int, bonds: np.ndarray, linear: np.ndarray | None = None) -> Terms:
    """All terms of a graph given by its atom count, (B, 2) bonds and (N,) linear-centre mask.

    Vectorized over bonded paths (no per-atom Python loop): it sits on the parametrization hot
    path.
    """
    if linear is None:
        linear = np.zeros(n_atoms, dtype=bool)
    bonds = np.sort(np.asarray(bonds, dtype=np.int64).reshape(-1, 2), axis=1)
    # directed edges sorted by (source, target): a CSR neighbour list with ascending neighbours
    source = np.concatenate([bonds[:, 0], bonds[:, 1]])
    target = np.concatenate([bonds[:, 1], bonds[:, 0]])
    order = np.lexsort((target, source))
    source, target = source[order], target[order]
    degree = np.bincount(source, minlength=n_atoms)
    start = np.cumsum(degree) - degree

    # angles: each pair of neighbours (a < b) of every apex
    edge = np.arange(len(source))
    later = start[source] + degree[source] - edge - 1  # neighbours after this one
    first_edge, second_edge = _expand(edge + 1, later)
    angles = np.stack([target[first_edge], source[first_edge], target[second_edge]], axis=1)

    # propers: paths i-j-k-m over every directed central bond j->k, without linear centres
    central = np.flatnonzero(~linear[source] & ~linear[target])
    path, i_edge = _expand(start[source[central]], degree[source[central]])
    j, k, i = source[central][path], target[central][path], target[i_edge]
    keep = i != k
    j, k, i = j[keep], k[keep], i[keep]
    path, m_edge = _expand(start[k], degree[k])
    i, j, k, m = i[path], j[path], k[path], target[m_edge]
    keep = (m != j) & (m != i)
    propers = np.stack([i[keep], j[keep], k[keep], m[keep]], axis=1)
    propers = np.where((propers[:, 0] > propers[:, 3])[:, None], propers[:, ::-1], propers)
    propers = _sorted_rows(propers)  # each was found from both directions of its central bond

    centres = np.flatnonzero(degree == 3)
    impropers = np.concatenate(
        [centres[:, None], target[start[centres][:, None] + np.arange(3)]], axis=1)

    adjacency = np.zeros((n_atoms, n_atoms), dtype=bool)
    if len(bonds):
        adjacency[bonds[:, 0], bonds[:, 1]] = True
        adjacency[bonds[:, 1], bonds[:, 0]] = True
    within_1 = adjacency | np.eye(n_atoms, dtype=bool)
    within_2 = (within_1.astype(np.int32) @ within_1.astype(np.int32)) > 0
    within_3 = (within_2.astype(np.int32) @ within_1.astype(np.int32)) > 0
    upper = np.triu(np.ones((n_atoms, n_atoms), dtype=bool), k=1)
    exclusions = np.argwhere(within_2 & upper)
    pairs_14 = np.argwhere(within_3 & ~within_2 & upper)
    pairs_full = np.argwhere(~within_3 & upper)

    return Terms(
        bonds=_sorted_rows(bonds),
        angles=_sorted_rows(angles),
        propers=propers,
        impropers=_sorted_rows(impropers),
        pairs_14=pairs_14.astype(np.int64).reshape(-1, 2),
        exclusions=exclusions.astype(np.int64).reshape(-1, 2),
        pairs_full=pairs_full.astype(np.int64).reshape(-1, 2),
        torsion_pairs=torsion_pairs(propers, n_atoms),
        atoms=np.arange(n_atoms, dtype=np.int64).reshape(-1, 1),
    )
