"""The vectorized featurizers against a plain per-atom reading of RDKit's atom API."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from espaloma_like.nn.features import (
    DEFAULT_ATOM_FEATURES,
    DEFAULT_BOND_FEATURES,
    atom_feature_size,
    atom_features,
    bond_feature_size,
    bond_features,
)

# fused and bridged rings, a 12-ring, 3- and 4-rings, charges of +-1 and +-2, P, S(VI), halogens,
# a triple bond, radical-free hypervalent and conjugated systems
MOLECULES = [
    "CC(=O)Nc1ccc(O)cc1", "c1ccc2c(c1)ccc1ccccc12", "C1CC2CCC1C2", "C1CCCCCCCCCCC1",
    "C1CC1C1CCC1", "CC(=O)[O-]", "C[NH3+]", "[O-]P(=O)([O-])OC", "CS(=O)(=O)N", "FC(Cl)(Br)I",
    "C#CC=CC=O", "[O-]C=O", "c1ccsc1", "O=[N+]([O-])c1ccccc1",
    "OC1C2CC3CC1CC(C2)C3", "[O-][S+2]([O-])(C)C",
]


def _one_hot(value: object, choices: tuple[object, ...]) -> list[float]:
    out = [0.0] * (len(choices) + 1)
    out[choices.index(value) if value in choices else len(choices)] = 1.0
    return out


def _reference_atom_row(atom: Chem.Atom) -> list[float]:
    """The feature definitions, read atom by atom (the pre-vectorization implementation)."""
    info = atom.GetOwningMol().GetRingInfo()
    neighbours = [n.GetAtomicNum() for n in atom.GetNeighbors()]
    sizes = [n for n in range(3, 9) if info.IsAtomInRingOfSize(atom.GetIdx(), n)]
    smallest = sizes[0] if sizes else (9 if atom.IsInRing() else 0)
    return [
        *_one_hot(atom.GetAtomicNum(), (1, 6, 7, 8, 9, 15, 16, 17, 35, 53)),
        *_one_hot(atom.GetDegree(), (1, 2, 3, 4, 5, 6)),
        *_one_hot(neighbours.count(1), (0, 1, 2, 3)),
        *_one_hot(atom.GetFormalCharge(), (-2, -1, 0, 1, 2)),
        *_one_hot(str(atom.GetHybridization()), ("SP", "SP2", "SP3", "SP3D", "SP3D2")),
        float(atom.GetIsAromatic()),
        float(atom.IsInRing()), *_one_hot(smallest, (0, 3, 4, 5, 6, 7, 8)),
        *_one_hot(min(info.NumAtomRings(atom.GetIdx()), 3), (0, 1, 2, 3)),
        *_one_hot(sum(z > 1 for z in neighbours), (0, 1, 2, 3, 4)),
        float(any(b.GetIsConjugated() for b in atom.GetBonds())),
        *_one_hot(min(sum(z in (7, 8, 9, 17) for z in neighbours), 3), (0, 1, 2, 3)),
    ]


@pytest.mark.parametrize("smiles", MOLECULES)
def test_atom_and_bond_features_match_the_per_atom_definitions(smiles: str) -> None:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    features = atom_features(mol, DEFAULT_ATOM_FEATURES)
    expected = np.array([_reference_atom_row(a) for a in mol.GetAtoms()], dtype=np.float32)
    assert features.shape == (mol.GetNumAtoms(), atom_feature_size(DEFAULT_ATOM_FEATURES))
    np.testing.assert_array_equal(features, expected)

    pairs = np.array([(b.GetEndAtomIdx(), b.GetBeginAtomIdx()) for b in mol.GetBonds()])
    expected_bonds = np.array([
        [*_one_hot(str(b.GetBondType()), ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")),
         float(b.GetIsConjugated()), float(b.IsInRing())] for b in mol.GetBonds()],
        dtype=np.float32)
    np.testing.assert_array_equal(bond_features(mol, pairs, DEFAULT_BOND_FEATURES), expected_bonds)
    assert expected_bonds.shape[1] == bond_feature_size(DEFAULT_BOND_FEATURES)


def test_a_subset_of_featurizers_keeps_the_config_order_and_unknown_names_are_refused() -> None:
    mol = Chem.AddHs(Chem.MolFromSmiles("CO"))
    both = atom_features(mol, ("aromatic", "element"))
    assert both.shape == (6, 12) and (both[:, 0] == 0).all() and (both[:, 1:].sum(1) == 1).all()
    assert atom_features(mol, ()).shape == (6, 0)
    with pytest.raises(ValueError, match="unknown atom featurizer"):
        atom_features(mol, ("element", "colour"))
