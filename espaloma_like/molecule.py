"""Molecule input: SMILES, mapped SMILES, RDKit, OpenFF, SDF and mol2 -> :class:`MoleculeGraph`.

Atom order is a contract. For a mapped SMILES, atom ``i`` of the graph is the atom with map number
``i + 1``; for an RDKit or OpenFF molecule and for SDF/mol2 files, the order of the input is kept
(hydrogens that RDKit has to add for implicit-hydrogen input are appended after the given atoms).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like._rdkit import atoms as _atoms
from espaloma_like._rdkit import bonds as _bonds
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

if TYPE_CHECKING:
    from openff.toolkit import Molecule as OpenFFMolecule
    from rdkit import Chem

#: Elements the package covers, by atomic number.
SUPPORTED_ELEMENTS: dict[int, str] = {
    1: "H", 6: "C", 7: "N", 8: "O", 9: "F", 15: "P", 16: "S", 17: "Cl", 35: "Br", 53: "I",
}
#: Structure files: atoms, bonds, bond orders, formal charges (and usually coordinates).
STRUCTURE_FILE_SUFFIXES = (".sdf", ".sd", ".mol", ".mol2")
#: Text files with one SMILES per line, an optional name after whitespace or a comma.
SMILES_FILE_SUFFIXES = (".smi", ".smiles", ".txt", ".csv")
MOLECULE_FILE_SUFFIXES = STRUCTURE_FILE_SUFFIXES + SMILES_FILE_SUFFIXES
#: A CXSMILES extension after one space (``C[C@H](O)F |o1:1|``) is the only whitespace allowed.
_CXSMILES = re.compile(r"^(\S+)( \|[^|\s]*\|)?$")


@dataclass(frozen=True, eq=False)
class MoleculeGraph:
    """A closed-shell molecule as a labelled graph, atoms in a fixed order.

    Attributes
    ----------
    atomic_numbers : np.ndarray
        (N,) int64 atomic numbers.
    formal_charges : np.ndarray
        (N,) int64 formal charges, e.
    bonds : np.ndarray
        (B, 2) int64 bonded atom pairs, ``i < j``, sorted.
    bond_orders : np.ndarray
        (B,) float64 bond orders (1, 2, 3; 1.5 for aromatic bonds as perceived by RDKit).
    rdkit_mol : rdkit.Chem.Mol
        Sanitized RDKit molecule with explicit hydrogens, atoms in graph order.
    name : str
        A label: the input's name if it had one, else its SMILES.
    positions : np.ndarray or None
        (N, 3) coordinates in nm when the input carried them (SDF, mol2, conformers).
    """

    atomic_numbers: np.ndarray
    formal_charges: np.ndarray
    bonds: np.ndarray
    bond_orders: np.ndarray
    rdkit_mol: Chem.Mol = field(repr=False)
    name: str = ""
    positions: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_atoms(self) -> int:
        """Number of atoms, hydrogens included."""
        return int(self.atomic_numbers.shape[0])

    @property
    def total_charge(self) -> int:
        """Net charge in e: the sum of formal charges."""
        return int(self.formal_charges.sum())

    @functools.cached_property
    def masses(self) -> np.ndarray:
        """(N,) atomic masses, dalton.

        The isotope's own mass (RDKit) for isotope-labelled atoms (``[2H]``, ``[13C]``);
        OpenMM's standard element mass for every other atom.
        """
        from espaloma_like.export.openmm_system import atomic_masses

        masses = np.asarray(atomic_masses(self.atomic_numbers), dtype=np.float64)
        for atom in _atoms(self.rdkit_mol):
            if atom.GetIsotope():
                masses[atom.GetIdx()] = atom.GetMass()
        return masses

    @functools.cached_property
    def smiles(self) -> str:
        """Canonical isomeric SMILES without atom maps or explicit hydrogens."""
        from rdkit import Chem

        return str(Chem.MolToSmiles(Chem.RemoveHs(self.rdkit_mol)))

    @functools.cached_property
    def mapped_smiles(self) -> str:
        """Mapped SMILES with explicit hydrogens; map number ``i + 1`` is graph atom ``i``."""
        from rdkit import Chem

        mol = Chem.Mol(self.rdkit_mol)
        for atom in mol.GetAtoms():
            atom.SetAtomMapNum(atom.GetIdx() + 1)
        return str(Chem.MolToSmiles(mol, allHsExplicit=True))

    @functools.cached_property
    def symmetry_classes(self) -> np.ndarray:
        """(N,) int64 symmetry class of each atom; equal for equivalent atoms.

        Equivalence is resonance-aware: ranks are computed on the bond skeleton with elements
        and hydrogens but without bond orders or formal charges, so the two oxygens of a
        carboxylate or the three nitrogens of guanidinium share a class.
        """
        from rdkit import Chem

        skeleton = Chem.RWMol(self.rdkit_mol)
        for atom in _atoms(skeleton):
            atom.SetFormalCharge(0)
            atom.SetIsAromatic(False)
            atom.SetNoImplicit(True)
            atom.SetNumExplicitHs(0)
        for bond in _bonds(skeleton):
            bond.SetBondType(Chem.BondType.SINGLE)
            bond.SetIsAromatic(False)
        skeleton.UpdatePropertyCache(strict=False)
        Chem.FastFindRings(skeleton)
        ranks = list(Chem.CanonicalRankAtoms(skeleton, breakTies=False))
        _, classes = np.unique(np.asarray(ranks, dtype=np.int64), return_inverse=True)
        return classes.astype(np.int64)

    def to_openff(self) -> OpenFFMolecule:
        """The OpenFF ``Molecule`` with the same atom order (and conformer, if any)."""
        from openff.toolkit import Molecule

        mol = Molecule.from_rdkit(
            self.rdkit_mol, allow_undefined_stereo=True, hydrogens_are_explicit=True
        )
        mol.name = self.name
        return mol

    def with_positions(self, positions: np.ndarray) -> MoleculeGraph:
        """A copy carrying ``positions`` ((N, 3), nm)."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (self.n_atoms, 3):
            raise ValueError(f"positions must have shape ({self.n_atoms}, 3), got {positions.shape}")
        return MoleculeGraph(
            self.atomic_numbers, self.formal_charges, self.bonds, self.bond_orders,
            self.rdkit_mol, self.name, positions,
        )


# --------------------------------------------------------------------------------------------
# Construction
# --------------------------------------------------------------------------------------------


def _from_sanitized_rdkit(mol: Chem.Mol, name: str, positions: np.ndarray | None) -> MoleculeGraph:
    """Validate a sanitized RDKit molecule with explicit hydrogens and build the graph."""
    _validate_chemistry(mol, name)
    n = mol.GetNumAtoms()
    atom_list = _atoms(mol)
    atomic_numbers = np.fromiter((a.GetAtomicNum() for a in atom_list), np.int64, n)
    formal_charges = np.fromiter((a.GetFormalCharge() for a in atom_list), np.int64, n)
    pairs = []
    orders = []
    for bond in _bonds(mol):
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        pairs.append((min(i, j), max(i, j)))
        orders.append(bond.GetBondTypeAsDouble())
    bonds = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    bond_orders = np.asarray(orders, dtype=np.float64)
    order = np.lexsort((bonds[:, 1], bonds[:, 0])) if len(bonds) else np.zeros(0, np.int64)
    return MoleculeGraph(
        atomic_numbers=atomic_numbers,
        formal_charges=formal_charges,
        bonds=bonds[order],
        bond_orders=bond_orders[order],
        rdkit_mol=mol,
        name=name,
        positions=positions,
    )


def _validate_chemistry(mol: Chem.Mol, name: str) -> None:
    from rdkit import Chem

    label = f" in {name!r}" if name else ""
    bad = sorted({a.GetSymbol() for a in _atoms(mol) if a.GetAtomicNum() not in SUPPORTED_ELEMENTS})
    if bad:
        raise UnsupportedElementError(
            f"element(s) {', '.join(bad)}{label} not covered; supported: "
            + " ".join(SUPPORTED_ELEMENTS.values())
        )
    radicals = [a.GetIdx() for a in _atoms(mol) if a.GetNumRadicalElectrons() > 0]
    if radicals:
        raise RadicalError(
            f"unpaired electrons on atom(s) {radicals}{label}; only closed-shell molecules are "
            "supported (check formal charges and hydrogens)"
        )
    if mol.GetNumAtoms() == 0:
        raise MoleculeInputError(f"empty molecule{label}")
    n_fragments = len(Chem.GetMolFrags(mol))
    if n_fragments > 1:
        raise DisconnectedMoleculeError(
            f"{n_fragments} disconnected fragments{label}; give one molecule at a time "
            "(salts and mixtures: split them, e.g. SMILES on '.')"
        )


def from_smiles(smiles: str, name: str = "") -> MoleculeGraph:
    """Build a graph from a SMILES or mapped SMILES string.

    Parameters
    ----------
    smiles : str
        SMILES. If every atom (hydrogens included) carries a map number, atom ``i`` of the
        graph is the atom mapped ``i + 1``; otherwise hydrogens are added after the heavy atoms.
        Whitespace inside is refused (RDKit would read what follows it as a name and drop it):
        only a CXSMILES extension after one space (``C[C@H](O)F |o1:1|``) is allowed. Names
        after a SMILES belong in ``.smi`` files, whose reader splits them off.
    name : str
        Optional label; defaults to the SMILES.

    Raises
    ------
    UnparsableSmilesError
        Not a string, empty, whitespace inside, or RDKit cannot parse it.
    """
    from rdkit import Chem, rdBase

    if not isinstance(smiles, str) or not smiles.strip():
        raise UnparsableSmilesError(f"not a SMILES string: {smiles!r}")
    text = smiles.strip()
    if _CXSMILES.match(text) is None:
        raise UnparsableSmilesError(
            f"SMILES {_short(text)!r} has whitespace inside; give one molecule per SMILES "
            "(several: a list, or a .smi file with one SMILES and an optional name per line)"
        )
    params: Any = Chem.SmilesParserParams()
    params.removeHs = False
    params.parseName = False
    with rdBase.BlockLogs():  # parse errors are reported by our exception, not on stderr
        try:
            mol = Chem.MolFromSmiles(text, params)
        except Exception as err:  # RDKit raises for a few malformed inputs instead of None
            raise UnparsableSmilesError(f"RDKit could not parse SMILES {_short(text)!r}: {err}") from err
    if mol is None:
        raise UnparsableSmilesError(f"RDKit could not parse SMILES {_short(text)!r}")
    maps = [a.GetAtomMapNum() for a in _atoms(mol)]
    if any(maps):
        mol = _reorder_by_map(mol, maps, text)
    else:
        mol = Chem.AddHs(mol)
    return _from_sanitized_rdkit(mol, name or text, None)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reorder_by_map(mol: Chem.Mol, maps: list[int], smiles: str) -> Chem.Mol:
    from rdkit import Chem

    n_implicit = sum(a.GetTotalNumHs(includeNeighbors=False) for a in mol.GetAtoms())
    if 0 in maps or n_implicit:
        raise UnparsableSmilesError(
            f"mapped SMILES {_short(smiles)!r} must map every atom, hydrogens included, e.g. "
            "[H:3][C:1]([H:4])([H:5])[O:2][H:6]"
        )
    if sorted(maps) != list(range(1, len(maps) + 1)):
        raise UnparsableSmilesError(
            f"map numbers in {_short(smiles)!r} must be 1..{len(maps)}, each once; got {sorted(maps)}"
        )
    new_order = [0] * len(maps)
    for idx, m in enumerate(maps):
        new_order[m - 1] = idx
    mol = Chem.RenumberAtoms(mol, new_order)
    for atom in mol.GetAtoms():
        atom.SetAtomMapNum(0)
    Chem.GetSymmSSSR(mol)  # RenumberAtoms drops ring information
    return mol


def from_rdkit(mol: Chem.Mol, name: str = "", hydrogens_are_explicit: bool = False) -> MoleculeGraph:
    """Build a graph from an RDKit molecule, keeping its atom order.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
        The molecule; its first conformer, if any, becomes ``positions`` (Å -> nm).
    name : str
        Label; defaults to the molecule's ``_Name`` or its SMILES.
    hydrogens_are_explicit : bool
        False: atoms with implicit hydrogens get them added (after the existing atoms, with
        coordinates if a conformer exists). True: every hydrogen is an atom of ``mol`` and an
        atom whose bonds do not fill its valence is an error, never a reason to add one (as
        OpenFF's ``Molecule.from_rdkit(hydrogens_are_explicit=True)``). Files that list their
        hydrogens are read this way.

    Raises
    ------
    ValenceMismatchError
        ``hydrogens_are_explicit`` and some atoms have implicit hydrogens: bond orders or formal
        charges are wrong or missing.
    MoleculeInputError
        RDKit cannot sanitize the molecule, or the chemistry is not covered.
    """
    from rdkit import Chem

    mol = Chem.Mol(mol)
    for atom in mol.GetAtoms():  # SanitizeMol clears computed props: keep Gasteiger charges
        if atom.HasProp("_GasteigerCharge") and not atom.HasProp("PartialCharge"):
            atom.SetDoubleProp("PartialCharge", float(atom.GetProp("_GasteigerCharge")))
    try:
        Chem.SanitizeMol(mol)
    except Exception as err:  # RDKit raises several exception types here
        raise MoleculeInputError(f"RDKit could not sanitize the molecule: {err}") from err
    if not name and mol.HasProp("_Name"):
        name = mol.GetProp("_Name").strip()
    missing = [a for a in mol.GetAtoms() if a.GetTotalNumHs(includeNeighbors=False)]
    if missing and hydrogens_are_explicit:
        listed = ", ".join(f"{a.GetSymbol()}{a.GetIdx()}" for a in missing[:12])
        more = f" and {len(missing) - 12} more" if len(missing) > 12 else ""
        n_h = sum(a.GetTotalNumHs(includeNeighbors=False) for a in missing)
        label = f" in {name!r}" if name else ""
        raise ValenceMismatchError(
            f"valence not filled by the given bonds at atom(s) {listed}{more} (0-based){label}: the "
            f"input lists its hydrogens, yet {n_h} more would be needed, so bond orders or formal "
            "charges are wrong or missing (e.g. aromatic rings as single bonds, a charge without "
            "its 'M  CHG' line); fix the file rather than let hydrogens be added"
        )
    if missing:
        mol = Chem.AddHs(mol, addCoords=mol.GetNumConformers() > 0)
    for atom in mol.GetAtoms():
        atom.SetAtomMapNum(0)
    positions = None
    if mol.GetNumConformers():
        positions = np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64) * 0.1
    if not name:
        name = str(Chem.MolToSmiles(Chem.RemoveHs(mol)))
    return _from_sanitized_rdkit(mol, name, positions)


def from_openff(molecule: OpenFFMolecule) -> MoleculeGraph:
    """Build a graph from an OpenFF ``Molecule``, keeping its atom order and first conformer.

    OpenFF molecules list every hydrogen, so none are ever added.
    """
    try:
        rd = molecule.to_rdkit()
    except Exception as err:
        raise MoleculeInputError(f"could not convert OpenFF molecule to RDKit: {err}") from err
    return from_rdkit(rd, name=molecule.name or "", hydrogens_are_explicit=True)


# --------------------------------------------------------------------------------------------
# Files: one reader for every path (API, CLI, template generator)
# --------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    """The text of a molecule file; clear errors for missing, empty and binary files."""
    if not path.is_file():
        raise MoleculeFileError(f"no such molecule file: {path}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MoleculeFileError(f"cannot read {path}: {err.strerror or err}") from err
    if b"\0" in data:
        raise MoleculeFileError(f"{path} is a binary file, not a {path.suffix} text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # names in old SDF files; atoms and bonds are ASCII
    # control characters other than whitespace: a binary file (a stray one in a name is allowed)
    if sum(not (c.isprintable() or c.isspace()) for c in text) > len(text) // 100:
        raise MoleculeFileError(f"{path} is a binary file, not a {path.suffix} text file")
    if not text.strip():
        raise MoleculeFileError(f"no molecules in {path}: the file is empty")
    return text


def _parse_block(text: str, parse: Any) -> tuple[Chem.Mol | None, str]:
    """Parse one record sanitized (RDKit's stereo perception from 3D / wedges included); if that
    fails, parse it unsanitized to say why."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        try:
            mol = parse(text, sanitize=True, removeHs=False)
        except Exception:  # RDKit raises for some malformed records instead of returning None
            mol = None
        if mol is not None:
            return mol, ""
        try:
            raw = parse(text, sanitize=False, removeHs=False)
        except Exception as err:
            return None, str(err)
        if raw is None:
            return None, "RDKit could not parse the atom and bond blocks"
        try:
            Chem.SanitizeMol(raw)
        except Exception as err:  # the reason RDKit refused it, e.g. an atom's valence
            return None, str(err).strip()
    return None, "RDKit could not read it"


def _structure_records(path: Path, text: str) -> list[tuple[str, Chem.Mol | None, str]]:
    """(label, molecule or None, why) for each record of an SDF/MOL or mol2 text."""
    from rdkit import Chem

    if path.suffix.lower() == ".mol2":
        starts = [m.start() for m in re.finditer(r"^@<TRIPOS>MOLECULE", text, flags=re.M)]
        blocks = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=False)]
        parse: Any = Chem.MolFromMol2Block
    else:
        # "$$$$" ends a record; a single MOL block may omit it
        blocks = [b for b in re.split(r"^\$\$\$\$[^\n]*\n?", text, flags=re.M) if b.strip()]
        parse = Chem.MolFromMolBlock
    records = []
    for index, block in enumerate(blocks):
        mol, why = _parse_block(block, parse)
        if mol is not None and parse is Chem.MolFromMolBlock:
            _read_sd_fields(mol, block)
        records.append((f"{path.name}#{index}", mol, why))
    return records


def _read_sd_fields(mol: Chem.Mol, block: str) -> None:
    """Copy an SD record's data fields onto ``mol`` (as ``SDMolSupplier`` does), with
    ``atom.dprop.<name>`` lists (OpenFF / RDKit partial charges) onto the atoms."""
    for match in re.finditer(r"^>[^<\n]*<([^>\n]+)>[^\n]*\n(.*?)(?=^\s*$|\Z)", block,
                             flags=re.M | re.S):
        name, value = match.group(1), match.group(2).strip()
        mol.SetProp(name, value)
        values = value.split()
        if name.startswith("atom.dprop.") and len(values) == mol.GetNumAtoms():
            try:
                numbers = [float(v) for v in values]
            except ValueError:
                continue
            for atom, number in zip(mol.GetAtoms(), numbers, strict=True):
                atom.SetDoubleProp(name.removeprefix("atom.dprop."), number)


def _smiles_records(path: Path, text: str) -> Iterator[tuple[str, MoleculeGraph | MoleculeInputError]]:
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.replace(",", " ").split()
        if not fields or fields[0].startswith("#"):
            continue
        name = " ".join(fields[1:]) or fields[0]
        try:
            yield name, from_smiles(fields[0], name=name)
        except MoleculeInputError as err:
            yield name, type(err)(f"{path.name} line {number}: {err}")


def iter_molecule_file(path: str | Path) -> Iterator[tuple[str, MoleculeGraph | MoleculeInputError]]:
    """Yield ``(name, graph or error)`` for every record of a molecule file, in order.

    SDF/MOL and mol2 files may hold one or many records (all are read); a ``.smi``-style file
    holds one SMILES per line with an optional name after whitespace or a comma (``#`` starts
    a comment line). A record that cannot be read yields its error instead of stopping the
    iteration, so callers can report it and go on with the others.

    Records of a structure file (SDF, mol2) that contain hydrogen atoms are read with
    ``hydrogens_are_explicit=True``: such a file never gains atoms, and wrong or missing bond
    orders or charges are a :class:`ValenceMismatchError`. Records without any hydrogen atom get
    RDKit's implicit hydrogens, as RDKit reads such files.

    Raises
    ------
    MoleculeFileError
        The file is missing, binary, of an unsupported type, or holds no records.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MOLECULE_FILE_SUFFIXES:
        raise MoleculeFileError(_unsupported_type_message(path))
    text = _read_text(path)
    if suffix in SMILES_FILE_SUFFIXES:
        smiles_records = list(_smiles_records(path, text))
        if not smiles_records:
            raise MoleculeFileError(f"no molecules in {path}")
        yield from smiles_records
        return
    records = _structure_records(path, text)
    if not records:
        raise MoleculeFileError(f"no molecules in {path}")
    for label, mol, why in records:
        if mol is None:
            yield label, MoleculeFileError(f"record {label} could not be read: {why}")
            continue
        name = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
        explicit = any(atom.GetAtomicNum() == 1 for atom in mol.GetAtoms())
        try:
            yield (name or label), from_rdkit(mol, name=name or label, hydrogens_are_explicit=explicit)
        except MoleculeInputError as err:
            yield (name or label), err


def _unsupported_type_message(path: Path) -> str:
    return (f"unsupported molecule file type {path.suffix or '(no suffix)'!r} for {path}; "
            f"use one of {', '.join(MOLECULE_FILE_SUFFIXES)}")


def read_molecules(path: str | Path) -> Iterator[MoleculeGraph]:
    """Yield every molecule of a molecule file (see :func:`iter_molecule_file`), in file order.

    Raises
    ------
    MoleculeFileError
        The file is missing, of an unsupported type, empty, binary, or a record cannot be read.
    MoleculeInputError
        A record holds chemistry the package does not cover (its specific subclass).
    """
    for _name, item in iter_molecule_file(path):
        if isinstance(item, Exception):
            raise item
        yield item


def read_molecule(path: str | Path) -> MoleculeGraph:
    """Read exactly one molecule from a file (see :func:`read_molecules`).

    Raises
    ------
    MoleculeFileError
        As :func:`read_molecules`, or the file holds more than one molecule.
    """
    items = list(iter_molecule_file(path))
    if len(items) != 1:
        raise MoleculeFileError(
            f"{path} holds {len(items)} molecules where one is expected; read them with "
            "read_molecules / parametrize_many, or split the file"
        )
    item = items[0][1]
    if isinstance(item, Exception):
        raise item
    return item


def looks_like_molecule_file(text: str) -> bool:
    """True when ``text`` names a molecule file by its suffix (whether or not it exists)."""
    return Path(text).suffix.lower() in MOLECULE_FILE_SUFFIXES and "\n" not in text


#: Suffixes of other structure formats, refused as such rather than parsed as SMILES.
_OTHER_FILE_SUFFIXES = frozenset({
    ".pdb", ".ent", ".pdbqt", ".cif", ".mmcif", ".xyz", ".mae", ".maegz", ".gro", ".cml",
    ".inchi", ".cdx", ".cdxml", ".json", ".xml", ".h5", ".hdf5", ".pt", ".prmtop", ".top",
    ".psf", ".crd", ".inpcrd", ".rst7", ".gz", ".bz2", ".zip", ".tar", ".tgz", ".pkl",
})


def _path_like(text: str) -> bool:
    return ("/" in text or "\\" in text or Path(text).suffix.lower() in _OTHER_FILE_SUFFIXES
            or bool(re.search(r"\.[A-Za-z][A-Za-z0-9]{1,5}$", text)))


def as_molecule_graph(molecule: Any) -> MoleculeGraph:
    """Turn one accepted input into a :class:`MoleculeGraph`.

    Parameters
    ----------
    molecule : MoleculeGraph, str, pathlib.Path, rdkit.Chem.Mol or openff.toolkit.Molecule
        A string is a path if it ends in a molecule-file suffix (``.sdf``, ``.mol``, ``.mol2``,
        ``.smi``, ...), otherwise a (mapped) SMILES. A file must hold exactly one molecule.

    Raises
    ------
    MoleculeInputError
        Its specific subclass: the input cannot be read, names an unsupported or multi-molecule
        file, or holds chemistry the package does not cover.
    """
    if isinstance(molecule, MoleculeGraph):
        return molecule
    if isinstance(molecule, Path):
        return read_molecule(molecule)
    if isinstance(molecule, str):
        if looks_like_molecule_file(molecule):
            return read_molecule(molecule)
        if Path(molecule).suffix.lower() in _OTHER_FILE_SUFFIXES and "\n" not in molecule:
            raise MoleculeFileError(_unsupported_type_message(Path(molecule)))
        try:
            return from_smiles(molecule)
        except UnparsableSmilesError as err:
            text = molecule.strip()
            if "\n" not in text and _path_like(text):
                raise MoleculeFileError(
                    f"{_short(text)!r} is neither a SMILES RDKit can parse nor a molecule file of "
                    f"a supported type ({', '.join(MOLECULE_FILE_SUFFIXES)})"
                ) from err
            raise
    type_name = type(molecule).__module__ + "." + type(molecule).__name__
    if type_name.startswith("rdkit."):
        return from_rdkit(molecule)
    if type_name.startswith("openff."):
        return from_openff(molecule)
    raise MoleculeInputError(
        f"cannot make a molecule from {type(molecule).__name__}; give SMILES, a mapped SMILES, "
        "an RDKit Mol, an OpenFF Molecule, or a molecule file path"
    )


def is_single_molecule(molecules: Any) -> bool:
    """True when ``molecules`` is one molecule input rather than a collection of them.

    Strings, paths, :class:`MoleculeGraph` and RDKit / OpenFF molecules are single inputs, so
    that ``"CCO"`` is never iterated character by character.
    """
    if isinstance(molecules, str | bytes | Path | MoleculeGraph):
        return True
    module = type(molecules).__module__
    return module.startswith(("rdkit.", "openff."))


def iter_molecules(molecules: Any) -> Iterator[tuple[str, MoleculeGraph | MoleculeInputError]]:
    """Yield ``(label, graph or error)`` for one input or a collection of inputs, in order.

    Parameters
    ----------
    molecules : any accepted molecule input, or an iterable of them
        A single input (a SMILES string, a path, a molecule object) counts as one item, never as
        a sequence of characters. A molecule file (given alone or as an item) yields all its
        records, so a multi-record SDF is read in full where several molecules are accepted.

    Notes
    -----
    Errors are yielded, not raised, so that a caller can report them per molecule and go on;
    a file that cannot be read at all yields one error labelled with its path.
    """
    items: Iterable[Any] = [molecules] if is_single_molecule(molecules) else molecules
    try:
        iterator = iter(items)
    except TypeError:
        iterator = iter([molecules])  # not iterable: as_molecule_graph says what it is
    for item in iterator:
        label = str(item) if isinstance(item, str | Path) else ""
        if isinstance(item, Path) or (isinstance(item, str) and looks_like_molecule_file(item)):
            try:
                yield from iter_molecule_file(item)
            except MoleculeInputError as err:
                yield label, err
            continue
        try:
            graph = as_molecule_graph(item)
        except MoleculeInputError as err:
            yield label or type(item).__name__, err
            continue
        yield label or graph.name, graph


# --------------------------------------------------------------------------------------------
# Stereochemistry and conformers (where stereo matters)
# --------------------------------------------------------------------------------------------


def undefined_stereo(graph: MoleculeGraph) -> list[str]:
    """Descriptions of stereocentres and stereo bonds whose configuration is not specified.

    Only configurations that are real and persist are reported. Not reported: centres whose
    substituents are resonance-equivalent (the oxygens of a phosphonate); a nitrogen that carries
    a hydrogen (a protonated amine's N inverts by losing and regaining the proton, as nicotine's
    ``[NH+]``); a C=N or N=N double bond whose nitrogen's only substituent is a hydrogen (an
    imine NH, as in metformin: E and Z exchange by tautomerism and N inversion), and double
    bonds with two equivalent substituents on one end.
    """
    from rdkit import Chem

    mol = Chem.Mol(graph.rdkit_mol)
    if graph.positions is not None:
        return []  # 3D input fixes the configuration
    classes = graph.symmetry_classes
    found = []
    for info in Chem.FindPotentialStereo(mol):
        if info.specified != Chem.StereoSpecified.Unspecified:
            continue
        if info.type == Chem.StereoType.Atom_Tetrahedral:
            centre = mol.GetAtomWithIdx(info.centeredOn)
            if centre.GetAtomicNum() == 7 and centre.GetTotalNumHs(includeNeighbors=True) > 0:
                continue  # N-H: inverts / exchanges its proton, no lasting configuration
            neighbours = [n.GetIdx() for n in centre.GetNeighbors()]
            # resonance-equivalent substituents (the O of a phosphonate) make no stereocentre
            if len({int(classes[n]) for n in neighbours}) < len(neighbours):
                continue
            found.append(f"atom {info.centeredOn}")
        else:
            bond = mol.GetBondWithIdx(info.centeredOn)
            ends = (bond.GetBeginAtom(), bond.GetEndAtom())
            symmetric_end = False
            for end, other in (ends, ends[::-1]):
                subs = [n for n in end.GetNeighbors() if n.GetIdx() != other.GetIdx()]
                if len(subs) == 2 and classes[subs[0].GetIdx()] == classes[subs[1].GetIdx()]:
                    symmetric_end = True
                if end.GetAtomicNum() == 7 and [n.GetAtomicNum() for n in subs] == [1]:
                    symmetric_end = True  # =N-H: tautomerism and inversion exchange E and Z
            if not symmetric_end:
                found.append(f"bond {bond.GetBeginAtomIdx()}-{bond.GetEndAtomIdx()}")
    return found


def generate_conformers(
    graph: MoleculeGraph, n_conformers: int = 1, seed: int = 0, allow_undefined_stereo: bool = False
) -> np.ndarray:
    """ETKDG conformers, (C, N, 3) in nm, atom order of the graph.

    If the graph carries positions and one conformer is asked for, they are returned as they are.

    Raises
    ------
    UndefinedStereoError
        The molecule has unspecified stereocentres and no coordinates, since a conformer would
        silently pick one stereoisomer.
    """
    from rdkit.Chem import rdDistGeom

    if graph.positions is not None and n_conformers == 1:
        return graph.positions[None].copy()
    if not allow_undefined_stereo:
        missing = undefined_stereo(graph)
        if missing:
            raise UndefinedStereoError(
                f"{graph.name!r}: undefined stereochemistry ({', '.join(missing)}); specify it in "
                "the SMILES or give 3D coordinates (SDF), since conformers would pick one isomer"
            )
    from rdkit import Chem

    mol = Chem.Mol(graph.rdkit_mol)
    params: Any = rdDistGeom.ETKDGv3()
    # RDKit's randomSeed=0 yields identical embeddings for every conformer: shift the seed.
    params.randomSeed = 1 + int(seed)
    params.pruneRmsThresh = 0.1
    ids = list(rdDistGeom.EmbedMultipleConfs(mol, numConfs=n_conformers, params=params))
    if not ids:
        params.useRandomCoords = True
        ids = list(rdDistGeom.EmbedMultipleConfs(mol, numConfs=n_conformers, params=params))
    if not ids:
        raise MoleculeInputError(f"RDKit could not embed a 3D conformer of {graph.name!r}")
    return np.stack([mol.GetConformer(i).GetPositions() for i in ids]) * 0.1
