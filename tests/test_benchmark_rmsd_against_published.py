"""benchmarks/rmsd_against_published.py on a small synthetic results folder and metrics file."""

from __future__ import annotations

import csv
import io
import json
import lzma
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "rmsd_against_published.py"
METHOD = "model:some/best.pt"


def _write_inputs(tmp_path: Path, model_rmsd: list[float], sage_rmsd: list[float]) -> tuple[Path, Path]:
    industry = tmp_path / "industry"
    industry.mkdir()
    (industry / "qm-001.sdf.xz").write_bytes(b"")  # only its name is read
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["Force Field", "SMILES", "Conformer Idx", "RMSD", "Bond RMSD", "Angle RMSD",
                     "Dihedral RMSD", "Improper RMSD", "TDF", "FB OBJECTIVE", "Record ID", "ddE"])
    for n, value in enumerate(sage_rmsd):
        writer.writerow(["OpenFF 2.0.0", "C", n, value, 0.01, 2.0, 8.0, 1.5, 0.04, 0.0, str(n), -1.0])
        writer.writerow(["GAFF 2.11 + AM1BCC", "C", n, 9.9, 0.01, 2.0, 8.0, 1.5, 0.04, 0.0, str(n), 5.0])
    with lzma.open(industry / "openff-metrics-001.csv.xz", "wt") as handle:
        handle.write(text.getvalue())
    results = tmp_path / "results"
    results.mkdir()
    records = [{"record_id": str(n), "ddE": 0.5, "rmsd": value, "tfd": 0.03, "bond_rmsd": 0.004,
                "angle_rmsd": 1.0, "dihedral_rmsd": 7.0, "improper_rmsd": 1.6}
               for n, value in enumerate(model_rmsd)]
    extra = {"record_id": "999", "ddE": 0.0, "rmsd": 50.0}  # a cached row the report did not score
    rows = [{"molecule": "m", "method": METHOD, "identity": "x", "records": [*records, extra]},
            {"molecule": "m", "method": "model:other", "identity": "y", "records": records}]
    (results / "conformers_results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (results / "conformers.json").write_text(json.dumps(
        {"records": [{"record_id": str(n)} for n in range(len(model_rmsd))]}))
    return industry, results


def test_quantiles_slides_and_medians(tmp_path: Path) -> None:
    model = [0.1, 0.2, 0.3, 1.0, 2.0]
    sage = [0.2, 0.3, 0.4, 0.5, 1.5]
    industry, results = _write_inputs(tmp_path, model, sage)
    out = tmp_path / "report"
    subprocess.run([sys.executable, str(SCRIPT), str(results), METHOD, "--industry",
                    str(industry), "--out", str(out)], check=True, capture_output=True)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["conformers"] == 5  # the unscored cached row (50 A) is left out
    assert summary["rmsd_quantiles"]["0.5"] == {"model": 0.3, "sage_2.0.0": 0.4}
    assert summary["slid"]["model_slid"] == 2 and summary["slid"]["sage_slid"] == 1
    assert summary["slid"]["both_slid"] == 1
    assert summary["slid"]["sage_median_on_model_slid"] == pytest.approx(1.0)  # (0.5 + 1.5) / 2
    assert summary["slid"]["model_median_on_sage_slid"] == pytest.approx(2.0)
    assert summary["model_closer"] == pytest.approx(0.6)
    assert summary["medians"]["ddE"] == {"model": 0.5, "sage_2.0.0": 1.0}  # absolute values
    assert "| model | 0.140 | 0.200 | 0.300 |" in out.with_suffix(".md").read_text()  # linear quantiles


def test_unknown_method_is_a_clear_error(tmp_path: Path) -> None:
    industry, results = _write_inputs(tmp_path, [0.1], [0.2])
    run = subprocess.run([sys.executable, str(SCRIPT), str(results), "model:nope", "--industry",
                          str(industry)], capture_output=True, text=True)
    assert run.returncode != 0 and "no rows of 'model:nope'" in run.stderr


def test_records_without_published_rows_are_a_clear_error(tmp_path: Path) -> None:
    industry, results = _write_inputs(tmp_path, [0.1, 0.2], [])  # no Sage rows at all
    run = subprocess.run([sys.executable, str(SCRIPT), str(results), METHOD, "--industry",
                          str(industry)], capture_output=True, text=True)
    assert run.returncode != 0 and "has a published Sage 2.0.0 row" in run.stderr
