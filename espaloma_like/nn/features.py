"""Named atom and bond featurizers; a model's config records which it was built with.

Each featurizer maps an RDKit atom (or bond) to a fixed-length list of floats. The feature
vector of a model is the concatenation of its featurizers, in the order of their names in the
config, so a checkpoint knows exactly what it expects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rdkit import Chem

_ELEMENTS = (1, 6, 7, 8, 9, 15, 16, 17, 35, 53)
_HYBRIDIZATIONS = ("SP", "SP2", "SP3", "SP3D", "SP3D2")


def _one_hot(value: object, choices: Sequence[object]) -> list[float]:
    """One-hot over ``choices`` plus a trailing 'other' slot."""
    out = [0.0] * (len(choices) + 1)
    out[choices.index(value) if value in choices else len(choices)] = 1.0
    return out


def _element(atom: Chem.Atom) -> list[float]:
    return _one_hot(atom.GetAtomicNum(), _ELEMENTS)


def _degree(atom: Chem.Atom) -> list[float]:
    return _one_hot(atom.GetDegree(), (1, 2, 3, 4, 5, 6))


def _total_hydrogens(atom: Chem.Atom) -> list[float]:
    return _one_hot(sum(1 for n in atom.GetNeighbors() if n.GetAtomicNum() == 1), (0, 1, 2, 3))


def _formal_charge(atom: Chem.Atom) -> list[float]:
    return _one_hot(atom.GetFormalCharge(), (-2, -1, 0, 1, 2))


def _hybridization(atom: Chem.Atom) -> list[float]:
    return _one_hot(str(atom.GetHybridization()), _HYBRIDIZATIONS)


def _aromatic(atom: Chem.Atom) -> list[float]:
    return [float(atom.GetIsAromatic())]


def _ring(atom: Chem.Atom) -> list[float]:
    """In a ring, and the size of the smallest ring (3..8, or larger)."""
    info = atom.GetOwningMol().GetRingInfo()
    sizes = [n for n in range(3, 9) if info.IsAtomInRingOfSize(atom.GetIdx(), n)]
    smallest = sizes[0] if sizes else (9 if atom.IsInRing() else 0)
    return [float(atom.IsInRing()), *_one_hot(smallest, (0, 3, 4, 5, 6, 7, 8))]


def _ring_count(atom: Chem.Atom) -> list[float]:
    """Number of SSSR rings the atom belongs to (fused-ring junctions), 0..3+."""
    count = atom.GetOwningMol().GetRingInfo().NumAtomRings(atom.GetIdx())
    return _one_hot(min(count, 3), (0, 1, 2, 3))


def _heavy_degree(atom: Chem.Atom) -> list[float]:
    return _one_hot(sum(1 for n in atom.GetNeighbors() if n.GetAtomicNum() > 1), (0, 1, 2, 3, 4))


def _conjugated(atom: Chem.Atom) -> list[float]:
    return [float(any(b.GetIsConjugated() for b in atom.GetBonds()))]


def _electronegative_neighbours(atom: Chem.Atom) -> list[float]:
    """Count of N, O, F, Cl neighbours (inductive effects on charges), 0..3+."""
    count = sum(1 for n in atom.GetNeighbors() if n.GetAtomicNum() in (7, 8, 9, 17))
    return _one_hot(min(count, 3), (0, 1, 2, 3))


ATOM_FEATURIZERS: dict[str, Callable[[Chem.Atom], list[float]]] = {
    "element": _element,
    "degree": _degree,
    "total_hydrogens": _total_hydrogens,
    "formal_charge": _formal_charge,
    "hybridization": _hybridization,
    "aromatic": _aromatic,
    "ring": _ring,
    "ring_count": _ring_count,
    "heavy_degree": _heavy_degree,
    "conjugated": _conjugated,
    "electronegative_neighbours": _electronegative_neighbours,
}
DEFAULT_ATOM_FEATURES: tuple[str, ...] = tuple(ATOM_FEATURIZERS)


def _bond_order(bond: Chem.Bond) -> list[float]:
    return _one_hot(str(bond.GetBondType()), ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC"))


def _bond_conjugated(bond: Chem.Bond) -> list[float]:
    return [float(bond.GetIsConjugated())]


def _bond_ring(bond: Chem.Bond) -> list[float]:
    return [float(bond.IsInRing())]


BOND_FEATURIZERS: dict[str, Callable[[Chem.Bond], list[float]]] = {
    "bond_order": _bond_order,
    "bond_conjugated": _bond_conjugated,
    "bond_ring": _bond_ring,
}
DEFAULT_BOND_FEATURES: tuple[str, ...] = tuple(BOND_FEATURIZERS)


def _check(names: Sequence[str], known: Mapping[str, object], kind: str) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {kind} featurizer(s) {unknown}; known: {sorted(known)}")


def atom_feature_size(names: Sequence[str]) -> int:
    """Length of the atom feature vector built from ``names``."""
    from rdkit import Chem

    _check(names, ATOM_FEATURIZERS, "atom")
    atom = Chem.MolFromSmiles("C").GetAtomWithIdx(0)
    return sum(len(ATOM_FEATURIZERS[n](atom)) for n in names)


def bond_feature_size(names: Sequence[str]) -> int:
    """Length of the bond feature vector built from ``names``."""
    from rdkit import Chem

    _check(names, BOND_FEATURIZERS, "bond")
    bond = Chem.MolFromSmiles("CC").GetBondWithIdx(0)
    return sum(len(BOND_FEATURIZERS[n](bond)) for n in names)


def atom_features(mol: Chem.Mol, names: Sequence[str]) -> np.ndarray:
    """(N, F) float32 atom features of ``mol`` in atom order."""
    _check(names, ATOM_FEATURIZERS, "atom")
    functions = [ATOM_FEATURIZERS[n] for n in names]
    rows = [[x for f in functions for x in f(atom)] for atom in mol.GetAtoms()]
    return np.asarray(rows, dtype=np.float32)


def bond_features(mol: Chem.Mol, bonds: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """(B, F) float32 features of the bonds ``bonds`` ((B, 2) atom pairs) of ``mol``."""
    _check(names, BOND_FEATURIZERS, "bond")
    functions = [BOND_FEATURIZERS[n] for n in names]
    rows = []
    for i, j in bonds.tolist():
        bond = mol.GetBondBetweenAtoms(int(i), int(j))
        rows.append([x for f in functions for x in f(bond)])
    width = bond_feature_size(names)
    return np.asarray(rows, dtype=np.float32).reshape(-1, width)
