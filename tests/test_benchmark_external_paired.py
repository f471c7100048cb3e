"""benchmarks/external_paired.py: pooled RMSEs, the paired bootstrap, and a run on the shared sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "external_paired.py"


def _script():  # type: ignore[no-untyped-def]
    return load_script(SCRIPT)


def test_pooled_rmse_weighs_molecules_by_their_conformations() -> None:
    script = _script()
    assert script.pooled(np.array([1.0, 3.0]), np.array([3.0, 1.0])) == pytest.approx(np.sqrt(3.0))


def test_pooled_rmse_from_component_counts_is_the_rmse_of_every_component() -> None:
    """Molecules of different sizes: weights are force components, not conformations."""
    script = _script()
    rng = np.random.default_rng(1)
    errors = [rng.normal(size=(c, n, 3)) * scale for c, n, scale in ((4, 30, 1.0), (4, 5, 3.0))]
    rmse = np.array([np.sqrt((e**2).mean()) for e in errors])
    components = np.array([e.size for e in errors], dtype=float)
    everything = np.concatenate([e.ravel() for e in errors])
    assert script.pooled(rmse, components) == pytest.approx(np.sqrt((everything**2).mean()))


def test_paired_ratio_interval_brackets_the_ratio_and_is_tight_for_a_uniform_change() -> None:
    script = _script()
    rng = np.random.default_rng(0)
    b = rng.uniform(5.0, 10.0, size=20)
    counts = rng.integers(5, 15, size=20).astype(float)
    uniform = script.paired_ratio(1.1 * b, b, counts)
    assert uniform["ratio"] == pytest.approx(1.1)
    assert uniform["low"] == pytest.approx(1.1) and uniform["high"] == pytest.approx(1.1)
    noisy = script.paired_ratio(b * rng.uniform(0.8, 1.4, size=20), b, counts)
    assert noisy["low"] < noisy["ratio"] < noisy["high"]
    assert noisy["high"] - noisy["low"] > 0.05


def test_no_external_sets_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _script().main(["default", "portable", "--shared", str(tmp_path), "--out", str(tmp_path / "x")])
    assert "no external QM set" in capsys.readouterr().err


def test_runs_on_the_shared_sets(tmp_path: Path) -> None:
    from conftest import shared_dir

    shared = shared_dir()
    if shared is None or not (shared / "qm-reference" / "grappa_tripeptides").is_dir():
        pytest.skip("../shared/qm-reference (external QM sets) is not present")
    out = tmp_path / "paired"
    assert _script().main(["default", "default", "--shared", str(shared / "qm-reference"),
                           "--out", str(out)]) == 0
    sets = json.loads(out.with_suffix(".json").read_text())["sets"]
    tripeptides = sets["grappa_tripeptides"]
    assert tripeptides["molecules"] == 19
    assert tripeptides["ratio"] == pytest.approx(1.0)  # a model against itself
    assert tripeptides["low"] == pytest.approx(1.0) and tripeptides["high"] == pytest.approx(1.0)
