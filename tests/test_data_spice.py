"""SPICE HDF5 layout: round trips, the appending writer, and the real SPICE sample."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import restoring_force_correlation, shared_dir

from espaloma_like.data.records import QMRecord
from espaloma_like.data.spice import (
    SPICE_LEVEL_OF_THEORY,
    SpiceWriter,
    is_supported,
    read_spice_hdf5,
    spice_group_names,
    total_charge_from_smiles,
    write_spice_hdf5,
)
from espaloma_like.exceptions import DataFormatError
from espaloma_like.units import (
    BOHR_TO_NM,
    HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM,
    HARTREE_TO_KJ_PER_MOL,
)

ACETATE = "[C:1]([C:2](=[O:3])[O-:4])([H:5])([H:6])[H:7]"
METHANOL = "[C:1]([O:2][H:6])([H:3])([H:4])[H:5]"


def make_record(name: str, smiles: str, n_conf: int = 3, seed: int = 0, **kwargs) -> QMRecord:  # type: ignore[no-untyped-def]
    """A record with random but valid arrays (values with full float64 mantissas)."""
    from espaloma_like.molecule import from_smiles

    graph = from_smiles(smiles)
    rng = np.random.default_rng(seed)
    n = graph.n_atoms
    return QMRecord(
        name=name,
        mapped_smiles=smiles,
        atomic_numbers=graph.atomic_numbers,
        conformations=rng.normal(0.0, 0.3, (n_conf, n, 3)),
        energies=-6.0e5 + rng.normal(0.0, 50.0, n_conf),
        forces=rng.normal(0.0, 500.0, (n_conf, n, 3)),
        level_of_theory=kwargs.pop("level_of_theory", "GFN2-xTB"),
        total_charge=graph.total_charge,
        **kwargs,
    )


def assert_same_record(a: QMRecord, b: QMRecord) -> None:
    assert (a.name, a.mapped_smiles, a.level_of_theory, a.subset) == (
        b.name, b.mapped_smiles, b.level_of_theory, b.subset
    )
    assert a.total_charge == b.total_charge
    assert a.metadata == b.metadata
    np.testing.assert_array_equal(a.atomic_numbers, b.atomic_numbers)
    for key in ("conformations", "energies", "forces"):
        np.testing.assert_allclose(getattr(a, key), getattr(b, key), rtol=1e-12, atol=0.0)
    if a.charges is None:
        assert b.charges is None
    else:
        assert b.charges is not None
        np.testing.assert_array_equal(a.charges, b.charges)


def tmp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def test_record_validates_shapes_and_maps() -> None:
    record = make_record("acetate", ACETATE)
    assert (record.n_atoms, record.n_conformations, record.total_charge) == (7, 3, -1)
    assert not record.conformations.flags.writeable
    with pytest.raises(DataFormatError, match="forces"):
        QMRecord("x", METHANOL, [6, 8, 1, 1, 1, 1], np.zeros((2, 6, 3)), np.zeros(2),
                 np.zeros((2, 5, 3)), "GFN2-xTB")
    with pytest.raises(DataFormatError, match="map"):
        QMRecord("x", "CO", [6, 8, 1, 1, 1, 1], np.zeros((1, 6, 3)), np.zeros(1),
                 np.zeros((1, 6, 3)), "GFN2-xTB")
    with pytest.raises(DataFormatError, match="non-finite"):
        QMRecord("x", METHANOL, [6, 8, 1, 1, 1, 1], np.zeros((1, 6, 3)), np.full(1, np.nan),
                 np.zeros((1, 6, 3)), "GFN2-xTB")


def test_record_select() -> None:
    record = make_record("acetate", ACETATE, n_conf=4)
    picked = record.select([3, 1])
    np.testing.assert_array_equal(picked.energies, record.energies[[3, 1]])
    np.testing.assert_array_equal(picked.forces[0], record.forces[3])
    masked = record.select(np.array([True, False, False, True]))
    np.testing.assert_array_equal(masked.conformations, record.conformations[[0, 3]])
    assert record.select([]).n_conformations == 0
    assert picked.mapped_smiles == record.mapped_smiles and picked.name == record.name


# --------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------


def test_round_trip_is_exact_to_unit_conversion(tmp_path: Path) -> None:
    records = [
        make_record("acetate", ACETATE, seed=1, subset="test set", charges=np.linspace(-1, 0, 7),
                    metadata={"engine": "gfn2-xtb", "note": "ünïcode ok"}),
        make_record("methanol", METHANOL, n_conf=5, seed=2, level_of_theory="B3LYP-D3BJ/DZVP"),
    ]
    path = tmp_path / "out.hdf5"
    assert write_spice_hdf5(path, records) == 2
    back = list(read_spice_hdf5(path))
    assert [r.name for r in back] == ["acetate", "methanol"]
    for a, b in zip(records, back, strict=True):
        assert_same_record(a, b)
    assert tmp_files(tmp_path) == []
    # stored in the SPICE units and types, compressed
    with h5py.File(path) as handle:
        group = handle["acetate"]
        assert group["atomic_numbers"].dtype == np.int16
        assert group["conformations"].compression == "gzip"
        assert group["smiles"][0].decode() == ACETATE
        np.testing.assert_allclose(
            group["dft_total_energy"][()], records[0].energies / HARTREE_TO_KJ_PER_MOL, rtol=1e-15
        )
        np.testing.assert_allclose(
            group["dft_total_gradient"][()],
            -records[0].forces / HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM,
            rtol=1e-15,
        )
        assert group.attrs["total_charge"] == -1
    # reading a subset by name, in the order asked
    assert [r.name for r in read_spice_hdf5(path, names=["methanol"])] == ["methanol"]
    with pytest.raises(KeyError):
        list(read_spice_hdf5(path, names=["nope"]))


def test_write_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "out.hdf5"
    write_spice_hdf5(path, [make_record("acetate", ACETATE)])

    def failing():  # type: ignore[no-untyped-def]
        yield make_record("methanol", METHANOL)
        raise RuntimeError("labelling crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        write_spice_hdf5(path, failing())
    assert spice_group_names(path) == ["acetate"]  # the old file is untouched
    assert tmp_files(tmp_path) == []
    with pytest.raises(DataFormatError, match="two records"):
        write_spice_hdf5(path, [make_record("a", ACETATE), make_record("a", METHANOL)])
    with pytest.raises(DataFormatError, match="/"):
        write_spice_hdf5(path, [make_record("C/C=C/C", METHANOL)])
    assert spice_group_names(path) == ["acetate"]


def test_appending_writer_resumes_and_skips(tmp_path: Path) -> None:
    path = tmp_path / "build.hdf5"
    first = make_record("acetate", ACETATE, seed=3)
    second = make_record("methanol", METHANOL, seed=4)
    with SpiceWriter(path) as writer:
        assert len(writer) == 0
        writer.write(first)
        assert "acetate" in writer
    assert spice_group_names(path) == ["acetate"]
    # a restarted build: skip what is there, add the rest
    todo = [first, second]
    with SpiceWriter(path) as writer:
        assert writer.names == frozenset({"acetate"})
        written = []
        for record in todo:
            if record.name not in writer:
                writer.write(record)
                written.append(record.name)
        with pytest.raises(DataFormatError, match="already holds"):
            writer.write(first)
        writer.write(make_record("acetate", ACETATE, seed=5), overwrite=True)
    assert written == ["methanol"]
    back = {r.name: r for r in read_spice_hdf5(path)}
    assert_same_record(back["methanol"], second)
    assert_same_record(back["acetate"], make_record("acetate", ACETATE, seed=5))
    assert tmp_files(tmp_path) == []


def test_appending_writer_publishes_only_complete_commits(tmp_path: Path) -> None:
    path = tmp_path / "build.hdf5"
    write_spice_hdf5(path, [make_record("acetate", ACETATE)])
    writer = SpiceWriter(path, commit_interval_s=3600.0)
    writer.write(make_record("methanol", METHANOL))
    # until a commit the file on disk is the old, complete one (what a killed build leaves)
    assert spice_group_names(path) == ["acetate"]
    writer.commit()
    assert spice_group_names(path) == ["acetate", "methanol"]
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(make_record("other", METHANOL))
    # leaving the block through an exception still keeps the complete groups
    with pytest.raises(RuntimeError), SpiceWriter(path) as again:
        again.write(make_record("third", METHANOL))
        raise RuntimeError("boom")
    assert spice_group_names(path) == ["acetate", "methanol", "third"]
    assert tmp_files(tmp_path) == []


def test_read_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(read_spice_hdf5(tmp_path / "missing.hdf5"))
    not_hdf5 = tmp_path / "text.hdf5"
    not_hdf5.write_text("hello")
    with pytest.raises(DataFormatError, match="HDF5"):
        list(read_spice_hdf5(not_hdf5))
    broken = tmp_path / "broken.hdf5"
    with h5py.File(broken, "w") as handle:
        handle.create_group("mol").create_dataset("smiles", data=[b"C"])
    with pytest.raises(DataFormatError, match="conformations"):
        list(read_spice_hdf5(broken))


def test_is_supported_reasons() -> None:
    assert is_supported(make_record("acetate", ACETATE)) is None

    def reason(smiles: str, z: list[int], charge: int = 0) -> str:
        n = len(z)
        record = QMRecord("x", smiles, z, np.zeros((1, n, 3)), np.zeros(1), np.zeros((1, n, 3)),
                          "x", total_charge=charge)
        why = is_supported(record)
        assert why is not None
        return why

    assert "unpaired" in reason("[C:1]([H:2])([H:3])[H:4]", [6, 1, 1, 1])
    assert "disconnected" in reason("[O:1]([H:2])[H:3].[O:4]([H:5])[H:6]", [8, 1, 1, 8, 1, 1])
    assert "Si" in reason("[Si:1]([H:2])([H:3])([H:4])[H:5]", [14, 1, 1, 1, 1])
    assert "atoms" in reason(METHANOL, [6, 8, 1, 1, 1, 6])
    assert "charge" in reason(ACETATE, [6, 6, 8, 8, 1, 1, 1], charge=0)
    assert "no mapped SMILES" in reason("", [8, 1, 1])
    assert total_charge_from_smiles("[NH4+].[Cl-].[Na+]") == 1


# --------------------------------------------------------------------------------------------
# The real SPICE file
# --------------------------------------------------------------------------------------------


def _spice_sample() -> Path:
    shared = shared_dir()
    path = None if shared is None else shared / "qm-reference/spice_sample/SPICE-1.1.4_n2.hdf5"
    if path is None or not path.is_file():
        pytest.skip("shared SPICE sample (shared/qm-reference/spice_sample) is not available")
    return path


def test_real_spice_sample_reads_in_openmm_units() -> None:
    path = _spice_sample()
    records = {r.name: r for r in read_spice_hdf5(path)}
    assert set(records) == {"103147721", "C#C.[Na+]"}
    amine = records["103147721"]
    assert (amine.n_atoms, amine.n_conformations) == (27, 50)
    assert amine.level_of_theory == SPICE_LEVEL_OF_THEORY
    assert amine.total_charge == 1  # [N+] in the mapped SMILES
    assert amine.subset.startswith("SPICE PubChem")
    assert is_supported(amine) is None
    with h5py.File(path) as handle:
        raw = handle["103147721"]
        energy_hartree = raw["dft_total_energy"][()]
        gradient = raw["dft_total_gradient"][()].astype(np.float64)
        bohr = raw["conformations"][()].astype(np.float64)
    assert -400.0 < energy_hartree[0] < -300.0  # hartree, as stored
    np.testing.assert_allclose(amine.energies, energy_hartree * HARTREE_TO_KJ_PER_MOL, rtol=1e-14)
    assert -1.1e6 < amine.energies.min() < amine.energies.max() < -0.9e6  # kJ/mol
    np.testing.assert_allclose(amine.conformations, bohr * BOHR_TO_NM, rtol=1e-14)
    np.testing.assert_allclose(amine.forces, -gradient * HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM,
                               rtol=1e-14)
    # geometry in nm: C-H bonds about 0.109 nm
    z, xyz = amine.atomic_numbers, amine.conformations
    lengths = [
        np.linalg.norm(xyz[:, i] - xyz[:, j], axis=-1)
        for i in np.flatnonzero(z == 6) for j in np.flatnonzero(z == 1)
        if np.linalg.norm(xyz[0, i] - xyz[0, j]) < 0.13
    ]
    assert len(lengths) == 15  # 18 H: 15 on carbon, 3 on the ammonium N
    assert 0.105 < np.mean(lengths) < 0.113
    # forces: sensible size (hundreds of kJ/mol/nm) and sign (minus the gradient)
    magnitude = np.linalg.norm(amine.forces, axis=-1).mean()
    assert 100.0 < magnitude < 3000.0
    assert restoring_force_correlation(amine) < -0.5
    # the salt reads fine; it is the consumer who skips it
    salt = records["C#C.[Na+]"]
    assert salt.total_charge == 1 and salt.n_atoms == 5
    reason = is_supported(salt)
    assert reason is not None and "Na" in reason


def test_real_spice_sample_survives_our_round_trip(tmp_path: Path) -> None:
    records = list(read_spice_hdf5(_spice_sample()))
    out = tmp_path / "copy.hdf5"
    write_spice_hdf5(out, records)
    for a, b in zip(records, read_spice_hdf5(out), strict=True):
        assert_same_record(a, b)


def test_single_precision_storage(tmp_path: Path) -> None:
    record = make_record("acetate", ACETATE, n_conf=4)
    path = tmp_path / "f32.h5"
    write_spice_hdf5(path, [record], single_precision=True)
    with h5py.File(path) as handle:
        assert handle["acetate/conformations"].dtype == np.float32
        assert handle["acetate/dft_total_energy"].dtype == np.float64
    (back,) = list(read_spice_hdf5(path))
    np.testing.assert_allclose(back.conformations, record.conformations, rtol=1e-6)
    np.testing.assert_allclose(back.forces, record.forces, rtol=1e-5, atol=1e-6)
    assert np.array_equal(back.energies, record.energies)
