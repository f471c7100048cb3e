"""Torsion-profile benchmark on the package's own DFT scans, per charge class."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from espaloma_like.benchmark.torsions import TorsionBenchmark, charge_class

SCANS = Path(__file__).resolve().parents[1] / "data" / "espaloma_like_b3lyp_scans.h5"


def test_charge_class_from_the_net_charge() -> None:
    assert charge_class("CC(=O)[O-]") == "anion"
    assert charge_class("C[NH3+]") == "cation"
    assert charge_class("[NH3+]CC(=O)[O-]") == "neutral"  # zwitterion: net charge 0
    assert charge_class("CCO") == "neutral"


def test_means_per_charge_class_and_markdown() -> None:
    scans = [
        {"name": "a", "smiles": "CC(=O)[O-]", "torsion": "0-1-2-3", "charge_class": "anion",
         "rmse": {"m": 1.0, "sage": 3.0}},
        {"name": "b", "smiles": "CC[NH3+]", "torsion": "0-1-2-3", "charge_class": "cation",
         "rmse": {"m": 2.0, "sage": 1.0}},
        {"name": "c", "smiles": "CCC(=O)[O-]", "torsion": "0-1-2-3", "charge_class": "anion",
         "rmse": {"m": 3.0, "sage": 5.0}},
    ]
    bench = TorsionBenchmark(("m", "sage"), scans, [])
    assert bench.mean_rmse("m") == pytest.approx(2.0)
    assert bench.mean_rmse("sage", "anion") == pytest.approx(4.0)
    assert math.isnan(bench.mean_rmse("m", "neutral"))
    summary = bench.summary()
    assert summary["scans_by_charge_class"] == {"anion": 2, "cation": 1, "neutral": 0}
    markdown = bench.to_markdown()
    assert "| m | 2.00 | 2.00 | 2.00 | - |" in markdown


@pytest.mark.slow
@pytest.mark.skipif(not SCANS.is_file(), reason="data/espaloma_like_b3lyp_scans.h5 not built")
def test_torsion_benchmark_on_the_dft_scans(tmp_path: Path) -> None:
    from espaloma_like.benchmark.torsions import run_torsion_benchmark

    bench = run_torsion_benchmark(SCANS, ["default"], tmp_path, progress=False, max_molecules=2)
    assert bench.methods == ("default", "sage", "gaff")
    assert len(bench.scans) == 2
    for scan in bench.scans:
        assert all(0.0 <= scan["rmse"][m] < 20.0 for m in bench.methods)
    written = json.loads((tmp_path / "torsions.json").read_text())
    assert written["n_scans"] == len(bench.scans)
    assert (tmp_path / "torsions.md").read_text().startswith("# Torsion profiles")
