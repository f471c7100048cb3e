"""Molecule sources and filters: every bad case dropped with its reason, real shipped sets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from rdkit import Chem
from rdkit.Chem import rdCIPLabeler, rdDepictor, rdDistGeom

from espaloma_like.data.sources import (
    OPENFF_SETS,
    Dropped,
    MoleculeSource,
    _cap_dummies,
    brics_fragments,
    capped_dipeptides,
    charged_variants,
    filter_molecules,
    openff_molecule_set,
    rdkit_nci_set,
    read_sdf,
    read_smiles_file,
    smiles_sources,
)
from espaloma_like.molecule import SUPPORTED_ELEMENTS, from_smiles, undefined_stereo


def _reasons(dropped: list[Dropped]) -> dict[str, str]:
    return {d.name: d.reason for d in dropped}


def test_filter_drops_each_bad_case_with_its_reason() -> None:
    records = [
        MoleculeSource("CCO", "user", "ethanol"),
        MoleculeSource("OCC", "user", "ethanol-again"),
        MoleculeSource("[Na+].[Cl-]", "user", "salt"),
        MoleculeSource("OB(O)c1ccccc1", "user", "boronic"),
        MoleculeSource("C[Si](C)(C)C", "user", "silane"),
        MoleculeSource("C[CH2]", "user", "ethyl-radical"),
        MoleculeSource("C" * 31, "user", "long"),
        MoleculeSource("O=P([O-])([O-])OP(=O)([O-])O", "user", "trianion"),
        MoleculeSource("C[N+](C)(C)CCC[N+](C)(C)CC[N+](C)(C)C", "user", "trication"),
        MoleculeSource("C1CC", "user", "garbage"),
        MoleculeSource("", "user", "unreadable", ("unreadable: broken record",)),
        MoleculeSource("C", "user", "methane"),
    ]
    kept, dropped = filter_molecules(records, min_heavy=2, max_heavy=30, charges=(-2, 2))
    assert [k.name for k in kept] == ["ethanol"]
    assert kept[0].smiles == "CCO"
    reasons = _reasons(dropped)
    assert len(dropped) == len(records) - 1
    assert reasons["ethanol-again"].startswith("duplicate: of 'ethanol'")
    assert reasons["salt"] == "unsupported element: Na"
    assert reasons["boronic"] == "unsupported element: B"
    assert reasons["silane"] == "unsupported element: Si"
    assert reasons["ethyl-radical"].startswith("radical")
    assert reasons["long"] == "too many heavy atoms: 31 > 30"
    assert reasons["trianion"].startswith("charge out of range: -3")
    assert reasons["trication"].startswith("charge out of range: +3")
    assert reasons["garbage"].startswith("unparsable SMILES")
    assert reasons["unreadable"] == "unreadable: broken record"
    assert reasons["methane"] == "too few heavy atoms: 1 < 2"


def test_salts_are_stripped_or_dropped_as_disconnected() -> None:
    records = [MoleculeSource("CC(=O)[O-].[Na+]", "user", "sodium acetate"),
               MoleculeSource("C[NH3+].[Cl-]", "user", "methylammonium chloride")]
    kept, dropped = filter_molecules(records)
    assert [k.smiles for k in kept] == ["CC(=O)[O-]", "C[NH3+]"]
    assert "stripped [Na+]" in kept[0].notes[-1]
    assert not dropped
    kept, dropped = filter_molecules(records, strip_salts=False)
    assert not kept
    assert _reasons(dropped) == {"sodium acetate": "unsupported element: Na",
                                 "methylammonium chloride": "disconnected: 2 fragments"}


def test_undefined_stereo_policies() -> None:
    records = [MoleculeSource("CC(O)CC", "user", "butanol")]
    kept, _ = filter_molecules(records, stereo="first")
    assert len(kept) == 1 and "@" in kept[0].smiles
    assert kept[0].notes[-1].startswith("undefined stereo: picked")
    assert not undefined_stereo(from_smiles(kept[0].smiles))
    kept, _ = filter_molecules(records, stereo="enumerate")
    assert sorted(k.smiles for k in kept) == ["CC[C@@H](C)O", "CC[C@H](C)O"]
    assert {k.name for k in kept} == {"butanol#stereo0", "butanol#stereo1"}
    kept, dropped = filter_molecules(records, stereo="drop")
    assert not kept and dropped[0].reason.startswith("undefined stereo")
    # a defined isomer and its enumerated twin are duplicates
    kept, dropped = filter_molecules(
        [*records, MoleculeSource("C[C@H](O)CC", "user", "r")], stereo="enumerate")
    assert len(kept) == 2 and dropped[0].reason.startswith("duplicate")


def test_first_embeddable_stereo_avoids_impossible_bridged_isomers() -> None:
    """RDKit's first isomer of this bridged bicycle cannot be embedded; the policy skips it."""
    from rdkit.Chem import AllChem

    records = [MoleculeSource("CC1(C)C2CCC(CCO)C1C2", "nci", "NCI-bicycle")]
    (first,), _ = filter_molecules(records, stereo="first")
    (embeddable,), _ = filter_molecules(records, stereo="first-embeddable")
    assert AllChem.EmbedMolecule(Chem.AddHs(Chem.MolFromSmiles(first.smiles)), randomSeed=7) == -1
    assert embeddable.smiles != first.smiles
    assert AllChem.EmbedMolecule(Chem.AddHs(Chem.MolFromSmiles(embeddable.smiles)),
                                 randomSeed=7) == 0
    assert "first that embeds" in embeddable.notes[-1]
    assert not undefined_stereo(from_smiles(embeddable.smiles))
    # where the first isomer embeds, both policies agree
    butanol = [MoleculeSource("CC(O)CC", "user", "butanol")]
    assert (filter_molecules(butanol, stereo="first")[0][0].smiles
            == filter_molecules(butanol, stereo="first-embeddable")[0][0].smiles)


def test_openff_sets_load_and_survive_filtering() -> None:
    counts = {}
    for name in OPENFF_SETS:
        records = openff_molecule_set(name)  # type: ignore[arg-type]
        assert records, name
        assert all(r.source == name for r in records)
        counts[name] = len(records)
    assert counts["minidrugbank"] == 371
    assert counts["freesolv"] > 600
    assert counts["alkethoh"] > 1000
    drugbank = openff_molecule_set("minidrugbank")
    kept, dropped = filter_molecules(drugbank, max_heavy=20)
    assert len(kept) > 100
    assert len(kept) + len(dropped) == len(drugbank)
    assert all(d.reason for d in dropped)
    # nitro groups stored without charges are repaired rather than lost
    assert any("charges repaired" in note for r in kept for note in r.notes)
    assert all(from_smiles(r.smiles).n_atoms > 0 for r in kept[:20])


def test_cap_dummies_rule() -> None:
    def cap(smiles: str) -> str:
        return str(Chem.MolToSmiles(_cap_dummies(Chem.MolFromSmiles(smiles))))

    assert cap("[16*]c1ccccc1") == "c1ccccc1"  # carbon: hydrogen
    assert cap("[3*]OCC") == "CCOC"  # oxygen: methyl, the ether stays an ether
    assert cap("[5*]N1CCOCC1") == "CN1CCOCC1"  # nitrogen: methyl
    assert cap("[7*]=CC") == "C=CC"  # double bond: =CH2


def test_brics_fragments_are_valid_capped_molecules() -> None:
    parents = smiles_sources(
        ["CC(C)Cc1ccc(C(C)C(=O)O)cc1",
         "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1",
         "COc1ccc2[nH]cc(CCNC(C)=O)c2c1"],
        source="drug", names=["ibuprofen", "imatinib", "melatonin"],
    )
    fragments = brics_fragments(parents, min_heavy_atoms=4, max_heavy_atoms=20)
    assert len(fragments) >= 5
    assert len({f.smiles for f in fragments}) == len(fragments)
    for f in fragments:
        assert f.source == "brics-fragment"
        assert "*" not in f.smiles
        mol = Chem.MolFromSmiles(f.smiles)
        assert mol is not None
        assert all(a.GetAtomicNum() in SUPPORTED_ELEMENTS for a in mol.GetAtoms())
        assert sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms()) == 0
        assert 4 <= mol.GetNumHeavyAtoms() <= 20
    kept, dropped = filter_molecules(fragments, min_heavy=4, max_heavy=20)
    assert len(kept) == len(fragments), dropped
    smiles = {f.smiles for f in fragments}
    # N-methylpiperazine: the cut next to N is capped by methyl, not left as N-H;
    # aromatic cuts are capped by hydrogen
    assert {"CN1CCN(C)CC1", "c1ccncc1", "c1ccc2[nH]ccc2c1"} <= smiles


def test_dipeptides_have_right_charges_and_l_stereo() -> None:
    peptides = capped_dipeptides()
    names = [p.name for p in peptides]
    assert len(peptides) == 22 and len(set(names)) == 22
    charges = {p.name[4:7]: Chem.GetFormalCharge(Chem.MolFromSmiles(p.smiles)) for p in peptides}
    assert charges["ASP"] == -1 and charges["GLU"] == -1
    assert charges["LYS"] == 1 and charges["ARG"] == 1 and charges["HIP"] == 1
    assert charges["HID"] == 0 and charges["HIE"] == 0
    assert sum(abs(q) for q in charges.values()) == 5
    kept, dropped = filter_molecules(peptides, max_heavy=20)
    assert len(kept) == 22 and not dropped
    for p in peptides:
        mol = Chem.MolFromSmiles(p.smiles)
        rdCIPLabeler.AssignCIPLabels(mol)
        # the alpha carbon: bonded to the ACE amide N and the NME carbonyl
        alpha = mol.GetSubstructMatch(Chem.MolFromSmarts("C(=O)N[CX4]C(=O)NC"))[3]
        label = mol.GetAtomWithIdx(alpha).GetPropsAsDict().get("_CIPCode")
        expected = {"GLY": None, "CYS": "R"}.get(p.name[4:7], "S")
        assert label == expected, p.name
    thr = next(p for p in peptides if p.name == "ACE-THR-NME")
    ile = next(p for p in peptides if p.name == "ACE-ILE-NME")
    for record, codes in ((thr, ["R", "S"]), (ile, ["S", "S"])):
        mol = Chem.MolFromSmiles(record.smiles)
        rdCIPLabeler.AssignCIPLabels(mol)
        found = sorted(a.GetProp("_CIPCode") for a in mol.GetAtoms() if a.HasProp("_CIPCode"))
        assert found == codes, record.name


def test_charged_variants_smarts_rules() -> None:
    records = smiles_sources(["CC(=O)O", "CCN", "CN(C)C", "CC(=O)NC", "Nc1ccccc1",
                              "NC(=N)N", "OC(=O)CCN", "CS(=O)(=O)O", "COP(=O)(O)O",
                              "CC(=NO)N", "c1cnc[nH]1"])
    variants = charged_variants(records)
    by_parent = Counter(v.name.split("|")[0] for v in variants)
    smiles = {v.smiles for v in variants}
    assert "CC(=O)[O-]" in smiles and "CC[NH3+]" in smiles and "C[NH+](C)C" in smiles
    assert by_parent["CC(=O)NC"] == 0  # amide: no site
    assert by_parent["Nc1ccccc1"] == 0  # aniline: no site
    assert by_parent["CC(=NO)N"] == 0  # amidoxime: the imine N carries an O
    assert by_parent["c1cnc[nH]1"] == 0  # imidazole (pKa ~7) is left neutral
    # guanidine: the imine N only (the amino N are not aliphatic amines)
    assert [v.smiles for v in variants if v.name.startswith("NC(=N)N|")] == ["NC(N)=[NH2+]"]
    assert "CS(=O)(=O)[O-]" in smiles and "COP(=O)([O-])O" in smiles  # one site per rule
    assert by_parent["OC(=O)CCN"] == 2  # an anion and a cation
    assert {"[NH3+]CCC(=O)O", "NCCC(=O)[O-]"} <= smiles
    kept, dropped = filter_molecules(records + variants)
    assert not dropped
    assert Counter(Chem.GetFormalCharge(Chem.MolFromSmiles(k.smiles)) for k in kept) == {
        0: 11, -1: 4, 1: 4}


def test_rdkit_nci_set_is_read_and_filtered() -> None:
    records = rdkit_nci_set()
    assert len(records) == 4999 and all(r.source == "nci" for r in records)
    assert records[0].name == "NCI-1" and records[0].smiles == "CC1=CC(=O)C=CC1=O"
    kept, dropped = filter_molecules(records[:300], max_heavy=20)
    reasons = Counter(d.reason.split(":")[0] for d in dropped)
    assert len(kept) > 150 and reasons["too many heavy atoms"] > 0
    assert all(Chem.MolFromSmiles(k.smiles).GetNumHeavyAtoms() <= 20 for k in kept)


def test_user_smiles_file_and_sdf(tmp_path: Path) -> None:
    text = "# a comment\nCCO ethanol\n\nc1ccccc1\nCC(=O)[O-].[Na+] sodium acetate\n"
    path = tmp_path / "mols.smi"
    path.write_text(text)
    records = read_smiles_file(path)
    assert [r.name for r in records] == ["ethanol", "mols:4", "sodium acetate"]
    assert all(r.source == "user" for r in records)
    kept, _ = filter_molecules(records)
    assert [k.smiles for k in kept] == ["CCO", "c1ccccc1", "CC(=O)[O-]"]

    sdf = tmp_path / "mols.sdf"
    writer = Chem.SDWriter(str(sdf))
    for smiles, name in (("C[C@H](O)CC", "R-butanol"), ("CC[N+](=O)[O-]", "nitroethane"),
                         ("C[C@@H](O)CC", "S-butanol-2D")):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        if name.endswith("2D"):  # stereo from wedges
            rdDepictor.Compute2DCoords(mol)
        else:
            rdDistGeom.EmbedMolecule(mol, randomSeed=1)
        mol.SetProp("_Name", name)
        if name == "nitroethane":  # written the MiniDrugBank way: no formal charges
            for atom in mol.GetAtoms():
                atom.SetFormalCharge(0)
        writer.write(mol)
    writer.close()
    records = read_sdf(sdf, source="mine")
    assert [r.name for r in records] == ["R-butanol", "nitroethane", "S-butanol-2D"]
    assert records[0].smiles == str(Chem.MolToSmiles(Chem.MolFromSmiles("C[C@H](O)CC")))
    assert records[2].smiles == str(Chem.MolToSmiles(Chem.MolFromSmiles("C[C@@H](O)CC")))
    assert records[1].smiles == "CC[N+](=O)[O-]"
    assert records[1].notes and "charges repaired" in records[1].notes[0]


def test_missing_files_raise() -> None:
    from espaloma_like.exceptions import MoleculeFileError

    with pytest.raises(MoleculeFileError):
        read_smiles_file("/nonexistent/file.smi")
    with pytest.raises(MoleculeFileError):
        read_sdf("/nonexistent/file.sdf")
    with pytest.raises(MoleculeFileError):
        openff_molecule_set("nope")  # type: ignore[arg-type]


def test_sulfuranes_and_phosphoranes_are_dropped_with_a_reason() -> None:
    from espaloma_like.data.sources import filter_molecules, smiles_sources

    kept, dropped = filter_molecules(smiles_sources(["CCS(N)(O)O", "CCS(N)(=O)=O", "CP(O)(O)(O)O"]))
    assert [k.smiles for k in kept] == ["CCS(N)(=O)=O"]
    assert all(d.reason.startswith("unusual valence") for d in dropped) and len(dropped) == 2


def test_sdf_with_explicit_hydrogens_never_gains_atoms(tmp_path: Path) -> None:
    """Benzene written with single bonds, acetate without its charge: refused, not repaired."""
    sdf = tmp_path / "broken.sdf"
    writer = Chem.SDWriter(str(sdf))
    benzene = Chem.AddHs(Chem.MolFromSmiles("c1ccccc1"))
    Chem.Kekulize(benzene, clearAromaticFlags=True)
    for bond in benzene.GetBonds():
        bond.SetBondType(Chem.BondType.SINGLE)
    benzene.SetProp("_Name", "benzene-single")
    acetate = Chem.AddHs(Chem.MolFromSmiles("CC(=O)[O-]"))
    for atom in acetate.GetAtoms():
        atom.SetFormalCharge(0)
    acetate.SetProp("_Name", "acetate-no-charge")
    for mol in (benzene, acetate):
        rdDistGeom.EmbedMolecule(mol, randomSeed=1)
        writer.write(mol)
    writer.close()
    records = read_sdf(sdf)
    assert [r.smiles for r in records] == ["", ""]
    assert all("bond orders or formal charges" in r.notes[0] for r in records)
    kept, dropped = filter_molecules(records)
    assert kept == [] and len(dropped) == 2
