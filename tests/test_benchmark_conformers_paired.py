"""benchmarks/conformers_paired.py: the benchmark's statistics, pairing, identities, intervals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "conformers_paired.py"
COMMITTED = ROOT / "benchmarks" / "results" / "conformers_validation_xtbforces"


def _script():  # type: ignore[no-untyped-def]
    return load_script(SCRIPT)


def _records(dde: list[float], rmsd: list[float]) -> list[dict[str, Any]]:
    """A molecule's conformers; the first is the reference (ddE None, as the benchmark writes)."""
    return [{"ddE": None if i == 0 else d, "rmsd": r, "tfd": r / 10}
            for i, (d, r) in enumerate(zip([0.0, *dde], rmsd, strict=True))]


def _write(path: Path, entries: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries) + '{"cut short', encoding="utf-8")


def test_statistics_are_the_benchmarks_pooled_over_conformers() -> None:
    script = _script()
    molecules = [_records([1.0, -3.0], [0.1, 0.2, 0.3]), _records([2.0], [0.5, 0.7])]
    # |ddE| of every non-reference conformer: (1 + 3 + 2) / 3; median RMSD of all five
    assert script.statistic(molecules, "mean_abs_ddE") == pytest.approx(2.0)
    assert script.statistic(molecules, "median_rmsd") == pytest.approx(0.3)
    assert script.statistic(molecules, "median_tfd") == pytest.approx(0.03)


def test_interval_is_tight_for_a_uniform_change_and_brackets_a_noisy_one() -> None:
    script = _script()
    rng = np.random.default_rng(0)
    b = [_records(list(rng.uniform(0.5, 3.0, size=4)), list(rng.uniform(0.1, 1.0, size=5)))
         for _ in range(30)]
    shifted = [[{**r, "rmsd": r["rmsd"] - 0.05} for r in records] for records in b]
    uniform = script.paired_difference(shifted, b, "median_rmsd", draws=300)
    assert uniform["difference"] == pytest.approx(-0.05)
    assert uniform["low"] == pytest.approx(-0.05) and uniform["high"] == pytest.approx(-0.05)
    noisy = [[{**r, "ddE": None if r["ddE"] is None else r["ddE"] * rng.uniform(0.5, 1.5)}
              for r in records] for records in b]
    result = script.paired_difference(noisy, b, "mean_abs_ddE", draws=300)
    assert result["low"] < result["difference"] < result["high"]
    assert script.molecules_lower(shifted, b, "median_rmsd") == {"lower": 30, "equal": 0, "higher": 0}


def test_pairs_by_molecule_and_reads_each_label_at_its_newest_identity(tmp_path: Path) -> None:
    script = _script()
    old = {"method": "model", "identity": "sha256:old"}
    new = {"method": "model", "identity": "sha256:new"}
    base = {"method": "model:b.pt", "identity": "sha256:b"}
    _write(tmp_path / "r.jsonl", [
        {**old, "molecule": "m1", "records": _records([9.0], [9.0, 9.0])},
        {**base, "molecule": "m1", "records": _records([2.0], [0.4, 0.4])},
        {**base, "molecule": "m2", "records": _records([2.0], [0.4, 0.4])},
        {**base, "molecule": "m3", "records": _records([2.0], [0.4, 0.4])},
        {**new, "molecule": "m1", "records": _records([1.0], [0.2, 0.2])},
        {**new, "molecule": "m2", "records": _records([1.0], [0.2, 0.2])},
    ])
    result = script.compare(tmp_path / "r.jsonl", "model", "model:b.pt", draws=50)
    assert result["n_molecules"] == 2 and result["older_entries_left_out"] == 1
    assert result["statistics"]["mean_abs_ddE"]["a"] == pytest.approx(1.0)
    assert result["statistics"]["mean_abs_ddE"]["difference"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match=r"no results for 'sage-2\.2\.1'"):
        script.compare(tmp_path / "r.jsonl", "sage-2.2.1", "model", draws=50)


def test_cli_reproduces_the_committed_benchmark_summary(tmp_path: Path) -> None:
    """On a committed results file, A's and B's values are the benchmark report's own."""
    script = _script()
    labels = ["model:runs/form_intramolecular_nonbonded_geometry_retargeted/best.pt",
              "model:runs/form_intramolecular_nonbonded_geometry_xtbforces/best.pt"]
    assert script.main([str(COMMITTED / "conformers_results.jsonl"), *labels, "--draws", "100",
                        "--out", str(tmp_path / "paired")]) == 0
    result = json.loads((tmp_path / "paired.json").read_text())
    summary = json.loads((COMMITTED / "conformers.json").read_text())["summary"]["all"]
    for key, label in zip(("a", "b"), labels, strict=True):
        for name in ("mean_abs_ddE", "median_rmsd", "median_tfd"):
            assert result["statistics"][name][key] == pytest.approx(summary[label][name])
    assert "| median RMSD (Å) |" in (tmp_path / "paired.md").read_text()


def test_cli_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _script().main([str(tmp_path / "missing.jsonl"), "a", "b", "--out", str(tmp_path / "x")])
    assert "no results file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _script().main([str(COMMITTED / "conformers_results.jsonl"), "a", "b", "--draws", "0",
                        "--out", str(tmp_path / "x")])
    assert "--draws must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
