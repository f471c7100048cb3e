"""Predicted RMSDs of geometry targets under each model (a training diagnostic, no minimization).

For the model the targets were built with, the predicted RMSDs are the minimizations' own; for a
model fine-tuned on them, the first-order estimate of where its minimizations end. Train and
validation targets are scored apart, so the gain on molecules the loss never saw shows.

    .venv/bin/python training/score_geometry_targets.py \\
        runs/geometry_targets/form_intramolecular_nonbonded.h5 form-intramolecular-nonbonded \\
        runs/form_intramolecular_nonbonded_geometry/best.pt \\
        --out benchmarks/results/geometry_targets_predicted.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def summary(values: np.ndarray) -> dict[str, Any]:
    """Count, mean and quantiles (A) of predicted RMSDs."""
    q10, q25, q50, q75, q90 = (float(q) for q in np.percentile(values, [10, 25, 50, 75, 90]))
    return {"n_conformations": len(values), "mean": float(values.mean()),
            "q10": q10, "q25": q25, "median": q50, "q75": q75, "q90": q90}


def main(argv: list[str] | None = None) -> int:
    import torch

    from espaloma_like.api import load_model
    from espaloma_like.training.geometry_targets import predicted_rmsds, read_targets

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", type=Path)
    parser.add_argument("models", nargs="+", help="shipped model names or checkpoints")
    parser.add_argument("--out", type=Path, required=True, help="JSON file (a .md is written beside)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    targets = list(read_targets(args.targets))
    splits = sorted({t.split for t in targets})
    result: dict[str, Any] = {"targets": str(args.targets), "units": "A", "models": {}}
    lines = [f"# Predicted RMSDs of the geometry targets in `{args.targets}`", "",
             "First-order estimate of the RMSD between each model's MM minimum and the DFT minimum "
             "(exact for the model the targets were built with). Median / 25 % / 75 % quantile / mean, A.",
             "", "| model | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    for name in args.models:
        model = load_model(name)
        row = {}
        for split in splits:
            chosen = [t for t in targets if t.split == split]
            row[split] = summary(predicted_rmsds(model, chosen))
        result["models"][name] = row
        lines.append(f"| {name} | " + " | ".join(
            f"{row[s]['median']:.3f} / {row[s]['q25']:.3f} / {row[s]['q75']:.3f} / {row[s]['mean']:.3f} "
            f"(n={row[s]['n_conformations']})" for s in splits) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
