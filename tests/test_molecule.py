"""Molecule input: every accepted form, atom order kept, and a specific error for bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    ValenceMismatchError,
)
from espaloma_like.molecule import (
    MoleculeGraph,
    as_molecule_graph,
    from_openff,
    from_rdkit,
    from_smiles,
    generate_conformers,
    iter_molecule_file,
    iter_molecules,
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


# --------------------------------------------------------------------------------------------
# Files are validated: explicit hydrogens are never added to, multi-record files read in full
# --------------------------------------------------------------------------------------------


def _embedded(smiles: str, seed: int = 1) -> Any:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    return mol


def _single_bond_benzene() -> Any:
    from rdkit import Chem

    mol = _embedded("c1ccccc1")
    Chem.Kekulize(mol, clearAromaticFlags=True)
    for bond in mol.GetBonds():
        bond.SetBondType(Chem.BondType.SINGLE)
    return mol


def _mol2(mol: Any, name: str, types: list[str]) -> str:
    """A Tripos mol2 block of ``mol`` (RDKit writes none) with the given atom types."""
    conformer = mol.GetConformer()
    lines = ["@<TRIPOS>MOLECULE", name, f"{mol.GetNumAtoms()} {mol.GetNumBonds()} 1 0 0", "SMALL",
             "NO_CHARGES", "", "@<TRIPOS>ATOM"]
    for atom, atom_type in zip(mol.GetAtoms(), types, strict=True):
        p = conformer.GetAtomPosition(atom.GetIdx())
        lines.append(f"{atom.GetIdx() + 1} {atom.GetSymbol()}{atom.GetIdx() + 1} {p.x:.4f} {p.y:.4f} "
                     f"{p.z:.4f} {atom_type} 1 MOL 0.0")
    lines.append("@<TRIPOS>BOND")
    for bond in mol.GetBonds():
        kind = {1.0: "1", 2.0: "2", 3.0: "3", 1.5: "ar"}[bond.GetBondTypeAsDouble()]
        lines.append(f"{bond.GetIdx() + 1} {bond.GetBeginAtomIdx() + 1} {bond.GetEndAtomIdx() + 1} {kind}")
    return "\n".join(lines) + "\n"


def test_sdf_with_wrong_bond_orders_is_refused_not_given_hydrogens(tmp_path: Path) -> None:
    from rdkit import Chem

    path = tmp_path / "benzene_single_bonds.sdf"
    path.write_text(Chem.MolToMolBlock(_single_bond_benzene(), kekulize=False) + "$$$$\n")
    with pytest.raises(ValenceMismatchError, match=r"C0, C1, C2, C3, C4, C5") as info:
        read_molecule(path)  # was: cyclohexane, 18 atoms
    assert "bond orders or formal charges" in str(info.value)
    with pytest.raises(ValenceMismatchError):
        as_molecule_graph(str(path))
    _name, item = next(iter_molecule_file(path))
    assert isinstance(item, ValenceMismatchError)


def test_sdf_without_its_charge_line_is_refused(tmp_path: Path) -> None:
    from rdkit import Chem

    block = Chem.MolToMolBlock(_embedded("CC(=O)[O-]"))
    assert "M  CHG" in block
    path = tmp_path / "acetate_no_charge.sdf"
    path.write_text("\n".join(li for li in block.splitlines() if not li.startswith("M  CHG")) + "\n$$$$\n")
    with pytest.raises(ValenceMismatchError, match=r"O3"):
        read_molecule(path)  # was: neutral acetic acid, 8 atoms
    # the correct file is read as the anion, with its 7 atoms
    good = tmp_path / "acetate.sdf"
    good.write_text(block + "\n$$$$\n")
    g = read_molecule(good)
    assert g.n_atoms == 7 and g.total_charge == -1


def test_heavy_atom_only_sdf_still_gets_its_hydrogens(tmp_path: Path) -> None:
    from rdkit import Chem

    path = tmp_path / "phenol_no_h.sdf"
    path.write_text(Chem.MolToMolBlock(Chem.MolFromSmiles("c1ccccc1O")) + "$$$$\n")
    g = read_molecule(path)
    assert g.n_atoms == 13 and g.atomic_numbers[:7].tolist() == [6, 6, 6, 6, 6, 6, 8]


def test_rdkit_mol_with_explicit_hydrogens_flag() -> None:
    mol = _single_bond_benzene()
    assert from_rdkit(mol).n_atoms == 18  # RDKit semantics: implicit hydrogens are added
    with pytest.raises(ValenceMismatchError):
        from_rdkit(mol, hydrogens_are_explicit=True)


def test_mol2_with_wrong_bond_orders_never_gains_atoms(tmp_path: Path) -> None:
    path = tmp_path / "benzene.mol2"
    path.write_text(_mol2(_single_bond_benzene(), "benzene", ["C.3"] * 6 + ["H"] * 6))
    with pytest.raises(MoleculeInputError):
        read_molecule(path)


def test_mol2_with_two_molecules_reads_both(tmp_path: Path) -> None:
    path = tmp_path / "two.mol2"
    path.write_text(_mol2(_embedded("CCO"), "ethanol", ["C.3", "C.3", "O.3"] + ["H"] * 6)
                    + _mol2(_embedded("CC(=O)[O-]"), "acetate", ["C.3", "C.2", "O.co2", "O.co2"]
                            + ["H"] * 3))
    molecules = list(read_molecules(path))  # was: ethanol only
    assert [m.name for m in molecules] == ["ethanol", "acetate"]
    assert [m.n_atoms for m in molecules] == [9, 7]
    assert molecules[1].total_charge == -1
    with pytest.raises(MoleculeFileError, match="2 molecules where one is expected"):
        as_molecule_graph(path)


def test_smiles_with_whitespace_inside_is_refused() -> None:
    for text in ("CCO\nCCC", "CCO CCC", "CCO\tethanol"):
        with pytest.raises(UnparsableSmilesError, match="whitespace"):
            from_smiles(text)  # was: ethanol, the rest read as a name
        with pytest.raises(MoleculeInputError):
            as_molecule_graph(text)
    assert from_smiles("  CCO\n").n_atoms == 9  # surrounding whitespace is fine
    g = from_smiles("C[C@H](O)F |o1:1|")  # a CXSMILES extension after one space is allowed
    assert g.n_atoms == 9


def test_smi_file_splits_the_name_off(tmp_path: Path) -> None:
    path = tmp_path / "list.smi"
    path.write_text("# comment\nCCO ethanol\n\nCC(=O)[O-],acetate\nC1CC( broken\n")
    items = list(iter_molecule_file(path))
    assert [name for name, _ in items] == ["ethanol", "acetate", "broken"]
    assert isinstance(items[0][1], MoleculeGraph) and items[0][1].n_atoms == 9
    assert isinstance(items[2][1], UnparsableSmilesError) and "line 5" in str(items[2][1])


def test_isotopes_keep_their_mass() -> None:
    heavy_water = from_smiles("[2H]O[2H]")
    assert heavy_water.masses.tolist() == pytest.approx([2.014101778, 15.99943, 2.014101778])
    assert from_smiles("[13CH4]").masses[0] == pytest.approx(13.00335484)
    assert from_smiles("CO").masses.tolist()[:2] == pytest.approx([12.01078, 15.99943])


@pytest.mark.parametrize(
    ("content", "suffix", "match"),
    [
        (b"", ".sdf", "empty"),
        (b"\n\n", ".mol2", "empty"),
        (bytes(range(256)) * 4, ".smi", "binary"),
        (b"\x89PNG\r\n\x1a\n" + bytes(200), ".sdf", "binary"),
        (b"ATOM      1  C   LIG A   1       0.000   0.000   0.000\n", ".pdb", "unsupported"),
        (b"# only a comment\n", ".smi", "no molecules"),
        (b"text without a TRIPOS record\n", ".mol2", "no molecules"),  # found by the fuzz test
        (b"\x01", ".mol2", "binary"),
    ],
)
def test_unreadable_files_get_a_clear_error(tmp_path: Path, content: bytes, suffix: str,
                                            match: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(MoleculeFileError, match=match):
        as_molecule_graph(str(path))
    with pytest.raises(MoleculeFileError, match=match):
        list(read_molecules(path))


def test_a_path_of_another_format_is_not_read_as_smiles() -> None:
    with pytest.raises(MoleculeFileError, match=r"unsupported molecule file type '\.pdb'"):
        as_molecule_graph("protein.pdb")  # was: "could not parse SMILES 'protein.pdb'"
    with pytest.raises(MoleculeFileError, match="neither a SMILES"):
        as_molecule_graph("ligands/x.foo")


def test_an_unreadable_sdf_record_says_why(tmp_path: Path) -> None:
    from rdkit import Chem

    mol = _embedded("C[N+](C)(C)C")
    block = Chem.MolToMolBlock(mol)
    path = tmp_path / "pentavalent.sdf"
    path.write_text("\n".join(li for li in block.splitlines() if not li.startswith("M  CHG"))
                    + "\n$$$$\n")
    with pytest.raises(MoleculeFileError, match="valence"):
        read_molecule(path)


def test_a_single_input_is_one_molecule() -> None:
    items = list(iter_molecules("CCO"))  # was iterated: C, C, O
    assert len(items) == 1 and isinstance(items[0][1], MoleculeGraph) and items[0][1].n_atoms == 9
    assert len(list(iter_molecules(["CCO", "CCC"]))) == 2
    assert len(list(iter_molecules(from_smiles("CCO")))) == 1


def test_stereo_that_is_not_real_is_not_asked_for() -> None:
    from espaloma_like.molecule import undefined_stereo

    metformin = from_smiles("CN(C)C(=N)N=C(N)N")
    assert undefined_stereo(metformin) == []  # C=NH: E/Z exchange through tautomers
    nicotine_h = from_smiles("C[NH+]1CCC[C@H]1c1cccnc1")
    assert undefined_stereo(nicotine_h) == []  # [NH+] exchanges its proton and inverts
    assert generate_conformers(metformin, 1).shape == (1, metformin.n_atoms, 3)
    assert generate_conformers(nicotine_h, 1).shape == (1, nicotine_h.n_atoms, 3)
    # real stereo is still asked for
    assert undefined_stereo(from_smiles("CC=NC")) != []  # N-methyl imine
    assert undefined_stereo(from_smiles("C[N+](CC)(CCC)Cc1ccccc1")) != []  # quaternary N
    assert undefined_stereo(from_smiles("C[C@@H](N)C(=O)O")) == []
    assert undefined_stereo(from_smiles("CC(N)C(=O)O")) != []
