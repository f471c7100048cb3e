"""Cost and difference of the dataset's AM1-BCC variant versus antechamber's default.

The dataset builder computes AM1-BCC as an sqm single point (``maxcyc=0``) at a Sage-minimized
conformer; antechamber's default (and OpenFF's AmberTools route) first optimizes the geometry at
AM1. This measures both on the same starting geometry for a few small molecules: wall time and
the RMS charge difference (e).

    .venv/bin/python benchmarks/am1bcc_single_point.py [--out benchmarks/results/am1bcc_single_point]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from espaloma_like._io import atomic_write_text

MOLECULES = ["CCO", "CC(=O)[O-]", "C[NH3+]", "CC(=O)NC", "c1ccccc1O", "CS(=O)(=O)N", "ClCC#N",
             "CC(=O)Nc1ccc(O)cc1", "CC(C)Cc1ccc(cc1)[C@H](C)C(=O)O", "COP(=O)([O-])OC"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/am1bcc_single_point")
    args = parser.parse_args()

    from espaloma_like.baselines.am1bcc import compute_am1bcc
    from espaloma_like.data.sampling import minimize, sampling_parameters
    from espaloma_like.molecule import from_smiles, generate_conformers

    rows = []
    for smiles in MOLECULES:
        graph = from_smiles(smiles)
        start = minimize(graph, generate_conformers(graph, 1, seed=0), sampling_parameters(graph))[0]
        t0 = time.perf_counter()
        optimized = compute_am1bcc(graph, positions=start, optimize=True)
        t1 = time.perf_counter()
        single = compute_am1bcc(graph, positions=start, optimize=False)
        t2 = time.perf_counter()
        rows.append({"smiles": smiles, "seconds_optimized": t1 - t0, "seconds_single_point": t2 - t1,
                     "rms_difference_e": float(np.sqrt(np.mean((optimized - single) ** 2))),
                     "max_difference_e": float(np.abs(optimized - single).max())})
    summary = {
        "command": "python benchmarks/am1bcc_single_point.py", "date": time.strftime("%Y-%m-%d"),
        "molecules": rows,
        "median_speedup": float(np.median([r["seconds_optimized"] / r["seconds_single_point"]
                                           for r in rows])),
        "median_rms_difference_e": float(np.median([r["rms_difference_e"] for r in rows])),
        "max_rms_difference_e": float(np.max([r["rms_difference_e"] for r in rows])),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".json"), json.dumps(summary, indent=2) + "\n")
    lines = ["# AM1-BCC: single point at a Sage minimum vs antechamber's AM1 optimization", "",
             f"`{summary['command']}`, {summary['date']}; same starting geometry (a Sage minimum).",
             "", "| molecule | optimized (s) | single point (s) | RMS difference (e) | max (e) |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['smiles']}` | {r['seconds_optimized']:.2f} | "
                     f"{r['seconds_single_point']:.2f} | {r['rms_difference_e']:.4f} | "
                     f"{r['max_difference_e']:.4f} |")
    lines += ["", f"Median speed-up {summary['median_speedup']:.0f}x; RMS difference median "
              f"{summary['median_rms_difference_e']:.4f} e, largest {summary['max_rms_difference_e']:.4f} e."]
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
