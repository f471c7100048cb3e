"""Two models on the accuracy benchmark's external QM sets, paired by molecule, with bootstrap CIs.

Is a difference in force RMSE between two models on an external set (SPICE sample, grappa
tripeptides, rMD17 ethanol) more than the noise of which molecules the set happens to hold?
Each model is evaluated as ``espaloma-like benchmark accuracy`` does (AM1-BCC single-point
charges, every conformation); the ratio of pooled force RMSEs (A / B) gets a 95 % interval from
resampling the set's molecules with replacement (paired: the same draw for both models).

    python benchmarks/external_paired.py default runs/gfn2xtb_default.pt \\
        --out benchmarks/results/external_paired_default_vs_xtb
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def pooled(rmse: np.ndarray, counts: np.ndarray) -> float:
    """RMSE over every force component from per-molecule RMSEs and their component counts.

    ``counts`` must count what each molecule's RMSE averages over (conformations x atoms x 3
    for forces): weighting by conformations alone would over-weight the small molecules.
    """
    return float(np.sqrt((counts * rmse**2).sum() / counts.sum()))


def paired_ratio(a: np.ndarray, b: np.ndarray, counts: np.ndarray, draws: int = 2000,
                 seed: int = 0) -> dict[str, float]:
    """Pooled RMSE ratio a / b and its bootstrap 2.5 / 97.5 % quantiles over molecules."""
    rng = np.random.default_rng(seed)
    n = len(a)
    ratios = []
    for _ in range(draws):
        pick = rng.integers(n, size=n)
        ratios.append(pooled(a[pick], counts[pick]) / pooled(b[pick], counts[pick]))
    low, high = np.percentile(ratios, [2.5, 97.5])
    return {"ratio": pooled(a, counts) / pooled(b, counts), "low": float(low), "high": float(high)}


def per_molecule_forces(model: str, records: list[Any]) -> dict[str, tuple[float, int, int]]:
    """name -> (force RMSE kcal/mol/A, conformations, force components) of ``model``."""
    from espaloma_like.api import load_model
    from espaloma_like.data.spice import write_spice_hdf5
    from espaloma_like.training.evaluate import evaluate

    with tempfile.TemporaryDirectory(prefix="external_paired_") as scratch:
        path = Path(scratch) / "set.h5"
        write_spice_hdf5(path, records)
        report = evaluate(load_model(model), [path], split="all", methods=("model",),
                          max_relative_energy_kcal=None,
                          max_force_kcal_per_a=None, num_threads=1, progress=False).to_dict()
    return {m["name"]: (m["errors"]["model"]["force_rmse"], m["n_conformations"],
                        3 * m["n_atoms"] * m["n_conformations"])
            for m in report["molecules"] if "model" in m["errors"]}


def main(argv: list[str] | None = None) -> int:
    from espaloma_like.benchmark.accuracy import _external_sets, _with_am1bcc

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_a")
    parser.add_argument("model_b")
    parser.add_argument("--shared", type=Path, default=Path("../shared/qm-reference"))
    parser.add_argument("--out", type=Path, required=True, help="output stem (.json and .md)")
    args = parser.parse_args(argv)

    sets = _external_sets(args.shared)
    if not sets:
        parser.error(f"no external QM set under {args.shared}")
    result: dict[str, Any] = {"model_a": args.model_a, "model_b": args.model_b, "sets": {}}
    lines = [f"# Force RMSE on external QM sets: `{args.model_a}` (A) against `{args.model_b}` (B)",
             "", "Force RMSE over every force component of the set (kcal/mol/A); ratio A / B "
             "with a 95 % bootstrap interval over molecules (paired, 2000 draws).", "",
             "| set | molecules | conformations | A | B | A / B (95 % interval) |",
             "|---|---|---|---|---|---|"]
    for name, records in sets.items():
        labelled = [_with_am1bcc(r) for r in records]
        a = per_molecule_forces(args.model_a, labelled)
        b = per_molecule_forces(args.model_b, labelled)
        names = sorted(set(a) & set(b))
        ra = np.array([a[n][0] for n in names])
        rb = np.array([b[n][0] for n in names])
        counts = np.array([a[n][2] for n in names], dtype=float)
        row = {"molecules": len(names), "conformations": sum(a[n][1] for n in names),
               "a": pooled(ra, counts), "b": pooled(rb, counts)}
        row.update(paired_ratio(ra, rb, counts) if len(names) > 1 else
                   {"ratio": row["a"] / row["b"], "low": None, "high": None})
        result["sets"][name] = row
        interval = ("one molecule: no interval" if row["low"] is None
                    else f"{row['low']:.3f}-{row['high']:.3f}")
        lines.append(f"| {name} | {row['molecules']} | {row['conformations']} | {row['a']:.2f} | "
                     f"{row['b']:.2f} | {row['ratio']:.3f} ({interval}) |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
