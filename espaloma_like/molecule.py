"""Molecule input: SMILES, mapped SMILES, RDKit, OpenFF, SDF and mol2 -> :class:`MoleculeGraph`.

Atom order is a contract. For a mapped SMILES, atom ``i`` of the graph is the atom with map number
``i + 1``; for an RDKit or OpenFF molecule and for SDF/mol2 files, the order of the input is kept
(hydrogens that RDKit has to add for implicit-hydrogen input are appended after the given atoms).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like.exceptions import (
    DisconnectedMoleculeError,
    MoleculeFileError,
    MoleculeInputError,
    RadicalError,
    UndefinedStereoError,
    UnparsableSmilesError,
    UnsupportedElementError,
)

if TYPE_CHECKING:
    from openff.toolkit import Molecule as OpenFFMolecule
    from rdkit import Chem

#: Elements the package covers, by atomic number.
SUPPORTED_ELEMENTS: dict[int, str] = {
    1: "H", 6: "C", 7: "N", 8: "O", 9: "F", 15: "P", 16: "S", 17: "Cl", 35: "Br", 53: "I",
}
MOLECULE_FILE_SUFFIXES = (".sdf", ".sd", ".mol", ".mol2")


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
        for atom in skeleton.GetAtoms():
            atom.SetFormalCharge(0)
            atom.SetIsAromatic(False)
            atom.SetNoImplicit(True)
            atom.SetNumExplicitHs(0)
        for bond in skeleton.GetBonds():
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
    atomic_numbers = np.fromiter((a.GetAtomicNum() for a in mol.GetAtoms()), np.int64, n)
    formal_charges = np.fromiter((a.GetFormalCharge() for a in mol.GetAtoms()), np.int64, n)
    pairs = []
    orders = []
    for bond in mol.GetBonds():
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
    bad = sorted({a.GetSymbol() for a in mol.GetAtoms() if a.GetAtomicNum() not in SUPPORTED_ELEMENTS})
    if bad:
        raise UnsupportedElementError(
            f"element(s) {', '.join(bad)}{label} not covered; supported: "
            + " ".join(SUPPORTED_ELEMENTS.values())
        )
    radicals = [a.GetIdx() for a in mol.GetAtoms() if a.GetNumRadicalElectrons() > 0]
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
    name : str
        Optional label; defaults to the SMILES.
    """
    from rdkit import Chem, rdBase

    if not isinstance(smiles, str) or not smiles.strip():
        raise UnparsableSmilesError(f"not a SMILES string: {smiles!r}")
    params: Any = Chem.SmilesParserParams()
    params.removeHs = False
    with rdBase.BlockLogs():  # parse errors are reported by our exception, not on stderr
        mol = Chem.MolFromSmiles(smiles.strip(), params)
    if mol is None:
        raise UnparsableSmilesError(f"RDKit could not parse SMILES {smiles!r}")
    maps = [a.GetAtomMapNum() for a in mol.GetAtoms()]
    if any(maps):
        mol = _reorder_by_map(mol, maps, smiles)
    else:
        mol = Chem.AddHs(mol)
    return _from_sanitized_rdkit(mol, name or smiles.strip(), None)


def _reorder_by_map(mol: Chem.Mol, maps: list[int], smiles: str) -> Chem.Mol:
    from rdkit import Chem

    n_implicit = sum(a.GetTotalNumHs(includeNeighbors=False) for a in mol.GetAtoms())
    if 0 in maps or n_implicit:
        raise UnparsableSmilesError(
            f"mapped SMILES {smiles!r} must map every atom, hydrogens included, e.g. "
            "[H:3][C:1]([H:4])([H:5])[O:2][H:6]"
        )
    if sorted(maps) != list(range(1, len(maps) + 1)):
        raise UnparsableSmilesError(
            f"map numbers in {smiles!r} must be 1..{len(maps)}, each once; got {sorted(maps)}"
        )
    new_order = [0] * len(maps)
    for idx, m in enumerate(maps):
        new_order[m - 1] = idx
    mol = Chem.RenumberAtoms(mol, new_order)
    for atom in mol.GetAtoms():
        atom.SetAtomMapNum(0)
    Chem.GetSymmSSSR(mol)  # RenumberAtoms drops ring information
    return mol


def from_rdkit(mol: Chem.Mol, name: str = "") -> MoleculeGraph:
    """Build a graph from an RDKit molecule, keeping its atom order.

    Hydrogens are added (after the existing atoms, with coordinates if a conformer exists) only
    when the molecule has implicit hydrogens. The first conformer, if any, becomes ``positions``.
    """
    from rdkit import Chem

    mol = Chem.Mol(mol)
    try:
        Chem.SanitizeMol(mol)
    except Exception as err:  # RDKit raises several exception types here
        raise MoleculeInputError(f"RDKit could not sanitize the molecule: {err}") from err
    if any(a.GetTotalNumHs(includeNeighbors=False) for a in mol.GetAtoms()):
        mol = Chem.AddHs(mol, addCoords=mol.GetNumConformers() > 0)
    for atom in mol.GetAtoms():
        atom.SetAtomMapNum(0)
    positions = None
    if mol.GetNumConformers():
        positions = np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64) * 0.1
    if not name and mol.HasProp("_Name"):
        name = mol.GetProp("_Name").strip()
    if not name:
        name = str(Chem.MolToSmiles(Chem.RemoveHs(mol)))
    return _from_sanitized_rdkit(mol, name, positions)


def from_openff(molecule: OpenFFMolecule) -> MoleculeGraph:
    """Build a graph from an OpenFF ``Molecule``, keeping its atom order and first conformer."""
    try:
        rd = molecule.to_rdkit()
    except Exception as err:
        raise MoleculeInputError(f"could not convert OpenFF molecule to RDKit: {err}") from err
    return from_rdkit(rd, name=molecule.name or "")


def iter_molecule_file(path: str | Path) -> Iterator[tuple[str, MoleculeGraph | MoleculeInputError]]:
    """Yield ``(name, graph or error)`` for every record of an SDF or mol2 file, in order.

    A record that cannot be read yields its error instead of stopping the iteration, so
    callers can report it and go on with the others.

    Raises
    ------
    MoleculeFileError
        The file is missing, of an unknown type, or holds no records.
    """
    from rdkit import Chem, rdBase

    path = Path(path)
    if not path.is_file():
        raise MoleculeFileError(f"no such molecule file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".sdf", ".sd", ".mol"):
        with rdBase.BlockLogs():  # unreadable records are reported per record below
            supplier = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=True)
            records = [(index, supplier[index]) for index in range(len(supplier))]
    elif suffix == ".mol2":
        records = [(0, Chem.MolFromMol2File(str(path), removeHs=False, sanitize=True))]
    else:
        raise MoleculeFileError(
            f"unknown molecule file type {suffix!r} for {path}; use one of "
            + ", ".join(MOLECULE_FILE_SUFFIXES)
        )
    if not records:
        raise MoleculeFileError(f"no molecules in {path}")
    for index, mol in records:
        label = f"{path.name}#{index}"
        if mol is None:
            yield label, MoleculeFileError(f"record {index} of {path} could not be read by RDKit")
            continue
        name = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
        try:
            yield (name or label), from_rdkit(mol, name=name)
        except MoleculeInputError as err:
            yield (name or label), err


def read_molecules(path: str | Path) -> Iterator[MoleculeGraph]:
    """Yield every molecule of an SDF (one or many records) or mol2 file, in file order.

    Raises
    ------
    MoleculeFileError
        The file is missing, of an unknown type, empty, or a record cannot be read.
    MoleculeInputError
        A record holds chemistry the package does not cover (its specific subclass).
    """
    for _name, item in iter_molecule_file(path):
        if isinstance(item, Exception):
            raise item
        yield item


def read_molecule(path: str | Path) -> MoleculeGraph:
    """Read exactly one molecule from a file (see :func:`read_molecules`)."""
    molecules = list(read_molecules(path))
    if len(molecules) != 1:
        raise MoleculeFileError(f"{path} holds {len(molecules)} molecules where one is expected")
    return molecules[0]


def looks_like_molecule_file(text: str) -> bool:
    """True when ``text`` names a molecule file by its suffix (whether or not it exists)."""
    return Path(text).suffix.lower() in MOLECULE_FILE_SUFFIXES and "\n" not in text


def as_molecule_graph(molecule: Any) -> MoleculeGraph:
    """Turn any accepted input into a :class:`MoleculeGraph`.

    Parameters
    ----------
    molecule : MoleculeGraph, str, pathlib.Path, rdkit.Chem.Mol or openff.toolkit.Molecule
        A string is a path if it ends in .sdf/.mol/.mol2, otherwise a (mapped) SMILES.
    """
    if isinstance(molecule, MoleculeGraph):
        return molecule
    if isinstance(molecule, Path):
        return read_molecule(molecule)
    if isinstance(molecule, str):
        if looks_like_molecule_file(molecule):
            return read_molecule(molecule)
        return from_smiles(molecule)
    type_name = type(molecule).__module__ + "." + type(molecule).__name__
    if type_name.startswith("rdkit."):
        return from_rdkit(molecule)
    if type_name.startswith("openff."):
        return from_openff(molecule)
    raise MoleculeInputError(
        f"cannot make a molecule from {type(molecule).__name__}; give SMILES, a mapped SMILES, "
        "an RDKit Mol, an OpenFF Molecule, or an SDF/mol2 path"
    )


# --------------------------------------------------------------------------------------------
# Stereochemistry and conformers (where stereo matters)
# --------------------------------------------------------------------------------------------


def undefined_stereo(graph: MoleculeGraph) -> list[str]:
    """Descriptions of stereocentres and stereo bonds whose configuration is not specified."""
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
            neighbours = [n.GetIdx() for n in mol.GetAtomWithIdx(info.centeredOn).GetNeighbors()]
            # resonance-equivalent substituents (the O of a phosphonate) make no stereocentre
            if len({int(classes[n]) for n in neighbours}) < len(neighbours):
                continue
            found.append(f"atom {info.centeredOn}")
        else:
            bond = mol.GetBondWithIdx(info.centeredOn)
            ends = (bond.GetBeginAtom(), bond.GetEndAtom())
            symmetric_end = False
            for end, other in (ends, ends[::-1]):
                subs = [n.GetIdx() for n in end.GetNeighbors() if n.GetIdx() != other.GetIdx()]
                if len(subs) == 2 and classes[subs[0]] == classes[subs[1]]:
                    symmetric_end = True
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
