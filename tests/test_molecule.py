"""Molecule input: every accepted form, atom order kept, and a specific error for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from espaloma_like.exceptions import (
    DisconnectedMoleculeError,
    MoleculeFileError,
    MoleculeInputError,
    RadicalError,
    UndefinedStereoError,
    UnparsableSmilesError,
    UnsupportedElementError,
)
from espaloma_like.molecule import (
    as_molecule_graph,
    from_openff,
    from_rdkit,
    from_smiles,
    generate_conformers,
    read_molecule,
    read_molecules,
)

MAPPED_ETHANOL = "[H:4][C:2]([H:5])([H:6])[C:3]([H:7])([H:8])[O:1][H:9]"


def test_smiles_adds_hydrogens_after_heavy_atoms() -> None:
    g = from_smiles("CCO")
    assert g.atomic_numbers.tolist() == [6, 6, 8, 1, 1, 1, 1, 1, 1]
    assert g.total_charge == 0
    assert g.bonds.shape == (8, 2) and (g.bonds[:, 0] < g.bonds[:, 1]).all()


def test_mapped_smiles_sets_atom_order() -> None:
    g = from_smiles(MAPPED_ETHANOL)
    assert g.atomic_numbers.tolist() == [8, 6, 6, 1, 1, 1, 1, 1, 1]
    bonds = {tuple(b) for b in g.bonds.tolist()}
    assert (0, 2) in bonds and (1, 2) in bonds and (0, 8) in bonds
    # and the mapped SMILES written back round-trips to the same order
    again = from_smiles(g.mapped_smiles)
    assert again.atomic_numbers.tolist() == g.atomic_numbers.tolist()
    assert np.array_equal(again.bonds, g.bonds)


def test_partially_mapped_smiles_is_refused() -> None:
    with pytest.raises(UnparsableSmilesError, match="map every atom"):
        from_smiles("[CH3:1][OH:2]")


def test_charged_molecules_are_first_class() -> None:
    assert from_smiles("CC(=O)[O-]").total_charge == -1
    assert from_smiles("C[NH3+]").total_charge == 1
    zwitterion = from_smiles("[NH3+]CC(=O)[O-]")
    assert zwitterion.total_charge == 0 and np.abs(zwitterion.formal_charges).sum() == 2


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ("C1CC(", UnparsableSmilesError),
        ("not a molecule", UnparsableSmilesError),
        ("", UnparsableSmilesError),
        ("[CH3]", RadicalError),
        ("C[O]", RadicalError),
        ("C[Si](C)(C)C", UnsupportedElementError),
        ("[Na+].[Cl-]", UnsupportedElementError),
        ("CCO.O", DisconnectedMoleculeError),
        ("CC(=O)[O-].[NH4+]", DisconnectedMoleculeError),
    ],
)
def test_bad_input_gets_its_specific_error(bad: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        from_smiles(bad)
    assert issubclass(error, MoleculeInputError)


def test_undefined_stereo_only_fails_where_it_matters() -> None:
    g = from_smiles("CC(F)Cl")  # parametrization does not need the configuration
    assert g.n_atoms == 8
    with pytest.raises(UndefinedStereoError):
        generate_conformers(g, 1)  # a conformer would silently pick one enantiomer
    assert generate_conformers(from_smiles("C[C@H](F)Cl"), 1).shape == (1, 8, 3)


def test_rdkit_and_openff_inputs_keep_order() -> None:
    from openff.toolkit import Molecule
    from rdkit import Chem

    reference = from_smiles(MAPPED_ETHANOL)
    rd = Chem.Mol(reference.rdkit_mol)
    assert from_rdkit(rd).atomic_numbers.tolist() == reference.atomic_numbers.tolist()
    off = Molecule.from_mapped_smiles(MAPPED_ETHANOL)
    g = from_openff(off)
    assert g.atomic_numbers.tolist() == reference.atomic_numbers.tolist()
    assert np.array_equal(g.bonds, reference.bonds)
    assert as_molecule_graph(off).n_atoms == 9


def test_sdf_and_mol2_files(tmp_path: Path) -> None:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    writer = Chem.SDWriter(str(tmp_path / "two.sdf"))
    for smiles in ("CCO", "c1ccccc1O"):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=1)
        mol.SetProp("_Name", smiles)
        writer.write(mol)
    writer.close()
    molecules = list(read_molecules(tmp_path / "two.sdf"))
    assert [m.name for m in molecules] == ["CCO", "c1ccccc1O"]
    assert molecules[0].positions is not None and molecules[0].positions.shape == (9, 3)
    # positions are nm: a C-C bond is about 0.15 nm
    i, j = molecules[0].bonds[0]
    assert 0.13 < np.linalg.norm(molecules[0].positions[i] - molecules[0].positions[j]) < 0.16
    with pytest.raises(MoleculeFileError, match="2 molecules"):
        read_molecule(tmp_path / "two.sdf")

    mol2 = Path(__file__).parent / "data" / "ethanol.mol2"
    g = as_molecule_graph(str(mol2))
    assert g.atomic_numbers.tolist()[:3] == [6, 6, 8] and g.n_atoms == 9


def test_missing_and_unknown_files() -> None:
    with pytest.raises(MoleculeFileError, match="no such"):
        as_molecule_graph("does_not_exist.sdf")
    with pytest.raises(MoleculeFileError):
        list(read_molecules(Path(__file__)))  # a .py file is not a molecule file


def test_unknown_python_object_is_refused() -> None:
    with pytest.raises(MoleculeInputError):
        as_molecule_graph(42)


def test_symmetry_classes() -> None:
    g = from_smiles("CC(=O)[O-]")
    classes = g.symmetry_classes
    assert classes[2] == classes[3]  # the two carboxylate oxygens
    assert classes[4] == classes[5] == classes[6]  # methyl hydrogens


@pytest.mark.parametrize(
    ("smiles", "groups"),
    [
        ("NC(=[NH2+])N", [(0, 2, 3)]),  # guanidinium: three N
        ("C[N+](=O)[O-]", [(2, 3)]),  # nitro oxygens
        ("c1ccccc1", [(0, 1, 2, 3, 4, 5)]),
        ("Cc1ccccc1", [(2, 6), (3, 5)]),  # ortho and meta carbons of toluene
    ],
)
def test_resonance_aware_equivalence(smiles: str, groups: list[tuple[int, ...]]) -> None:
    classes = from_smiles(smiles).symmetry_classes
    for group in groups:
        assert len({int(classes[i]) for i in group}) == 1


def test_inequivalent_atoms_stay_apart() -> None:
    classes = from_smiles("CC(=O)O").symmetry_classes  # acid: C=O and O-H differ
    assert classes[2] != classes[3]
    classes = from_smiles("OCCN").symmetry_classes
    assert len(set(classes[:4].tolist())) == 4


def test_resonance_equivalent_substituents_make_no_stereocentre() -> None:
    from espaloma_like.molecule import undefined_stereo

    assert undefined_stereo(from_smiles("COP(=O)([O-])c1ccccc1")) == []  # phosphonate
    assert undefined_stereo(from_smiles("CS(=O)c1ccccc1")) != []  # a sulfoxide is chiral
    assert undefined_stereo(from_smiles("CC=CC")) != []  # E/Z unspecified
