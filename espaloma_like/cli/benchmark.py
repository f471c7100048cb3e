"""``espaloma-like benchmark accuracy|speed|figure|conformers|torsions|design-space|dimers``:
the comparisons users choose force fields by.

    espaloma-like benchmark accuracy [--quick] [--out benchmarks/results]
    espaloma-like benchmark speed [--quick] [--out benchmarks/results]
    espaloma-like benchmark figure [--out benchmarks/results]     (from the two JSON outputs)
    espaloma-like benchmark torsions [--data SCANS.h5] [--model NAME_OR_PATH ...]
    espaloma-like benchmark conformers [--split test|validation] [--model NAME_OR_PATH ...]
        [--baseline-molecules N] [--workers N] [--max-molecules N] [--charge charged|neutral]
        [--quick]
        [--out benchmarks/results/conformers]
    espaloma-like benchmark design-space [--form NAME=MODEL ...] [--max-molecules N]
        [--workers N] [--quick] [--out benchmarks/results/design_space] [--rebuild-report]
    espaloma-like benchmark dimers [--model NAME_OR_PATH ...] [--baselines sage,gaff] [--quick]
        [--s66x8 FILE] [--out benchmarks/results/dimers]
    espaloma-like benchmark liquids [--model NAME_OR_PATH ...] [--baselines sage] [--quick]
        [--out benchmarks/results/liquids]

The model, OpenFF Sage 2.2.1 and GAFF-2.11 run on the same inputs in the same run. ``--quick``
is a small smoke-test size (minutes, used in CI) whose numbers are not for citing.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", choices=("accuracy", "speed", "figure", "conformers", "torsions",
                                          "design-space", "dimers", "liquids"))
    parser.add_argument("--quick", action="store_true", help="small smoke-test size")
    parser.add_argument("--out", default=None,
                        help="output folder (default benchmarks/results, or "
                             "benchmarks/results/quick with --quick)")
    parser.add_argument("--model", action="append", default=None,
                        help="shipped model name or checkpoint (default: default); conformers: "
                             "repeat it to compare several models")
    parser.add_argument("--data", default=None,
                        help="accuracy: SPICE-format HDF5 with a held_out split (default "
                             "data/espaloma_like_gfn2xtb.h5); torsions: HDF5 of relaxed scans "
                             "(default data/espaloma_like_b3lyp_scans.h5)")
    parser.add_argument("--shared", default="../shared/qm-reference",
                        help="accuracy: folder of external QM reference sets (skipped if absent)")
    parser.add_argument("--platforms", default=None,
                        help="speed: comma-separated OpenMM platforms (default: CPU, Reference and "
                             "any GPU platform present)")
    conformers = parser.add_argument_group("conformers (OpenFF Industry Benchmark, DFT minima)")
    conformers.add_argument("--industry", default="../shared/qm-reference/openff_industry_b3lyp",
                            help="folder of qm-NNN.sdf.xz and openff-metrics-NNN.csv.xz")
    conformers.add_argument("--split", default="test", choices=("test", "validation", "train"),
                            help="industry split by scaffold (test: never for model selection)")
    conformers.add_argument("--baselines", default=None,
                            help="comma-separated package baselines (conformers: on the subset; "
                                 "default sage,gaff, liquids: sage; '' for none)")
    conformers.add_argument("--baseline-molecules", type=int, default=50,
                            help="molecules in the deterministic baseline subset (AM1-BCC, cached "
                                 "on disk: ~1-3 min per drug-sized molecule the first time)")
    conformers.add_argument("--max-molecules", type=int, default=None,
                            help="first molecules of the split, file order (default: all)")
    conformers.add_argument("--charge", default="all", choices=("all", "charged", "neutral"),
                            help="only molecules with (charged) or without (neutral) a net "
                                 "charge; --max-molecules counts after it (default: all)")
    conformers.add_argument("--workers", type=int, default=None,
                            help="processes, one molecule each (default: all cores)")
    conformers.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--s66x8",
                        default="../shared/qm-reference/comp6_s66x8/s66x8_wb97x6-31gd.h5",
                        help="dimers: COMP6's S66x8 HDF5 (wB97X/6-31G(d) dimer curves)")
    design = parser.add_argument_group("design-space (functional-form options)")
    design.add_argument("--rebuild-report", action="store_true",
                        help="only redraw design_space.md and .png from design_space.json")
    design.add_argument("--form", action="append", default=None, metavar="NAME=MODEL",
                        help="an option and its model (shipped name or checkpoint); repeat it. "
                             "Default: the shipped form-* models")


def _baselines(args: argparse.Namespace, default: str) -> tuple[str, ...]:
    """``--baselines`` as a tuple, ``default`` when not given ('' for none)."""
    text = default if args.baselines is None else args.baselines
    return tuple(b.strip() for b in text.split(",") if b.strip())


def _conformers(args: argparse.Namespace) -> int:
    import os

    from espaloma_like.benchmark.conformers import ConformerBenchmarkConfig, run_conformer_benchmark

    default = "benchmarks/results/quick/conformers" if args.quick else "benchmarks/results/conformers"
    out = Path(args.out or default)
    config = ConformerBenchmarkConfig(
        out=out, industry=Path(args.industry), split=args.split,
        models=tuple(args.model or ("default",)),
        baselines=_baselines(args, "sage,gaff"),
        baseline_molecules=args.baseline_molecules, max_molecules=args.max_molecules,
        charge=args.charge, workers=args.workers or os.cpu_count() or 1, quick=args.quick,
        progress=not args.no_progress)
    run_conformer_benchmark(config)
    print((out / "conformers.md").read_text())
    return 0


def _torsions(args: argparse.Namespace) -> int:
    from espaloma_like.benchmark.torsions import run_torsion_benchmark

    out = Path(args.out or "benchmarks/results/torsions")
    run_torsion_benchmark(Path(args.data or "data/espaloma_like_b3lyp_scans.h5"),
                          args.model or ["default"], out, progress=not args.no_progress,
                          max_molecules=2 if args.quick else None)
    print((out / "torsions.md").read_text())
    return 0


def _design_space(args: argparse.Namespace) -> int:
    import os

    from espaloma_like.benchmark.design_space import (
        DEFAULT_OPTIONS,
        DesignSpaceConfig,
        FormOption,
        run_design_space,
    )
    from espaloma_like.exceptions import EspalomaLikeError

    options = DEFAULT_OPTIONS
    if args.form:
        described = {o.name: o.description for o in DEFAULT_OPTIONS}
        parsed = []
        for text in args.form:
            name, sep, model = text.partition("=")
            if not sep or not name or not model:
                raise EspalomaLikeError(f"--form takes NAME=MODEL, got {text!r}")
            parsed.append(FormOption(name, model, described.get(name, "")))
        options = tuple(parsed)
    default = ("benchmarks/results/quick/design_space" if args.quick
               else "benchmarks/results/design_space")
    out = Path(args.out or default)
    if args.rebuild_report:
        from espaloma_like.benchmark.design_space_report import rebuild_report

        rebuild_report(out)
        print((out / "design_space.md").read_text())
        return 0
    config = DesignSpaceConfig(
        out=out, options=options, industry=Path(args.industry),
        scans=Path(args.data or "data/espaloma_like_b3lyp_scans.h5"),
        shared=Path(args.shared), max_molecules=args.max_molecules or 100,
        workers=args.workers or os.cpu_count() or 1, quick=args.quick,
        progress=not args.no_progress,
        platforms=("CPU",) if args.quick else ("CPU", "Reference"))
    run_design_space(config)
    print((out / "design_space.md").read_text())
    return 0


def _dimers(args: argparse.Namespace) -> int:
    from espaloma_like.benchmark.dimers import DimerBenchmarkConfig, run_dimer_benchmark

    out = Path(args.out or ("benchmarks/results/quick/dimers" if args.quick
                            else "benchmarks/results/dimers"))
    config = DimerBenchmarkConfig(
        out=out, data=Path(args.s66x8), models=tuple(args.model or ("default",)),
        baselines=_baselines(args, "sage,gaff"), max_dimers=2 if args.quick else None)
    run_dimer_benchmark(config, progress=not args.no_progress)
    print((out / "dimers.md").read_text())
    return 0


def _liquids(args: argparse.Namespace) -> int:
    from espaloma_like.benchmark.liquids import (
        LIQUIDS,
        LiquidBenchmarkConfig,
        LiquidRunSettings,
        run_liquid_benchmark,
    )

    out = Path(args.out or ("benchmarks/results/quick/liquids" if args.quick
                            else "benchmarks/results/liquids"))
    config = LiquidBenchmarkConfig(  # GAFF's LJ is not in question here: Sage's only by default
        out=out, models=tuple(args.model or ("default",)), baselines=_baselines(args, "sage"))
    if args.quick:  # a smoke test of the whole path: one liquid, a few ps
        config = LiquidBenchmarkConfig(
            out=out, models=config.models, baselines=(), liquids=LIQUIDS[:1],
            settings=LiquidRunSettings(n_molecules=128, equilibration_ps=1.0, production_ps=2.0,
                                       sample_ps=0.2))
    run_liquid_benchmark(config, progress=not args.no_progress)
    print((out / "liquids.md").read_text())
    return 0


def run(args: argparse.Namespace) -> int:
    if args.which == "dimers":
        return _dimers(args)
    if args.which == "liquids":
        return _liquids(args)
    if args.which == "design-space":
        return _design_space(args)
    if args.which == "conformers":
        return _conformers(args)
    if args.which == "torsions":
        return _torsions(args)
    if args.model and len(args.model) > 1:
        from espaloma_like.exceptions import EspalomaLikeError

        raise EspalomaLikeError(f"benchmark {args.which} takes one --model")
    args.model = args.model[0] if args.model else "default"
    out = Path(args.out or ("benchmarks/results/quick" if args.quick else "benchmarks/results"))
    if args.which == "accuracy":
        from espaloma_like.benchmark.accuracy import run_accuracy_benchmark

        run_accuracy_benchmark(out, quick=args.quick, model=args.model,
                               data=args.data or "data/espaloma_like_gfn2xtb.h5",
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
