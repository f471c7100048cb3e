"""``espaloma-like benchmark``: both quick benchmarks through the CLI, then the figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import shared_dir

from espaloma_like.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def test_figure_without_benchmark_output_is_a_clear_error(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "figure", "--out", str(tmp_path)]) == 1
    assert "missing" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_benchmarks_through_the_cli_draw_the_speed_accuracy_figure(tmp_path: Path) -> None:
    found = shared_dir()
    shared = found / "qm-reference" if found is not None else tmp_path / "absent"
    common = ["--quick", "--out", str(tmp_path)]
    assert main(["benchmark", "speed", *common]) == 0
    assert not (tmp_path / "speed_accuracy.png").exists()  # needs both outputs
    assert main(["benchmark", "accuracy", *common, "--data", str(ROOT / "data/espaloma_like_gfn2xtb.h5"),
                 "--shared", str(shared)]) == 0
    png = tmp_path / "speed_accuracy.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    points = {p["method"]: p for p in json.loads(png.with_suffix(".json").read_text())}
    assert {"model", "sage", "gaff", "gfn2_xtb"} <= set(points)
    for method in ("model", "sage", "gaff"):
        assert points[method]["md_ms_per_step"] > 0 and points[method]["force_rmse"] > 0
        assert points[method]["torsion_profile_rmse"] > 0
    # QM costs orders of magnitude more per step than MM
    assert points["gfn2_xtb"]["md_ms_per_step"] > 10 * points["gaff"]["md_ms_per_step"]
    if "ani2x" in points:  # cost only: no accuracy without its trained weights
        assert points["ani2x"]["force_rmse"] is None
