"""The OpenFF Industry Benchmark's SDF files (B3LYP-D3BJ/DZVP optimized conformers) as QM records.

Each ``qm-NNN.sdf(.xz)`` file holds QCArchive optimization results, one SD record per conformer,
tagged ``SMILES QCArchive`` (explicit-hydrogen SMILES, not atom-mapped), ``Energy QCArchive``
(total energy, kcal/mol) and ``Record QCArchive`` (the QCArchive record id). Records of one
molecule are consecutive. :func:`read_industry_sdf` groups them per file, as OpenFF's own
benchmark does (the reference conformer of ddE is the lowest-energy one of the group within its
file), keeps the atom order of the SDF block, and checks every record against its SMILES tag:
records whose connectivity, formal charges or elements disagree with it, or with the other
records of their group, are skipped and reported, never repaired.

The geometries are minima: no forces are stored, the QM gradient is ~0 (geomeTRIC's
convergence), so records carry zero forces marked ``force_label = "zero_at_minimum"``; training
weighs them as such (:mod:`espaloma_like.training.dataset`).

:func:`industry_split` is the deterministic scaffold split of the set (80 / 10 / 10, train /
validation / test by a hash of the Bemis-Murcko scaffold); ``data/openff_industry_split.csv``
records it for every molecule.
"""

from __future__ import annotations

import json
import lzma
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

from espaloma_like.data.records import QMRecord
from espaloma_like.data.split import scaffold_of, stable_fraction
from espaloma_like.exceptions import DataFormatError
from espaloma_like.units import ANGSTROM_TO_NM, KCAL_TO_KJ

if TYPE_CHECKING:
    from rdkit import Chem

__all__ = [
    "INDUSTRY_LEVEL_OF_THEORY",
    "INDUSTRY_SUBSET",
    "IndustryConformer",
    "IndustrySplit",
    "industry_files",
    "industry_split",
    "iter_industry_conformers",
    "read_industry_sdf",
]

INDUSTRY_LEVEL_OF_THEORY = "B3LYP-D3BJ/DZVP"
INDUSTRY_SUBSET = "openff_industry"
SMILES_TAG = "SMILES QCArchive"
ENERGY_TAG = "Energy QCArchive"
RECORD_TAG = "Record QCArchive"
#: salt of the scaffold hash: changing it changes the split, so it is part of the split's name
SPLIT_SALT = "openff-industry-scaffold-v1"
_TAG = re.compile(r"^>\s*<([^>]+)>", re.MULTILINE)


class IndustrySplit(StrEnum):
    """The part of the industry set a molecule belongs to (by scaffold)."""

    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"

    @property
    def record_split(self) -> str:
        """The value of ``QMRecord.metadata["split"]``: the package calls a test split held_out."""
        return "held_out" if self is IndustrySplit.TEST else self.value


def industry_split(smiles: str, validation_fraction: float = 0.1,
                   test_fraction: float = 0.1) -> IndustrySplit:
    """The split of a molecule: whole Bemis-Murcko scaffolds go to one part, chosen by hash.

    Parameters
    ----------
    smiles : str
        The molecule's ``SMILES QCArchive`` tag. Ring systems hash their canonical Murcko
        scaffold, so any SMILES of the molecule gives the same split; acyclic molecules hash the
        SMILES as written (the tag), as the recorded split file does.
    validation_fraction, test_fraction : float
        Expected fractions of scaffolds in the validation and test parts.
    """
    fraction = stable_fraction(scaffold_of(smiles), SPLIT_SALT)
    if fraction < test_fraction:
        return IndustrySplit.TEST
    if fraction < test_fraction + validation_fraction:
        return IndustrySplit.VALIDATION
    return IndustrySplit.TRAIN


@dataclass(frozen=True)
class IndustryConformer:
    """One SD record: an optimized conformer with its tags.

    Attributes
    ----------
    mol : rdkit.Chem.Mol
        Sanitized, explicit hydrogens, atom order of the SDF block, one 3D conformer (angstrom),
        stereochemistry assigned from 3D.
    smiles : str
        The ``SMILES QCArchive`` tag.
    energy_kcal : float
        Total QM energy, kcal/mol.
    record_id : str
        QCArchive record id.
    source : str
        File name and record index, for messages.
    """

    mol: Chem.Mol
    smiles: str
    energy_kcal: float
    record_id: str
    source: str


def industry_files(path: str | Path) -> list[Path]:
    """The ``qm-*.sdf[.xz]`` files of a directory in order, or ``[path]`` for a file."""
    path = Path(path)
    if path.is_dir():
        files = sorted([*path.glob("qm-*.sdf.xz"), *path.glob("qm-*.sdf")])
        if not files:
            raise DataFormatError(f"{path}: no qm-*.sdf or qm-*.sdf.xz files")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"no such file or directory: {path}")
    return [path]


def _open_text(path: Path) -> TextIO:
    if path.name.endswith(".xz"):
        return lzma.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _split_records(handle: TextIO) -> Iterator[str]:
    block: list[str] = []
    for line in handle:
        if line.startswith("$$$$"):
            yield "".join(block)
            block = []
        else:
            block.append(line)
    if "".join(block).strip():
        yield "".join(block)


def _tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for match in _TAG.finditer(text):
        value = text[match.end():].split("\n", 2)
        tags[match.group(1).strip()] = value[1].strip() if len(value) > 1 else ""
    return tags


def _connectivity_key(mol: Chem.Mol) -> str:
    """Canonical SMILES without stereo or isotopes: elements, bonds, bond orders, charges."""
    from rdkit import Chem

    return str(Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False), isomericSmiles=False))


def iter_industry_conformers(path: str | Path, skipped: list[str] | None = None,
                             ) -> Iterator[IndustryConformer]:
    """Yield the conformers of one industry SDF file that agree with their SMILES tag.

    A record is skipped (and, with ``skipped``, reported as ``"<file>#<index> (record <id>):
    <why>"``) when its block does not parse, a tag is missing or unreadable, or its connectivity,
    bond orders, formal charges or atom count disagree with its ``SMILES QCArchive`` tag.
    """
    from rdkit import Chem

    path = Path(path)
    parsed_smiles: dict[str, tuple[str, int] | None] = {}
    with _open_text(path) as handle:
        for index, text in enumerate(_split_records(handle)):
            tags = _tags(text)
            record_id = tags.get(RECORD_TAG, "?")
            where = f"{path.name}#{index} (record {record_id})"

            def skip(why: str, where: str = where) -> None:
                if skipped is not None:
                    skipped.append(f"{where}: {why}")

            smiles = tags.get(SMILES_TAG)
            try:
                energy = float(tags.get(ENERGY_TAG, "nan"))
            except ValueError:
                energy = float("nan")
            if not smiles or not np.isfinite(energy) or record_id == "?":
                skip(f"missing or unreadable tags (need {SMILES_TAG!r}, {ENERGY_TAG!r}, {RECORD_TAG!r})")
                continue
            mol = Chem.MolFromMolBlock(text, removeHs=False, sanitize=True)
            if mol is None or mol.GetNumConformers() != 1:
                skip("the mol block does not parse into a sanitized molecule with 3D coordinates")
                continue
            if smiles not in parsed_smiles:
                reference = Chem.MolFromSmiles(smiles)
                reference = None if reference is None else Chem.AddHs(reference)
                parsed_smiles[smiles] = (None if reference is None else
                                         (_connectivity_key(reference), reference.GetNumAtoms()))
            expected = parsed_smiles[smiles]
            if expected is None:
                skip(f"the SMILES tag does not parse: {smiles}")
                continue
            key, n_atoms = expected
            if mol.GetNumAtoms() != n_atoms:
                skip(f"{mol.GetNumAtoms()} atoms in the block, {n_atoms} in the SMILES tag")
                continue
            found = _connectivity_key(mol)
            if found != key:
                skip(f"connectivity or charges disagree with the SMILES tag ({found} vs {key})")
                continue
            Chem.AssignStereochemistryFrom3D(mol)
            yield IndustryConformer(mol, smiles, energy, record_id, where)


def _mapped_smiles(mol: Chem.Mol) -> str:
    from rdkit import Chem

    mapped = Chem.Mol(mol)
    for atom in mapped.GetAtoms():
        atom.SetAtomMapNum(atom.GetIdx() + 1)
    return str(Chem.MolToSmiles(mapped, allHsExplicit=True))


def _group_record(group: Sequence[IndustryConformer], file_name: str,
                  skipped: list[str] | None) -> QMRecord | None:
    """One QMRecord from the consecutive conformers of one molecule (same SMILES tag)."""
    from rdkit import Chem

    from espaloma_like.molecule import SUPPORTED_ELEMENTS

    first = group[0]
    bonds = {(b.GetBeginAtomIdx(), b.GetEndAtomIdx(), b.GetBondType()) for b in first.mol.GetBonds()}
    kept = [first]
    for conformer in group[1:]:
        other = {(b.GetBeginAtomIdx(), b.GetEndAtomIdx(), b.GetBondType())
                 for b in conformer.mol.GetBonds()}
        same_atoms = [a.GetAtomicNum() for a in conformer.mol.GetAtoms()] == \
            [a.GetAtomicNum() for a in first.mol.GetAtoms()]
        if other != bonds or not same_atoms:
            if skipped is not None:
                skipped.append(f"{conformer.source}: atom order or bonds differ from the first "
                               f"record of its molecule ({first.record_id})")
            continue
        kept.append(conformer)
    atomic_numbers = np.array([a.GetAtomicNum() for a in first.mol.GetAtoms()], dtype=np.int64)
    unknown = sorted({Chem.GetPeriodicTable().GetElementSymbol(int(z))
                      for z in atomic_numbers if int(z) not in SUPPORTED_ELEMENTS})
    if unknown:
        if skipped is not None:
            skipped.append(f"{first.source}: molecule of {len(kept)} records has unsupported "
                           f"elements {', '.join(unknown)}")
        return None
    xyz = np.stack([c.mol.GetConformer().GetPositions() for c in kept]) * ANGSTROM_TO_NM
    return QMRecord(
        name=f"industry-{first.record_id}",
        mapped_smiles=_mapped_smiles(first.mol),
        atomic_numbers=atomic_numbers,
        conformations=xyz,
        energies=np.array([c.energy_kcal for c in kept]) * KCAL_TO_KJ,
        forces=np.zeros_like(xyz),
        level_of_theory=INDUSTRY_LEVEL_OF_THEORY,
        subset=INDUSTRY_SUBSET,
        total_charge=int(Chem.GetFormalCharge(first.mol)),
        metadata={
            "source": file_name,
            "smiles": first.smiles,
            "record_ids": json.dumps([c.record_id for c in kept]),
            "kinds": json.dumps(["dft_minimum"] * len(kept)),
            "force_label": "zero_at_minimum",
            "split": industry_split(first.smiles).record_split,
            "split_rule": SPLIT_SALT,
        },
    )


def read_industry_sdf(paths: str | Path | Iterable[str | Path],
                      skipped: list[str] | None = None) -> Iterator[QMRecord]:
    """Yield one :class:`QMRecord` per molecule of the industry SDF files.

    Parameters
    ----------
    paths : path or iterable of paths
        ``qm-NNN.sdf.xz`` / ``.sdf`` files, or a directory holding them (read in name order).
    skipped : list of str, optional
        Receives one line per skipped record or molecule, with the reason.

    Yields
    ------
    QMRecord
        Atom order of the SDF block; conformations in nm, total energies in kJ/mol, zero forces
        (``metadata["force_label"] == "zero_at_minimum"``), ``metadata["split"]`` from
        :func:`industry_split` (``"train"``, ``"validation"`` or ``"held_out"`` for test) and
        ``metadata["record_ids"]`` (JSON list of QCArchive record ids, one per conformation).
    """
    if isinstance(paths, (str, Path)):
        files = industry_files(paths)
    else:
        files = [f for p in paths for f in industry_files(p)]
    for path in files:
        group: list[IndustryConformer] = []
        for conformer in iter_industry_conformers(path, skipped):
            if group and conformer.smiles != group[0].smiles:
                record = _group_record(group, path.name, skipped)
                if record is not None:
                    yield record
                group = []
            group.append(conformer)
        if group:
            record = _group_record(group, path.name, skipped)
            if record is not None:
                yield record


def is_industry_sdf(path: str | Path) -> bool:
    """Whether ``path`` is an industry-format SDF (or a directory of them)."""
    path = Path(path)
    if path.is_dir():
        return any(path.glob("qm-*.sdf.xz")) or any(path.glob("qm-*.sdf"))
    return path.name.endswith((".sdf", ".sdf.xz"))
