"""Term enumeration: each term once, canonical order, correct pair classification."""

from __future__ import annotations

import numpy as np

from espaloma_like.molecule import from_smiles
from espaloma_like.terms import enumerate_terms, trefoil_torsions


def _as_set(a: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(r) for r in a.tolist()}


def test_ethane_counts() -> None:
    t = enumerate_terms(from_smiles("CC"))
    assert t.bonds.shape == (7, 2)
    assert t.angles.shape == (12, 3)
    assert t.propers.shape == (9, 4)
    assert t.impropers.shape == (0, 4)
    assert t.exclusions.shape == (7 + 12, 2)
    assert t.pairs_14.shape == (9, 2)
    assert t.pairs_full.shape == (0, 2)


def test_each_term_once_in_canonical_order() -> None:
    t = enumerate_terms(from_smiles("CC(=O)Nc1ccc(O)cc1"))
    assert (t.bonds[:, 0] < t.bonds[:, 1]).all()
    assert (t.angles[:, 0] < t.angles[:, 2]).all()
    for row in t.propers.tolist():
        assert tuple(row) <= tuple(row[::-1])
    assert len(_as_set(t.propers)) == len(t.propers)
    assert (np.diff(t.impropers[:, 1:], axis=1) > 0).all()
    # reversed copies never appear
    assert not (_as_set(t.propers) & {tuple(r[::-1]) for r in t.propers.tolist()} - _as_set(t.propers))


def test_pair_lists_partition_all_pairs() -> None:
    g = from_smiles("C1CCC1CCO")  # a 4-ring: 1-4 along one path is 1-2 along the other
    t = enumerate_terms(g)
    n = g.n_atoms
    pairs = _as_set(t.exclusions) | _as_set(t.pairs_14) | _as_set(t.pairs_full)
    assert len(pairs) == n * (n - 1) // 2
    assert len(t.exclusions) + len(t.pairs_14) + len(t.pairs_full) == n * (n - 1) // 2
    assert not (_as_set(t.pairs_14) & _as_set(t.exclusions))
    # ring atoms 0 and 3 are bonded: excluded, never 1-4
    assert (0, 3) in _as_set(t.exclusions)


def test_impropers_for_trivalent_centres_only() -> None:
    g = from_smiles("CC(=O)[O-]")
    t = enumerate_terms(g)
    centres = t.impropers[:, 0].tolist()
    degree = np.bincount(g.bonds.ravel(), minlength=g.n_atoms)
    assert centres == [i for i in range(g.n_atoms) if degree[i] == 3]


def test_trefoil_is_the_three_cyclic_permutations() -> None:
    quads = trefoil_torsions(np.array([[1, 0, 2, 3]]))
    assert quads.tolist() == [[[1, 0, 2, 3], [1, 2, 3, 0], [1, 3, 0, 2]]]


def test_no_propers_through_linear_centres() -> None:
    from espaloma_like.terms import linear_centres

    g = from_smiles("CC#CC")  # but-2-yne: C1-C2#C3-C4, the sp carbons are linear
    assert linear_centres(g).tolist()[:4] == [False, True, True, False]
    t = enumerate_terms(g)
    for _, j, k, _ in t.propers.tolist():
        assert not linear_centres(g)[j] and not linear_centres(g)[k]
    assert len(t.propers) == 0  # every torsion of butyne passes through an sp carbon
    # propanenitrile: only the torsions about C0-C1 (3 H x {C2, H, H}) remain
    assert len(enumerate_terms(from_smiles("CCC#N")).propers) == 9
