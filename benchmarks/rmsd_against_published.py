"""Where a model's conformer-benchmark RMSD sits against Sage 2.0.0's published rows.

    .venv/bin/python benchmarks/rmsd_against_published.py RESULTS_DIR METHOD [--out STEM]

Reads the rows ``espaloma-like benchmark conformers`` wrote for ``METHOD`` (as named in its
table, e.g. ``model:runs/form_intramolecular_nonbonded/best.pt``) in
``RESULTS_DIR/conformers_results.jsonl``, for the records of that run's report
(``conformers.json``), and OpenFF's published Sage 2.0.0 rows of the same
records, and reports RMSD quantiles of both, how each method fares on the other's conformers
that slid more than 0.75 A, and the medians of every metric. Validation or test rows alike;
nothing is trained or selected here. Writes ``STEM.{json,md}`` (default
``RESULTS_DIR/rmsd_against_published``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
SLID = 0.75  # A: a conformer that left its DFT basin
METRICS = ("ddE", "rmsd", "tfd", "bond_rmsd", "angle_rmsd", "dihedral_rmsd", "improper_rmsd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("method")
    parser.add_argument("--industry", type=Path,
                        default=Path("../shared/qm-reference/openff_industry_b3lyp"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows_path = args.results / "conformers_results.jsonl"
    if not rows_path.is_file() or not (args.results / "conformers.json").is_file():
        parser.error(f"no {rows_path} (run espaloma-like benchmark conformers first)")
    if not args.industry.is_dir():
        parser.error(f"no industry data folder {args.industry}")

    from espaloma_like._io import atomic_write_text
    from espaloma_like.benchmark.conformers import read_published_rows

    # the records of the run's report: the JSONL cache can hold rows of earlier, larger runs
    scored = {r["record_id"] for r in json.loads(
        (args.results / "conformers.json").read_text())["records"]}
    ours: dict[str, dict[str, float | None]] = {}
    for line in rows_path.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("method") == args.method:
            ours.update({r["record_id"]: r for r in entry.get("records", [])
                         if r["record_id"] in scored})
    if not ours:
        parser.error(f"no rows of {args.method!r} in {rows_path}")
    sources = [p.name for p in sorted(args.industry.glob("qm-*.sdf.xz"))]
    published = read_published_rows(args.industry, sources, set(ours))
    sage = next(rows for label, rows in published.items() if "2.0.0" in label)
    ids = sorted(i for i in ours if i in sage and ours[i].get("rmsd") is not None
                 and sage[i].get("rmsd") is not None)
    if not ids:
        parser.error(f"none of the {len(ours)} records of {args.method!r} has a published "
                     f"Sage 2.0.0 row in {args.industry}")

    def column(rows: dict[str, dict[str, float | None]], key: str) -> np.ndarray:
        values = [rows[i].get(key) for i in ids]
        return np.array([np.nan if v is None else v for v in values], dtype=float)

    model_rmsd, sage_rmsd = column(ours, "rmsd"), column(sage, "rmsd")
    model_slid, sage_slid = model_rmsd > SLID, sage_rmsd > SLID
    summary = {
        "method": args.method, "results": str(args.results), "conformers": len(ids),
        "rmsd_quantiles": {str(q): {"model": float(np.quantile(model_rmsd, q)),
                                    "sage_2.0.0": float(np.quantile(sage_rmsd, q))}
                           for q in QUANTILES},
        "slid": {"threshold_a": SLID,
                 "model_slid": int(model_slid.sum()), "sage_slid": int(sage_slid.sum()),
                 "both_slid": int((model_slid & sage_slid).sum()),
                 "sage_median_on_model_slid": float(np.median(sage_rmsd[model_slid])),
                 "model_median_on_sage_slid": float(np.median(model_rmsd[sage_slid]))},
        "medians": {key: {"model": float(np.nanmedian(np.abs(column(ours, key)) if key == "ddE"
                                                      else column(ours, key))),
                          "sage_2.0.0": float(np.nanmedian(np.abs(column(sage, key)) if key == "ddE"
                                                           else column(sage, key)))}
                    for key in METRICS},
        "model_closer": float(np.mean(model_rmsd < sage_rmsd)),
    }
    stem = args.out or args.results / "rmsd_against_published"
    atomic_write_text(stem.with_suffix(".json"), json.dumps(summary, indent=1) + "\n")
    q = summary["rmsd_quantiles"]
    slid = summary["slid"]
    lines = [
        f"# RMSD of `{args.method}` against Sage 2.0.0's published rows", "",
        f"`python benchmarks/rmsd_against_published.py {args.results} '{args.method}'`: "
        f"{len(ids)} conformers of `{args.results}` with a published Sage 2.0.0 row.", "",
        "| RMSD quantile (Å) | " + " | ".join(q) + " |", "|---|" + "---|" * len(q),
        "| model | " + " | ".join(f"{v['model']:.3f}" for v in q.values()) + " |",
        "| Sage 2.0.0 | " + " | ".join(f"{v['sage_2.0.0']:.3f}" for v in q.values()) + " |", "",
        f"Conformers more than {SLID} Å from the DFT minimum after minimization: model "
        f"{slid['model_slid']}, Sage {slid['sage_slid']}, both {slid['both_slid']}; on the "
        f"model's, Sage's median RMSD is {slid['sage_median_on_model_slid']:.3f} Å; on Sage's, "
        f"the model's is {slid['model_median_on_sage_slid']:.3f} Å. Model closer than Sage on "
        f"{summary['model_closer']:.0%} of the conformers.", "",
        "| median | model | Sage 2.0.0 |", "|---|---|---|",
        *(f"| {key}{' (abs)' if key == 'ddE' else ''} | {v['model']:.4f} | {v['sage_2.0.0']:.4f} |"
          for key, v in summary["medians"].items()),
    ]
    atomic_write_text(stem.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
