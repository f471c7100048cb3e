"""Fast access to an RDKit molecule's atoms and bonds.

RDKit's ``Mol.GetAtoms()`` / ``GetBonds()`` are Python-level iterators that re-count the atoms
at every step (several Python calls per item); indexing directly is about three times faster,
which matters on the parametrization hot path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rdkit import Chem


def atoms(mol: Chem.Mol) -> list[Chem.Atom]:
    """The atoms of ``mol`` in index order."""
    get = mol.GetAtomWithIdx
    return [get(i) for i in range(mol.GetNumAtoms())]


def bonds(mol: Chem.Mol) -> list[Chem.Bond]:
    """The bonds of ``mol`` in index order."""
    get = mol.GetBondWithIdx
    return [get(i) for i in range(mol.GetNumBonds())]
