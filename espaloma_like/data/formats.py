"""Readers for public QM data formats other than SPICE, returning :class:`QMRecord` objects.

* :func:`read_grappa_npz`: the ``.npz`` files of grappa (xyz in angstrom, energies in kcal/mol,
  gradients in kcal/mol/angstrom, and a PDB block for the topology);
* :func:`read_extxyz`: extended XYZ trajectories with per-frame energies and per-atom forces, as
  the rMD17 and many MLIP data sets ship.

Neither format stores bond orders. They are recovered with RDKit (residue templates for the PDB
block, ``rdDetermineBonds`` for XYZ) and accepted only if the result is one closed-shell molecule
that :func:`espaloma_like.molecule.from_smiles` reads back with the same atoms; otherwise the
record keeps ``mapped_smiles = ""`` and says why in ``metadata["mapped_smiles_note"]``.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from espaloma_like.data.records import QMRecord
from espaloma_like.exceptions import DataFormatError, MoleculeInputError
from espaloma_like.units import (
    ANGSTROM_TO_NM,
    HARTREE_TO_KJ_PER_MOL,
    KCAL_TO_KJ,
)

if TYPE_CHECKING:
    from rdkit import Chem

__all__ = ["read_extxyz", "read_grappa_npz"]

#: Energy units accepted by :func:`read_extxyz`, as kJ/mol per unit.
ENERGY_UNITS: dict[str, float] = {
    "kcal/mol": KCAL_TO_KJ,
    "kj/mol": 1.0,
    "hartree": HARTREE_TO_KJ_PER_MOL,
}

#: Longest bond (angstrom) tolerated in any conformation before the topology is declared
#: inconsistent with the coordinates (the longest covalent bonds here, S-S and C-I, are ~2.1).
_MAX_BOND_ANGSTROM = 2.6

#: Usual valences of elements whose missing bonds can be restored as double bonds.
_VALENCE = {6: 4, 7: 3, 8: 2, 16: 2}


# --------------------------------------------------------------------------------------------
# Bond orders and mapped SMILES
# --------------------------------------------------------------------------------------------


def _validated_mapped_smiles(mol: Chem.Mol, atomic_numbers: np.ndarray) -> str:
    """Mapped SMILES of a sanitized molecule with explicit H, checked by reading it back.

    Raises
    ------
    MoleculeInputError
        The molecule is not one closed-shell molecule of supported elements, or it does not
        read back with the same atoms in the same order.
    """
    from rdkit import Chem

    from espaloma_like.molecule import from_smiles

    radicals = [a.GetIdx() for a in mol.GetAtoms() if a.GetNumRadicalElectrons()]
    if radicals:
        raise MoleculeInputError(f"unpaired electrons left on atoms {radicals}")
    mapped = Chem.Mol(mol)
    for atom in mapped.GetAtoms():
        atom.SetAtomMapNum(atom.GetIdx() + 1)
    smiles = str(Chem.MolToSmiles(mapped, allHsExplicit=True))
    graph = from_smiles(smiles)
    if not np.array_equal(graph.atomic_numbers, atomic_numbers):
        raise MoleculeInputError("the SMILES does not read back with the same atoms")
    return smiles


def _set_positions(mol: Chem.Mol, positions_angstrom: np.ndarray) -> None:
    """Replace the first conformer's coordinates and take stereochemistry from them."""
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    conformer = mol.GetConformer()
    for index, (x, y, z) in enumerate(positions_angstrom.tolist()):
        conformer.SetAtomPosition(index, Point3D(x, y, z))
    Chem.AssignStereochemistryFrom3D(mol, replaceExistingTags=True)


def _complete_template_bonds(mol: Chem.RWMol) -> None:
    """Turn bonds between two under-bonded C/N/O/S atoms into double bonds, then set charges.

    RDKit's PDB reader sets bond orders from its templates of the standard amino acids, but not
    for caps (ACE's carbonyl) or unknown residues; afterwards N with four bonds is N+ and O or S
    with one bond is O- / S- (carboxylates, thiolates).
    """
    from rdkit import Chem

    def missing(atom: Chem.Atom) -> float:
        z = atom.GetAtomicNum()
        if z not in _VALENCE:
            return 0.0
        return _VALENCE[z] - sum(b.GetBondTypeAsDouble() for b in atom.GetBonds())

    for bond in mol.GetBonds():
        if (
            bond.GetBondType() == Chem.BondType.SINGLE
            and missing(bond.GetBeginAtom()) >= 1
            and missing(bond.GetEndAtom()) >= 1
        ):
            bond.SetBondType(Chem.BondType.DOUBLE)
    for atom in mol.GetAtoms():
        valence = sum(b.GetBondTypeAsDouble() for b in atom.GetBonds())
        z = atom.GetAtomicNum()
        charge = 0
        if z == 7 and valence == 4:
            charge = 1
        elif z in (8, 16) and valence == 1:
            charge = -1
        atom.SetFormalCharge(charge)
        atom.SetNoImplicit(True)
        atom.SetNumExplicitHs(0)


def _check_bond_lengths(mol: Chem.Mol, xyz_angstrom: np.ndarray, where: str) -> None:
    """Raise if a bond of ``mol`` is absurdly long in some conformation (atom order mismatch)."""
    pairs = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()])
    if pairs.size == 0:
        return
    lengths = np.linalg.norm(xyz_angstrom[:, pairs[:, 0]] - xyz_angstrom[:, pairs[:, 1]], axis=-1)
    if lengths.max() > _MAX_BOND_ANGSTROM:
        conf, bond = np.unravel_index(int(np.argmax(lengths)), lengths.shape)
        i, j = pairs[bond]
        raise DataFormatError(
            f"{where}: bond {i}-{j} of the topology is {lengths.max():.2f} angstrom long in "
            f"conformation {conf}; the topology's atom order does not match the coordinates"
        )


def _mapped_smiles_from_pdb(
    pdb_block: str, xyz_angstrom: np.ndarray, where: str
) -> tuple[np.ndarray, str, str]:
    """Atomic numbers, mapped SMILES ("" if not recoverable) and a note, from a PDB block."""
    from rdkit import Chem
    from rdkit.rdBase import BlockLogs

    with BlockLogs():
        mol = Chem.MolFromPDBBlock(pdb_block, removeHs=False, sanitize=False, proximityBonding=True)
    if mol is None:
        raise DataFormatError(f"{where}: RDKit could not read the PDB block")
    atomic_numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    if atomic_numbers.size != xyz_angstrom.shape[1]:
        raise DataFormatError(
            f"{where}: the PDB block has {atomic_numbers.size} atoms, "
            f"xyz has {xyz_angstrom.shape[1]}"
        )
    if np.any(atomic_numbers == 0):
        raise DataFormatError(f"{where}: the PDB block has atoms without a known element")
    _check_bond_lengths(mol, xyz_angstrom, where)
    editable = Chem.RWMol(mol)
    try:
        _complete_template_bonds(editable)
        repaired = editable.GetMol()
        with BlockLogs():
            Chem.SanitizeMol(repaired)
        _set_positions(repaired, xyz_angstrom[0])
        return atomic_numbers, _validated_mapped_smiles(repaired, atomic_numbers), ""
    except (MoleculeInputError, ValueError, RuntimeError) as err:  # RDKit sanitize errors
        return atomic_numbers, "", f"bond orders not recovered from the PDB block: {err}"


def _mapped_smiles_from_xyz(
    atomic_numbers: np.ndarray, xyz_angstrom: np.ndarray, total_charge: int
) -> tuple[str, str]:
    """Mapped SMILES ("" if not recoverable) and a note, from the first conformation."""
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds
    from rdkit.rdBase import BlockLogs

    block = f"{len(atomic_numbers)}\n\n" + "\n".join(
        f"{Chem.GetPeriodicTable().GetElementSymbol(int(z))} {x:.10f} {y:.10f} {w:.10f}"
        for z, (x, y, w) in zip(atomic_numbers, xyz_angstrom[0].tolist(), strict=True)
    )
    try:
        with BlockLogs():
            mol = Chem.MolFromXYZBlock(block)
            if mol is None:
                raise MoleculeInputError("RDKit could not read the coordinates")
            rdDetermineBonds.DetermineBonds(mol, charge=int(total_charge))
            Chem.AssignStereochemistryFrom3D(mol)
        smiles = _validated_mapped_smiles(mol, atomic_numbers)
        _check_bond_lengths(mol, xyz_angstrom, "extxyz")
        return smiles, ""
    except (MoleculeInputError, DataFormatError, ValueError, RuntimeError) as err:
        return "", f"bonds not perceived from the coordinates: {err}"


# --------------------------------------------------------------------------------------------
# grappa .npz
# --------------------------------------------------------------------------------------------


def read_grappa_npz(
    path: str | os.PathLike[str],
    name: str | None = None,
    level_of_theory: str = "unknown",
    subset: str = "grappa",
) -> QMRecord:
    """Read one molecule from a grappa ``.npz`` file.

    Keys used: ``xyz`` (C, N, 3) angstrom, ``energy_qm`` (C,) kcal/mol, ``gradient_qm``
    (C, N, 3) kcal/mol/angstrom (the gradient: forces are its negative), ``pdbstring`` (the PDB
    lines; element and atom order), ``sequence`` (optional, e.g. "ACE-HIS-PRO-MET-NME").

    Bond orders come from RDKit's PDB reader (proximity bonds plus its amino-acid templates),
    completed for caps such as ACE by pairing under-bonded neighbours into double bonds, with N+
    for four-bonded N and O-/S- for one-bonded O/S. The result must read back through
    :func:`espaloma_like.molecule.from_smiles`; when it does not, ``mapped_smiles`` is "" and
    ``total_charge`` is 0 (unknown), noted in ``metadata["mapped_smiles_note"]``.

    The example files store energies as float32 totals (about -1e6 kcal/mol), so energies are
    resolved to about 0.1 kcal/mol (0.5 kJ/mol) only.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.
    name : str, optional
        Record name; default the sequence, else the file stem.
    level_of_theory : str
        Stored as is; the files do not say (grappa's peptide data used B3LYP-D3BJ/DZVP).
    subset : str
        Stored as the record's subset.

    Raises
    ------
    DataFormatError
        A key is missing, shapes disagree, or the PDB atoms do not match the coordinates.
    """
    path = Path(path)
    where = str(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataFormatError(f"{where}: not a readable .npz file: {err}") from err
    with data:
        missing = [k for k in ("xyz", "energy_qm", "gradient_qm", "pdbstring") if k not in data]
        if missing:
            raise DataFormatError(f"{where}: missing key(s) {', '.join(missing)} of grappa's npz")
        xyz = np.asarray(data["xyz"], dtype=np.float64)
        energy = np.asarray(data["energy_qm"], dtype=np.float64)
        gradient = np.asarray(data["gradient_qm"], dtype=np.float64)
        pdb_lines = data["pdbstring"]
        sequence = str(data["sequence"]) if "sequence" in data else ""
    if xyz.ndim != 3 or xyz.shape[-1] != 3 or gradient.shape != xyz.shape:
        raise DataFormatError(
            f"{where}: xyz {xyz.shape} and gradient_qm {gradient.shape} must both be (C, N, 3)"
        )
    pdb_block = "".join(str(line) for line in np.atleast_1d(pdb_lines))
    atomic_numbers, smiles, note = _mapped_smiles_from_pdb(pdb_block, xyz, where)
    metadata = {"source_file": path.name, "format": "grappa-npz"}
    if sequence:
        metadata["sequence"] = sequence
    if note:
        metadata["mapped_smiles_note"] = note
    total_charge = 0
    if smiles:
        from espaloma_like.data.spice import total_charge_from_smiles

        total_charge = total_charge_from_smiles(smiles)
    return QMRecord(
        name=name or sequence or path.stem,
        mapped_smiles=smiles,
        atomic_numbers=atomic_numbers,
        conformations=xyz * ANGSTROM_TO_NM,
        energies=energy * KCAL_TO_KJ,
        forces=-gradient * (KCAL_TO_KJ / ANGSTROM_TO_NM),
        level_of_theory=level_of_theory,
        subset=subset,
        total_charge=total_charge,
        metadata=metadata,
    )


# --------------------------------------------------------------------------------------------
# Extended XYZ
# --------------------------------------------------------------------------------------------


def _parse_comment(line: str, where: str) -> dict[str, str]:
    """``key=value`` pairs of an extended-XYZ comment line (values may be quoted)."""
    try:
        tokens = shlex.split(line)
    except ValueError as err:
        raise DataFormatError(f"{where}: unreadable comment line: {err}") from err
    info = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        info[key] = value if sep else "T"
    return info


def _columns(properties: str, where: str) -> dict[str, slice]:
    """Column slices of each per-atom property: ``species:S:1:pos:R:3`` -> {species: 0:1, ...}."""
    fields = properties.split(":")
    if len(fields) % 3:
        raise DataFormatError(f"{where}: malformed Properties={properties!r}")
    columns, start = {}, 0
    for index in range(0, len(fields), 3):
        key, width = fields[index], int(fields[index + 2])
        columns[key] = slice(start, start + width)
        start += width
    return columns


def read_extxyz(
    path: str | os.PathLike[str],
    name: str | None = None,
    level_of_theory: str = "unknown",
    energy_key: str = "energy",
    forces_key: str = "forces",
    energy_unit: str = "kcal/mol",
    total_charge: int = 0,
    subset: str = "extxyz",
) -> QMRecord:
    """Read a trajectory of one molecule from an extended XYZ file.

    Each frame is an atom count, a comment line of ``key=value`` pairs holding
    ``Properties=species:S:1:pos:R:3:forces:R:3`` (the default if absent) and the energy, and
    one line per atom. Positions are in angstrom, energies in ``energy_unit`` and forces in
    ``energy_unit``/angstrom; the format itself does not fix units (rMD17: kcal/mol). Every frame
    must have the same elements in the same order.

    The mapped SMILES is perceived from the first frame with RDKit's ``rdDetermineBonds`` at
    ``total_charge``; when that fails it is "" and ``metadata["mapped_smiles_note"]`` says why.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.xyz`` / ``.extxyz`` file.
    name : str, optional
        Record name; default the file stem.
    level_of_theory : str
        Stored as is (rMD17: "PBE/def2-SVP").
    energy_key, forces_key : str
        Comment-line key of the energy and Properties name of the forces.
    energy_unit : {"kcal/mol", "kJ/mol", "hartree"}
        Unit of the energies; forces are in this unit per angstrom.
    total_charge : int
        Net charge, e (extended XYZ has no standard field for it).
    subset : str
        Stored as the record's subset.

    Raises
    ------
    DataFormatError
        The file is malformed, a frame lacks the energy or forces, or frames disagree in atoms.
    """
    from rdkit import Chem

    path = Path(path)
    where = str(path)
    unit = ENERGY_UNITS.get(energy_unit.lower())
    if unit is None:
        raise ValueError(
            f"energy_unit must be one of {', '.join(ENERGY_UNITS)}, got {energy_unit!r}"
        )
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise DataFormatError(f"{where}: cannot read: {err}") from err
    table = Chem.GetPeriodicTable()
    species: list[str] | None = None
    positions, forces, energies = [], [], []
    line_no = 0
    while line_no < len(lines):
        if not lines[line_no].strip():
            line_no += 1
            continue
        try:
            n_atoms = int(lines[line_no].split()[0])
        except ValueError as err:
            raise DataFormatError(f"{where}:{line_no + 1}: expected an atom count") from err
        if line_no + 2 + n_atoms > len(lines):
            raise DataFormatError(f"{where}:{line_no + 1}: frame truncated")
        frame_where = f"{where}:{line_no + 2}"
        info = _parse_comment(lines[line_no + 1], frame_where)
        columns = _columns(info.get("Properties", "species:S:1:pos:R:3"), frame_where)
        for key in ("species", "pos", forces_key):
            if key not in columns:
                raise DataFormatError(f"{frame_where}: no per-atom {key!r} in Properties")
        if energy_key not in info:
            raise DataFormatError(f"{frame_where}: no {energy_key}= in the comment line")
        rows = [row.split() for row in lines[line_no + 2 : line_no + 2 + n_atoms]]
        try:
            frame_species = [row[columns["species"]][0] for row in rows]
            positions.append([[float(v) for v in row[columns["pos"]]] for row in rows])
            forces.append([[float(v) for v in row[columns[forces_key]]] for row in rows])
            energies.append(float(info[energy_key]))
        except (ValueError, IndexError) as err:
            raise DataFormatError(f"{frame_where}: malformed atom lines: {err}") from err
        if species is None:
            species = frame_species
        elif frame_species != species:
            raise DataFormatError(f"{frame_where}: atoms differ from the first frame's")
        line_no += 2 + n_atoms
    if species is None:
        raise DataFormatError(f"{where}: no frames")
    # a lookup table, since RDKit's GetAtomicNumber prints a C++ stack trace for unknown symbols
    by_symbol = {table.GetElementSymbol(z): z for z in range(1, 119)}
    unknown = sorted({s for s in species if not s.isdigit() and s not in by_symbol})
    if unknown:
        raise DataFormatError(f"{where}: unknown element symbol(s) {unknown}")
    atomic_numbers = np.array(
        [int(s) if s.isdigit() else by_symbol[s] for s in species], dtype=np.int64
    )
    xyz = np.asarray(positions, dtype=np.float64).reshape(len(energies), len(species), 3)
    smiles, note = _mapped_smiles_from_xyz(atomic_numbers, xyz, total_charge)
    metadata = {"source_file": path.name, "format": "extxyz", "energy_unit": energy_unit}
    if note:
        metadata["mapped_smiles_note"] = note
    return QMRecord(
        name=name or path.stem,
        mapped_smiles=smiles,
        atomic_numbers=atomic_numbers,
        conformations=xyz * ANGSTROM_TO_NM,
        energies=np.asarray(energies) * unit,
        forces=np.asarray(forces, dtype=np.float64).reshape(xyz.shape) * (unit / ANGSTROM_TO_NM),
        level_of_theory=level_of_theory,
        subset=subset,
        total_charge=total_charge,
        metadata=metadata,
    )
