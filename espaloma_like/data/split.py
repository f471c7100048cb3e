"""Reproducible splits by molecule: stable hashes and Bemis-Murcko scaffolds.

Every split in the package is a pure function of the molecule's SMILES, so it can be recomputed
anywhere and recorded beside the data it applies to.
"""

from __future__ import annotations

import hashlib


def stable_fraction(text: str, salt: str = "") -> float:
    """A number in [0, 1) fixed by ``salt + text`` (sha256; for reproducible splits)."""
    return int.from_bytes(hashlib.sha256((salt + text).encode()).digest()[:8], "little") / 2**64


def scaffold_of(smiles: str) -> str:
    """Bemis-Murcko scaffold; acyclic molecules are their own cluster (their SMILES)."""
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    mol = Chem.MolFromSmiles(smiles)
    scaffold = MurckoScaffold.MurckoScaffoldSmiles(mol=mol) if mol is not None else ""
    return scaffold or f"acyclic:{smiles}"
