"""Readers for grappa .npz and extended XYZ files: units, topology, and signs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import restoring_force_correlation, shared_dir

from espaloma_like.data.formats import read_extxyz, read_grappa_npz
from espaloma_like.data.records import QMRecord
from espaloma_like.data.spice import is_supported
from espaloma_like.exceptions import DataFormatError
from espaloma_like.molecule import from_smiles
from espaloma_like.units import HARTREE_TO_KJ_PER_MOL, KCAL_TO_KJ

#: Net charge of residues in the tripeptide files (standard protonation states).
RESIDUE_CHARGE = {"ASP": -1, "GLU": -1, "LYS": 1, "ARG": 1}


def _reference(relative: str) -> Path:
    shared = shared_dir()
    path = None if shared is None else shared / "qm-reference" / relative
    if path is None or not path.exists():
        pytest.skip(f"shared reference data qm-reference/{relative} is not available")
    return path


def bond_lengths(record: QMRecord, z1: int, z2: int) -> np.ndarray:
    """All z1-z2 bond lengths (nm) over conformations, bonds taken from the mapped SMILES."""
    graph = from_smiles(record.mapped_smiles)
    z = record.atomic_numbers
    pairs = [(i, j) for i, j in graph.bonds.tolist() if {z[i], z[j]} == {z1, z2}]
    xyz = record.conformations
    return np.concatenate([np.linalg.norm(xyz[:, i] - xyz[:, j], axis=-1) for i, j in pairs])


# --------------------------------------------------------------------------------------------
# grappa
# --------------------------------------------------------------------------------------------


def test_grappa_tripeptides_read_with_topology_and_units() -> None:
    folder = _reference("grappa_tripeptides")
    files = sorted(folder.glob("example_data_*.npz"))
    assert len(files) == 19
    for path in files:
        record = read_grappa_npz(path)
        raw = np.load(path)
        residues = record.name.split("-")
        assert residues[0] == "ACE" and residues[-1] == "NME"
        # bond orders recovered: a supported molecule with the expected net charge
        assert is_supported(record) is None, (path.name, record.metadata)
        assert record.total_charge == sum(RESIDUE_CHARGE.get(r, 0) for r in residues)
        # units: angstrom -> nm, kcal/mol -> kJ/mol, gradient -> forces
        np.testing.assert_allclose(record.conformations, raw["xyz"] * 0.1, rtol=1e-7)
        np.testing.assert_allclose(record.energies, raw["energy_qm"] * KCAL_TO_KJ, rtol=1e-7)
        np.testing.assert_allclose(record.forces, -raw["gradient_qm"] * KCAL_TO_KJ * 10.0,
                                   rtol=1e-6)
        assert record.metadata["format"] == "grappa-npz"
    # sanity on the last one: peptide bond lengths in nm, energies of a ~60-atom molecule
    c_h = bond_lengths(record, 6, 1)
    assert 0.105 < c_h.mean() < 0.113
    c_o = bond_lengths(record, 6, 8)
    assert 0.115 < c_o.min() and c_o.max() < 0.16
    assert -3000.0 < record.energies.max() / HARTREE_TO_KJ_PER_MOL < -500.0
    assert 100.0 < np.linalg.norm(record.forces, axis=-1).mean() < 5000.0
    assert restoring_force_correlation(record) < -0.5


def test_grappa_mapped_smiles_is_the_peptide() -> None:
    record = read_grappa_npz(_reference("grappa_tripeptides/example_data_12.npz"))
    assert record.name == "ACE-ASP-ASP-GLU-NME"
    graph = from_smiles(record.mapped_smiles)
    assert graph.total_charge == -3
    # three carboxylates and four amide carbonyls (ACE, two internal, the one before NME)
    assert graph.smiles.count("[O-]") == 3
    expected = "CNC(=O)[C@H](CCC(=O)[O-])NC(=O)[C@H](CC(=O)[O-])NC(=O)[C@H](CC(=O)[O-])NC(C)=O"
    assert graph.smiles == from_smiles(expected).smiles


def test_grappa_reader_rejects_incomplete_files(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, xyz=np.zeros((1, 3, 3)), energy_qm=np.zeros(1))
    with pytest.raises(DataFormatError, match="gradient_qm"):
        read_grappa_npz(path)


# --------------------------------------------------------------------------------------------
# Extended XYZ
# --------------------------------------------------------------------------------------------


def test_rmd17_ethanol_extxyz() -> None:
    path = _reference("rmd17_ethanol/ethanol_reduced_100.xyz")
    record = read_extxyz(path, level_of_theory="PBE/def2-SVP")
    assert (record.n_atoms, record.n_conformations) == (9, 100)
    assert record.level_of_theory == "PBE/def2-SVP"
    assert from_smiles(record.mapped_smiles).smiles == "CCO"
    np.testing.assert_array_equal(record.atomic_numbers, [1, 1, 1, 1, 1, 1, 6, 6, 8])
    # first frame, as written in the file: energy=-97079.92222178938 kcal/mol
    assert record.energies[0] == pytest.approx(-97079.92222178938 * KCAL_TO_KJ, rel=1e-15)
    assert -156.0 < record.energies[0] / HARTREE_TO_KJ_PER_MOL < -154.0  # ethanol, hartree
    assert record.conformations[0, 0] == pytest.approx([0.016712676, -0.119985031, 0.084958249])
    assert record.forces[0, 0, 0] == pytest.approx(-32.31755688687498 * KCAL_TO_KJ * 10.0)
    # bond lengths in nm
    assert 0.147 < bond_lengths(record, 6, 6).mean() < 0.157
    assert 0.138 < bond_lengths(record, 6, 8).mean() < 0.148
    assert 0.105 < bond_lengths(record, 6, 1).mean() < 0.114
    assert 0.092 < bond_lengths(record, 8, 1).mean() < 0.102
    assert 100.0 < np.linalg.norm(record.forces, axis=-1).mean() < 5000.0
    assert restoring_force_correlation(record) < -0.5


def test_extxyz_units_keys_and_errors(tmp_path: Path) -> None:
    frame = (
        "3\n"
        'Properties=species:S:1:pos:R:3:F:R:3 E=-76.0 comment="two words"\n'
        "O 0.0 0.0 0.1173 0.0 0.0 0.01\n"
        "H 0.0 0.7572 -0.4692 0.0 0.02 -0.005\n"
        "H 0.0 -0.7572 -0.4692 0.0 -0.02 -0.005\n"
    )
    path = tmp_path / "water.extxyz"
    path.write_text(frame + frame.replace("E=-76.0", "E=-75.9"))
    record = read_extxyz(path, energy_key="E", forces_key="F", energy_unit="hartree")
    assert record.mapped_smiles and from_smiles(record.mapped_smiles).smiles == "O"
    np.testing.assert_allclose(record.energies, np.array([-76.0, -75.9]) * HARTREE_TO_KJ_PER_MOL)
    assert record.forces[0, 1, 1] == pytest.approx(0.02 * HARTREE_TO_KJ_PER_MOL * 10.0)
    assert record.conformations[1, 1, 1] == pytest.approx(0.07572)
    with pytest.raises(DataFormatError, match="energy"):
        read_extxyz(path, forces_key="F")  # no energy= key
    with pytest.raises(ValueError, match="energy_unit"):
        read_extxyz(path, energy_key="E", forces_key="F", energy_unit="eV")
    mixed = tmp_path / "mixed.extxyz"
    mixed.write_text(frame + frame.replace("O 0.0", "N 0.0"))
    with pytest.raises(DataFormatError, match="differ"):
        read_extxyz(mixed, energy_key="E", forces_key="F")
    truncated = tmp_path / "truncated.extxyz"
    truncated.write_text(frame[:-40])
    with pytest.raises(DataFormatError, match="truncated"):
        read_extxyz(truncated, energy_key="E", forces_key="F")
