"""``espaloma-like benchmark accuracy|speed|figure``: the comparisons users choose force fields by.

    espaloma-like benchmark accuracy [--quick] [--out benchmarks/results]
    espaloma-like benchmark speed [--quick] [--out benchmarks/results]
    espaloma-like benchmark figure [--out benchmarks/results]     (from the two JSON outputs)

The model, OpenFF Sage 2.2.1 and GAFF-2.11 run on the same inputs in the same run. ``--quick``
is a small smoke-test size (minutes, used in CI) whose numbers are not for citing.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", choices=("accuracy", "speed", "figure"))
    parser.add_argument("--quick", action="store_true", help="small smoke-test size")
    parser.add_argument("--out", default=None,
                        help="output folder (default benchmarks/results, or "
                             "benchmarks/results/quick with --quick)")
    parser.add_argument("--model", default="default", help="shipped model name or checkpoint")
    parser.add_argument("--data", default="data/espaloma_like_gfn2xtb.h5",
                        help="accuracy: SPICE-format HDF5 with a held_out split")
    parser.add_argument("--shared", default="../shared/qm-reference",
                        help="accuracy: folder of external QM reference sets (skipped if absent)")
    parser.add_argument("--platforms", default=None,
                        help="speed: comma-separated OpenMM platforms (default: CPU, Reference and "
                             "any GPU platform present)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out or ("benchmarks/results/quick" if args.quick else "benchmarks/results"))
    if args.which == "accuracy":
        from espaloma_like.benchmark.accuracy import run_accuracy_benchmark

        run_accuracy_benchmark(out, quick=args.quick, model=args.model, data=args.data,
                               shared=args.shared)
        print((out / "accuracy.md").read_text())
    elif args.which == "speed":
        from espaloma_like.benchmark.speed import run_speed_benchmark

        platforms = args.platforms.split(",") if args.platforms else None
        run_speed_benchmark(out, quick=args.quick, model=args.model, platforms=platforms)
        print((out / "speed.md").read_text())
    inputs = [out / "accuracy.json", out / "speed.json"]
    missing = [str(p) for p in inputs if not p.exists()]
    if args.which == "figure" and missing:
        from espaloma_like.exceptions import EspalomaLikeError

        raise EspalomaLikeError(f"the figure needs both benchmarks' output; missing {missing}")
    if not missing:
        from espaloma_like.benchmark.figure import speed_accuracy_figure

        png = out / "speed_accuracy.png"
        speed_accuracy_figure(out / "accuracy.json", out / "speed.json", png)
        print(f"wrote {png}")
    return 0
