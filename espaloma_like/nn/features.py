"""Named atom and bond featurizers; a model's config records which it was built with.

Each featurizer maps a molecule's atoms (or bonds) to a fixed-width block of one-hot or binary
columns. The feature matrix of a model is the concatenation of its featurizers' blocks, in the
order of their names in the config, so a checkpoint knows exactly what it expects.

The per-atom quantities are read from RDKit in one pass per molecule and turned into columns with
NumPy, so featurization costs a few Python calls per atom whatever the number of featurizers: it
sits on the parametrization hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from espaloma_like._rdkit import atoms as rdkit_atoms
from espaloma_like._rdkit import bonds as rdkit_bonds

if TYPE_CHECKING:
    from rdkit import Chem

_ELEMENTS = (1, 6, 7, 8, 9, 15, 16, 17, 35, 53)
_HYBRIDIZATIONS = ("SP", "SP2", "SP3", "SP3D", "SP3D2")
_ELECTRONEGATIVE = (7, 8, 9, 17)  # N, O, F, Cl: inductive effects on charges
_BOND_ORDERS = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")


def _one_hot(values: np.ndarray, choices: Sequence[object]) -> np.ndarray:
    """(N, len(choices) + 1) one-hot rows over ``choices`` plus a trailing 'other' column."""
    column = np.full(len(values), len(choices), dtype=np.int64)
    for k, choice in enumerate(choices):
        column[values == choice] = k
    out = np.zeros((len(values), len(choices) + 1), dtype=np.float32)
    out[np.arange(len(values)), column] = 1.0
    return out


def _flag(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float32).reshape(-1, 1)


@dataclass(frozen=True)
class AtomTable:
    """Per-atom integer quantities of one molecule, shape (N,) each, read once from RDKit."""

    atomic_number: np.ndarray
    degree: np.ndarray
    formal_charge: np.ndarray
    hybridization: np.ndarray  # names, e.g. "SP3"
    aromatic: np.ndarray
    hydrogens: np.ndarray  # bonded H atoms
    heavy_degree: np.ndarray
    electronegative_neighbours: np.ndarray
    conjugated: np.ndarray  # has a conjugated bond
    ring_count: np.ndarray  # rings of the stored ring set (SSSR) through the atom
    smallest_ring: np.ndarray  # size of the smallest of them, 0 outside rings

    @classmethod
    def from_rdkit(cls, mol: Chem.Mol) -> AtomTable:
        n = mol.GetNumAtoms()
        atoms = rdkit_atoms(mol)
        z = np.fromiter((a.GetAtomicNum() for a in atoms), np.int64, n)
        bond_list = rdkit_bonds(mol)
        begin = np.fromiter((b.GetBeginAtomIdx() for b in bond_list), np.int64, len(bond_list))
        end = np.fromiter((b.GetEndAtomIdx() for b in bond_list), np.int64, len(bond_list))
        conjugated_bond = np.fromiter((b.GetIsConjugated() for b in bond_list), bool,
                                      len(bond_list))

        def neighbour_count(selected: np.ndarray) -> np.ndarray:
            """How many bonded neighbours of each atom have ``selected[neighbour]``."""
            return (np.bincount(begin, weights=selected[end], minlength=n)
                    + np.bincount(end, weights=selected[begin], minlength=n)).astype(np.int64)

        conjugated = np.zeros(n, dtype=bool)
        conjugated[begin[conjugated_bond]] = True
        conjugated[end[conjugated_bond]] = True
        ring_count = np.zeros(n, dtype=np.int64)
        smallest_ring = np.full(n, np.iinfo(np.int64).max)
        for ring in mol.GetRingInfo().AtomRings():
            members = np.fromiter(ring, np.int64, len(ring))
            ring_count[members] += 1
            smallest_ring[members] = np.minimum(smallest_ring[members], len(ring))
        smallest_ring[ring_count == 0] = 0
        return cls(
            atomic_number=z,
            degree=neighbour_count(np.ones(n)),
            formal_charge=np.fromiter((a.GetFormalCharge() for a in atoms), np.int64, n),
            hybridization=np.array([str(a.GetHybridization()) for a in atoms], dtype=object),
            aromatic=np.fromiter((a.GetIsAromatic() for a in atoms), bool, n),
            hydrogens=neighbour_count((z == 1).astype(float)),
            heavy_degree=neighbour_count((z > 1).astype(float)),
            electronegative_neighbours=neighbour_count(np.isin(z, _ELECTRONEGATIVE).astype(float)),
            conjugated=conjugated,
            ring_count=ring_count,
            smallest_ring=smallest_ring,
        )


def _ring(t: AtomTable) -> np.ndarray:
    """In a ring, and the size of the smallest ring (3..8, or 9 for larger)."""
    in_ring = t.ring_count > 0
    smallest = np.where(t.smallest_ring > 8, 9, t.smallest_ring)
    return np.hstack([_flag(in_ring), _one_hot(smallest, (0, 3, 4, 5, 6, 7, 8))])


ATOM_FEATURIZERS: dict[str, Callable[[AtomTable], np.ndarray]] = {
    "element": lambda t: _one_hot(t.atomic_number, _ELEMENTS),
    "degree": lambda t: _one_hot(t.degree, (1, 2, 3, 4, 5, 6)),
    "total_hydrogens": lambda t: _one_hot(t.hydrogens, (0, 1, 2, 3)),
    "formal_charge": lambda t: _one_hot(t.formal_charge, (-2, -1, 0, 1, 2)),
    "hybridization": lambda t: _one_hot(t.hybridization, _HYBRIDIZATIONS),
    "aromatic": lambda t: _flag(t.aromatic),
    "ring": _ring,
    # fused-ring junctions, 0..3+
    "ring_count": lambda t: _one_hot(np.minimum(t.ring_count, 3), (0, 1, 2, 3)),
    "heavy_degree": lambda t: _one_hot(t.heavy_degree, (0, 1, 2, 3, 4)),
    "conjugated": lambda t: _flag(t.conjugated),
    # count of N, O, F, Cl neighbours, 0..3+
    "electronegative_neighbours": lambda t: _one_hot(np.minimum(t.electronegative_neighbours, 3),
                                                     (0, 1, 2, 3)),
}
DEFAULT_ATOM_FEATURES: tuple[str, ...] = tuple(ATOM_FEATURIZERS)



@dataclass(frozen=True)
class BondTable:
    """Per-bond quantities, shape (B,) each, for the requested atom pairs."""

    order: np.ndarray  # names, e.g. "AROMATIC"
    conjugated: np.ndarray
    in_ring: np.ndarray

    @classmethod
    def from_rdkit(cls, mol: Chem.Mol, pairs: np.ndarray) -> BondTable:
        bonds = [mol.GetBondBetweenAtoms(int(i), int(j)) for i, j in pairs.tolist()]
        return cls(
            order=np.array([str(b.GetBondType()) for b in bonds], dtype=object),
            conjugated=np.fromiter((b.GetIsConjugated() for b in bonds), bool, len(bonds)),
            in_ring=np.fromiter((b.IsInRing() for b in bonds), bool, len(bonds)),
        )


BOND_FEATURIZERS: dict[str, Callable[[BondTable], np.ndarray]] = {
    "bond_order": lambda t: _one_hot(t.order, _BOND_ORDERS),
    "bond_conjugated": lambda t: _flag(t.conjugated),
    "bond_ring": lambda t: _flag(t.in_ring),
}
DEFAULT_BOND_FEATURES: tuple[str, ...] = tuple(BOND_FEATURIZERS)
_EMPTY = np.zeros(0, dtype=np.int64)
#: Columns of each featurizer: its block for a molecule without atoms (or bonds).
_ATOM_WIDTHS = {name: f(AtomTable(*[_EMPTY] * 11)).shape[1]
                for name, f in ATOM_FEATURIZERS.items()}
_BOND_WIDTHS = {name: f(BondTable(_EMPTY, _EMPTY, _EMPTY)).shape[1]
                for name, f in BOND_FEATURIZERS.items()}


def _check(names: Sequence[str], known: Mapping[str, object], kind: str) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {kind} featurizer(s) {unknown}; known: {sorted(known)}")


def atom_feature_size(names: Sequence[str]) -> int:
    """Length of the atom feature vector built from ``names``."""
    _check(names, ATOM_FEATURIZERS, "atom")
    return sum(_ATOM_WIDTHS[n] for n in names)


def bond_feature_size(names: Sequence[str]) -> int:
    """Length of the bond feature vector built from ``names``."""
    _check(names, BOND_FEATURIZERS, "bond")
    return sum(_BOND_WIDTHS[n] for n in names)


def atom_features(mol: Chem.Mol, names: Sequence[str]) -> np.ndarray:
    """(N, F) float32 atom features of ``mol`` in atom order."""
    _check(names, ATOM_FEATURIZERS, "atom")
    table = AtomTable.from_rdkit(mol)
    blocks = [ATOM_FEATURIZERS[n](table) for n in names]
    return np.hstack(blocks) if blocks else np.zeros((mol.GetNumAtoms(), 0), np.float32)


def bond_features(mol: Chem.Mol, bonds: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """(B, F) float32 features of the bonds ``bonds`` ((B, 2) atom pairs) of ``mol``."""
    _check(names, BOND_FEATURIZERS, "bond")
    table = BondTable.from_rdkit(mol, bonds.reshape(-1, 2))
    blocks = [BOND_FEATURIZERS[n](table) for n in names]
    return np.hstack(blocks) if blocks else np.zeros((len(table.order), 0), np.float32)
