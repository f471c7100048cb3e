"""``espaloma-like evaluate``: energy, force and charge errors against QM data, with baselines.

    espaloma-like evaluate default data/spice.h5                      # held-out split
    espaloma-like evaluate runs/best.pt a.h5 b.h5 --methods model sage --out eval/ --md-ps 10

Writes ``OUT/report.json``, ``OUT/report.md`` and ``OUT/parity_{energy,force}.png``, and prints
the markdown report.
"""

from __future__ import annotations

import argparse
import sys


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from espaloma_like.training.evaluate import METHODS, SPLITS

    parser.add_argument("checkpoint", help="shipped model name ('default') or a .pt checkpoint")
    parser.add_argument("data", nargs="+", help="SPICE-format HDF5 file(s)")
    parser.add_argument("--split", choices=SPLITS, default="held_out",
                        help="molecules to evaluate (default: held_out)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="methods to compare (default: model sage gaff)")
    parser.add_argument("--out", default="evaluation",
                        help="output directory (default: evaluation)")
    parser.add_argument("--max-molecules", type=_positive_int, default=None, metavar="N",
                        help="evaluate the first N molecules of the split")
    parser.add_argument("--max-conformations", type=_positive_int, default=None, metavar="N",
                        help="at most N conformations per molecule (seeded subsample)")
    parser.add_argument("--md-ps", type=float, default=0.0, metavar="PS",
                        help="MD stability run per molecule, ps (default 0: none)")
    parser.add_argument("--md-temperature", type=float, default=300.0, metavar="K",
                        help="MD temperature (default 300 K)")
    parser.add_argument("--md-platform", default="CPU",
                        help="OpenMM platform for MD (default CPU; Reference is faster for "
                             "small molecules in vacuum)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the conformation subsample and the MD runs")
    parser.add_argument("--threads", type=_positive_int, default=1,
                        help="torch threads (default 1: these molecules are small)")
    parser.add_argument("--no-plots", action="store_true", help="skip the parity plots")


def run(args: argparse.Namespace) -> int:
    from espaloma_like.training.evaluate import evaluate

    if args.md_ps > 0:
        import openmm

        platforms = [openmm.Platform.getPlatform(i).getName()
                     for i in range(openmm.Platform.getNumPlatforms())]
        if args.md_platform not in platforms:
            print(f"espaloma-like evaluate: error: no OpenMM platform {args.md_platform!r}; "
                  f"available: {', '.join(platforms)}", file=sys.stderr)
            return 1
    report = evaluate(
        args.checkpoint, args.data, split=args.split, methods=args.methods,
        max_molecules=args.max_molecules, max_conformations=args.max_conformations,
        seed=args.seed, md_picoseconds=args.md_ps,
        md_options={"temperature": args.md_temperature, "platform": args.md_platform,
                    "seed": args.seed},
        num_threads=args.threads, progress=True,
    )
    written = report.write(args.out, plots=not args.no_plots)
    print(report.to_markdown(), end="")
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0
