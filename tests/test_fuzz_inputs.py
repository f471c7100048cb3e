"""Malformed input thrown at the molecule readers: a MoleculeInputError or a correct graph, never
another exception and never a molecule with atoms the input did not imply.

Property-based (Hypothesis), derandomized so that every run tries the same inputs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from espaloma_like.exceptions import MoleculeInputError
from espaloma_like.molecule import MoleculeGraph, as_molecule_graph, from_smiles, read_molecules

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

SMILES_ALPHABET = "CNOSPFIBrcnos()[]=#@+-0123456789%/\\.H:* \n\t"
VALID_SMILES = [
    "CCO", "c1ccccc1O", "CC(=O)[O-]", "C[NH3+]", "CC(=O)Nc1ccc(O)cc1", "C[C@H](N)C(=O)O",
    "F/C=C/F", "[H:3][C:1]([H:4])([H:5])[O:2][H:6]", "O=S(=O)(N)c1ccccc1", "C#N", "ClCBr",
    "c1ccc2[nH]ccc2c1", "CP(=O)([O-])O", "[2H]OC", "C1CC1",
]


def _expected_atoms(smiles: str) -> int | None:
    """Atoms (hydrogens included) RDKit's own parse implies, or None if RDKit refuses it."""
    from rdkit import Chem, rdBase

    params: Any = Chem.SmilesParserParams()
    params.removeHs = False
    params.parseName = False
    with rdBase.BlockLogs():
        try:
            mol = Chem.MolFromSmiles(smiles.strip(), params)
        except Exception:
            return None
    if mol is None:
        return None
    return int(mol.GetNumAtoms() + sum(a.GetTotalNumHs() for a in mol.GetAtoms()))


def _check_smiles(text: str, graph_or_error: MoleculeGraph | MoleculeInputError) -> None:
    if isinstance(graph_or_error, MoleculeInputError):
        return
    graph = graph_or_error
    assert any(c not in " \t\n" for c in text)
    assert " " not in text.strip().split(" |")[0]  # whitespace inside is refused
    assert graph.n_atoms == _expected_atoms(text)
    assert graph.bonds.shape[1] == 2 and (graph.bonds < graph.n_atoms).all()
    assert graph.rdkit_mol.GetNumAtoms() == graph.n_atoms


def _read_smiles(text: str, reader: Any) -> MoleculeGraph | MoleculeInputError:
    try:
        return reader(text)
    except MoleculeInputError as err:
        return err


@FUZZ
@given(st.text(alphabet=SMILES_ALPHABET, max_size=40))
def test_random_smiles_like_strings(text: str) -> None:
    _check_smiles(text, _read_smiles(text, from_smiles))


@st.composite
def mutated_smiles(draw: st.DrawFn) -> str:
    text = list(draw(st.sampled_from(VALID_SMILES)))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "swap"]))
        char = draw(st.sampled_from(SMILES_ALPHABET))
        if kind == "insert" or not text:
            text.insert(where, char)
        elif kind == "delete":
            del text[min(where, len(text) - 1)]
        elif kind == "replace":
            text[min(where, len(text) - 1)] = char
        else:
            i = min(where, len(text) - 1)
            j = draw(st.integers(0, len(text) - 1))
            text[i], text[j] = text[j], text[i]
    return "".join(text)


@FUZZ
@given(mutated_smiles())
def test_mutated_valid_smiles(text: str) -> None:
    _check_smiles(text, _read_smiles(text, from_smiles))
    result = _read_smiles(text, as_molecule_graph)  # the dispatching reader, strings as paths too
    if isinstance(result, MoleculeGraph):
        _check_smiles(text, result)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _sdf_text() -> str:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    blocks = []
    for seed, smiles in enumerate(["CCO", "CC(=O)[O-]", "c1ccccc1N"]):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=seed + 1)
        mol.SetProp("_Name", smiles)
        blocks.append(Chem.MolToMolBlock(mol) + "$$$$\n")
    blocks.append(Chem.MolToMolBlock(Chem.MolFromSmiles("c1ccncc1")) + "$$$$\n")  # no H atoms
    return "".join(blocks)


def _mol2_text() -> str:
    return (Path(__file__).parent / "data" / "ethanol.mol2").read_text() * 2


SDF_TEXT = _sdf_text()
MOL2_TEXT = _mol2_text()


@st.composite
def mutated_file(draw: st.DrawFn) -> tuple[str, str]:
    suffix, text = draw(st.sampled_from([(".sdf", SDF_TEXT), (".mol2", MOL2_TEXT)]))
    lines = text.splitlines(keepends=True)
    kind = draw(st.sampled_from(["truncate", "drop_line", "mutate", "duplicate_line"]))
    if kind == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif kind == "drop_line":
        del lines[draw(st.integers(0, len(lines) - 1))]
        text = "".join(lines)
    elif kind == "duplicate_line":
        i = draw(st.integers(0, len(lines) - 1))
        lines.insert(i, lines[i])
        text = "".join(lines)
    else:
        chars = list(text)
        for _ in range(draw(st.integers(1, 6))):
            i = draw(st.integers(0, len(chars) - 1))
            chars[i] = draw(st.sampled_from("0123456789 .-+CNOHcl=\n$@<>TRIPOSM"))
        text = "".join(chars)
    return suffix, text


def _records(text: str, suffix: str) -> list[Any]:
    """RDKit's unsanitized view of each record: the atoms the file lists."""
    import re

    from rdkit import Chem, rdBase

    if suffix == ".mol2":
        starts = [m.start() for m in re.finditer(r"^@<TRIPOS>MOLECULE", text, flags=re.M)]
        blocks = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=False)]
        parse: Any = Chem.MolFromMol2Block
    else:
        blocks = [b for b in re.split(r"^\$\$\$\$[^\n]*\n?", text, flags=re.M) if b.strip()]
        parse = Chem.MolFromMolBlock
    with rdBase.BlockLogs():
        return [parse(block, sanitize=False, removeHs=False) for block in blocks]


def _check_file(path: Path, text: str) -> None:
    try:
        graphs = list(read_molecules(path))
    except MoleculeInputError:
        return
    records = _records(text, path.suffix)
    assert len(graphs) == len(records)
    for graph, record in zip(graphs, records, strict=True):
        listed = [a.GetAtomicNum() for a in record.GetAtoms()]
        # the atoms of the file, in the file's order
        assert graph.atomic_numbers[: len(listed)].tolist() == listed
        if 1 in listed:
            assert graph.n_atoms == len(listed)  # explicit hydrogens: never gains atoms
        else:
            assert (graph.atomic_numbers[len(listed):] == 1).all()
        assert graph.positions is not None and graph.positions.shape == (graph.n_atoms, 3)


@FUZZ
@given(mutated_file())
def test_truncated_and_mutated_structure_files(case: tuple[str, str]) -> None:
    suffix, text = case
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"fuzz{suffix}"
        path.write_text(text)
        _check_file(path, text)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([".sdf", ".mol", ".mol2", ".smi"]))
def test_binary_bytes_in_a_molecule_file(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            graphs = list(read_molecules(path))
        except MoleculeInputError:
            return
        assert all(isinstance(g, MoleculeGraph) and g.n_atoms > 0 for g in graphs)


def test_unmutated_fuzz_seeds_are_read_correctly(tmp_path: Path) -> None:
    sdf = tmp_path / "seed.sdf"
    sdf.write_text(SDF_TEXT)
    assert [g.n_atoms for g in read_molecules(sdf)] == [9, 7, 14, 11]
    mol2 = tmp_path / "seed.mol2"
    mol2.write_text(MOL2_TEXT)
    assert [g.n_atoms for g in read_molecules(mol2)] == [9, 9]
