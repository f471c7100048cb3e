"""The S66x8 dimer benchmark: reader, MM curves through ForceField templates, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_dir

from espaloma_like.benchmark.dimers import (
    SEPARATIONS,
    DimerBenchmarkConfig,
    curve_energies,
    curve_errors,
    read_s66x8,
    run_dimer_benchmark,
)
from espaloma_like.exceptions import DataFormatError
from espaloma_like.units import HARTREE_TO_KJ_PER_MOL, KJ_TO_KCAL

# one water at the origin; the other is the same water shifted along x (angstrom)
_WATER = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])
_COULOMB = 138.935456  # kJ/mol nm e^-2, OpenMM's ONE_4PI_EPS0


def _write_dimer_file(path: Path, deform: bool = False) -> np.ndarray:
    """A one-record S66x8-layout file: a water dimer at 8 separations; returns (8, 6, 3) Å."""
    import h5py

    shift = np.array([[2.9 * s / 0.9 + 0.3, 0.2, 0.1] for s in SEPARATIONS])
    xyz = np.stack([np.vstack([_WATER, _WATER + d]) for d in shift])
    if deform:
        xyz[3, 1, 0] += 0.05  # an O-H bond of the first water stretched at one point
    with h5py.File(path, "w") as f:
        g = f.create_group("s66x8/mol00")
        g["species"] = np.array([b"O", b"H", b"H", b"O", b"H", b"H"])
        g["coordinates"] = xyz.astype(np.float32)
        g["energies"] = -152.0 - 0.01 * np.exp(-np.arange(8.0))
    return xyz.astype(np.float32).astype(np.float64)


def _pair_energy(pair, positions_nm: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    """Intermolecular Coulomb + Lorentz-Berthelot LJ between the two waters, kJ/mol."""
    q = np.concatenate([p.charges for p in pair])
    sigma = np.concatenate([p.parameters.nonbonded.sigma.double().numpy() for p in pair])
    eps = np.concatenate([p.parameters.nonbonded.epsilon.double().numpy() for p in pair])
    total = 0.0
    for i in range(3):
        for j in range(3, 6):
            r = np.linalg.norm(positions_nm[i] - positions_nm[j])
            s = 0.5 * (sigma[i] + sigma[j])
            e = np.sqrt(eps[i] * eps[j])
            total += _COULOMB * q[i] * q[j] / r + 4 * e * ((s / r) ** 12 - (s / r) ** 6)
    return total


def test_reader_and_curve_energies_are_the_intermolecular_energy(tmp_path: Path) -> None:
    from espaloma_like.api import parametrize

    xyz = _write_dimer_file(tmp_path / "s66x8.h5")
    (curve,) = read_s66x8(tmp_path / "s66x8.h5")
    assert curve.category == "hydrogen bonds"
    assert [g.smiles for g in curve.monomers] == ["O", "O"]
    assert [i.tolist() for i in curve.atom_indices] == [[0, 1, 2], [3, 4, 5]]
    np.testing.assert_allclose(curve.positions, xyz * 0.1)
    expected_qm = -0.01 * (np.exp(-np.arange(8.0)) - np.exp(-7.0)) * HARTREE_TO_KJ_PER_MOL
    np.testing.assert_allclose(curve.energies, expected_qm, atol=1e-6)

    with pytest.warns(UserWarning):  # water lies outside the model's training domain
        pair = [parametrize(g) for g in curve.monomers]
    mm = curve_energies(curve, pair)
    # rigid monomers: the MM curve is the intermolecular energy alone, relative to 2.0 x (to
    # 1e-4 kJ/mol: float32 coordinates leave the monomers rigid to ~1e-7 A only)
    direct = np.array([_pair_energy(pair, x) for x in curve.positions])
    np.testing.assert_allclose(mm, direct - direct[-1], atol=1e-4)
    assert mm[-1] == 0.0

    errors = curve_errors(mm, curve.energies)
    difference = (mm - curve.energies) * KJ_TO_KCAL
    assert errors["rmse"] == pytest.approx(np.sqrt(np.mean(difference[:-1] ** 2)))
    assert errors["equilibrium_error"] == pytest.approx(difference[2])
    assert errors["wall_error"] == pytest.approx(difference[0])


def test_reader_rejects_deforming_monomers_and_missing_files(tmp_path: Path) -> None:
    _write_dimer_file(tmp_path / "bad.h5", deform=True)
    with pytest.raises(DataFormatError, match="deforms along the curve"):
        read_s66x8(tmp_path / "bad.h5")
    with pytest.raises(DataFormatError, match="no S66x8 file"):
        read_s66x8(tmp_path / "absent.h5")


def test_benchmark_writes_json_and_report(tmp_path: Path) -> None:
    _write_dimer_file(tmp_path / "s66x8.h5")
    config = DimerBenchmarkConfig(out=tmp_path / "out", data=tmp_path / "s66x8.h5",
                                  models=("default",), baselines=())
    result = run_dimer_benchmark(config, progress=False)
    saved = json.loads((tmp_path / "out" / "dimers.json").read_text())
    (row,) = saved["curves"]["model"]
    assert row["monomers"] == ["O", "O"] and row["out_of_domain"] is True
    summary = saved["summary"]["model"]
    assert summary["all"]["n"] == summary["hydrogen bonds"]["n"] == 1
    assert summary["all"]["rmse"] == pytest.approx(row["rmse"])
    assert summary["all"]["mean_wall_error"] == pytest.approx(row["wall_error"])
    assert result["summary"] == saved["summary"]
    report = (tmp_path / "out" / "dimers.md").read_text()
    assert f"| model | {row['rmse']:.2f} | {row['rmse']:.2f} | - | - |" in report


def test_real_s66x8_file_units_and_categories() -> None:
    shared = shared_dir()
    path = None if shared is None else (
        shared / "qm-reference" / "comp6_s66x8" / "s66x8_wb97x6-31gd.h5")
    if path is None or not path.is_file():
        pytest.skip("S66x8 reference file not present (../shared/qm-reference/comp6_s66x8)")
    curves = read_s66x8(path)
    counts = {c: sum(x.category == c for x in curves)
              for c in ("hydrogen bonds", "dispersion", "mixed")}
    assert counts == {"hydrogen bonds": 23, "dispersion": 23, "mixed": 20}
    water = curves[0]
    assert [g.smiles for g in water.monomers] == ["O", "O"]
    # hartree read as such: the water dimer binds by ~5-7 kcal/mol at wB97X/6-31G(d)
    assert -7.5 < water.energies.min() * KJ_TO_KCAL < -5.0
    assert [g.smiles for g in curves[23].monomers] == ["c1ccccc1", "c1ccccc1"]
