"""The accuracy benchmark at its quick size: output files, JSON structure, sane numbers.

One run (module fixture) on the committed dataset; the external section uses
``../shared/qm-reference`` when present and must record an explicit skip otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import shared_dir

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "espaloma_like_gfn2xtb.h5"
METHODS = ("model", "sage", "gaff")
SUMMARY_KEYS = ("force_rmse", "energy_rmse", "torsion_profile_rmse", "geometry_rmsd_median",
                "geometry_delta_e_median")


def _positive(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    if not DATA.is_file():
        pytest.skip(f"dataset {DATA} not present")
    from espaloma_like.benchmark.accuracy import run_accuracy_benchmark

    found = shared_dir()
    # absent shared data: a path that does not exist, so the skip branch is exercised
    shared = found / "qm-reference" if found is not None else ROOT.parent / "shared" / "qm-reference"
    out = tmp_path_factory.mktemp("accuracy")
    return out, run_accuracy_benchmark(out, quick=True, data=DATA, shared=shared, progress=False)


@pytest.mark.slow
def test_files_written(run: tuple[Path, dict[str, Any]]) -> None:
    out, result = run
    for name in ("accuracy.json", "accuracy.md", "parity_energy.png", "parity_force.png",
                 "force_error_distribution.png", "torsion_profiles.png"):
        path = out / name
        assert path.is_file() and path.stat().st_size > 0, name
        assert name in result["files"]
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "accuracy.json").read_text()) == result
    markdown = (out / "accuracy.md").read_text()
    assert "`espaloma-like benchmark accuracy --quick`" in markdown
    for heading in ("## Summary", "## 1. Held-out", "## 2. Conformation", "## 3. Geometries",
                    "## 4. External", "By subset"):
        assert heading in markdown


@pytest.mark.slow
def test_provenance_and_timings(run: tuple[Path, dict[str, Any]]) -> None:
    _, result = run
    assert result["command"] == "espaloma-like benchmark accuracy --quick"
    assert result["quick"] is True
    assert result["date"] and result["machine"]["cores"]
    assert "git_commit" in result
    for section in ("held_out", "conformation_kinds", "geometry", "external", "plots", "total"):
        assert result["timings"][section] >= 0.0
    assert result["timings"]["total"] < 600


@pytest.mark.slow
def test_summary(run: tuple[Path, dict[str, Any]]) -> None:
    summary = run[1]["summary"]
    for method in METHODS:
        for key in SUMMARY_KEYS[:4]:
            assert _positive(summary[method][key]), (method, key, summary[method][key])
        assert math.isfinite(summary[method]["geometry_delta_e_median"])
        # force errors against GFN2-xTB: kcal/mol/Å, of order 1-30 for any sane force field
        assert 0.5 < summary[method]["force_rmse"] < 50
    for ratio in ("model/sage", "model/gaff"):
        for key in ("force_rmse", "energy_rmse", "torsion_profile_rmse"):
            value = summary["ratios"][ratio][key]
            assert isinstance(value, float) and math.isfinite(value) and value > 0
    assert summary["n"]["torsion_profiles"] >= 1
    assert summary["n"]["geometry_molecules"] == 2


@pytest.mark.slow
def test_sections(run: tuple[Path, dict[str, Any]]) -> None:
    result = run[1]
    held_out = result["held_out"]
    assert set(held_out["overall"]) == set(METHODS)
    assert held_out["by_subset"]
    for per_method in held_out["by_subset"].values():
        assert set(per_method) == set(METHODS)
        assert all(_positive(per_method[m]["force_rmse"]) for m in METHODS)
    assert held_out["md_stability"] is None  # no MD in this benchmark
    # the same conformations for every method
    assert len({held_out["overall"][m]["n_conformations"] for m in METHODS}) == 1

    kinds = result["conformation_kinds"]
    assert "scan" in kinds["n_force_components_by_kind"]
    for method in METHODS:
        assert all(_positive(v) for v in kinds["force_rmse_by_kind"][method].values())
    assert kinds["scans"] and all(s["n_points"] >= 3 for s in kinds["scans"])

    geometry = result["geometry"]
    assert geometry["n_molecules"] + len(geometry["failures"]) == 2
    for row in geometry["molecules"]:
        assert set(row["rmsd"]) == set(METHODS)
        assert all(v >= 0 for v in row["rmsd"].values())
    for baseline in ("sage", "gaff"):  # the paired summary is recomputable from the rows
        differences = [r["rmsd"]["model"] - r["rmsd"][baseline] for r in geometry["molecules"]]
        paired = geometry["paired"][baseline]
        assert paired["median_rmsd_difference"] == pytest.approx(float(np.median(differences)))
        assert paired["model_closer_fraction"] == pytest.approx(
            float(np.mean(np.array(differences) < 0)))

    external = result["external"]
    if "skipped" in external:
        assert isinstance(external["skipped"], str) and external["skipped"]
    else:
        assert external["sets"]
        for name, d in external["sets"].items():
            assert "error" not in d, (name, d.get("error"))
            assert all(_positive(d["overall"][m]["force_rmse"]) for m in METHODS)
