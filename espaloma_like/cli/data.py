"""``espaloma-like data``: build QM datasets and summarize SPICE-format files.

    espaloma-like data build CONFIG.yaml     # resumable; re-run the same command to resume
    espaloma-like data info FILE.h5 [--json] [--markdown]
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True)
    build = sub.add_parser("build", help="sample, label with a QM engine, write SPICE-format HDF5")
    build.add_argument("config", help="YAML build config (see training/data_build.yaml)")
    build.add_argument("--workers", type=int, default=None, help="override the config's workers")
    build.add_argument("--scheduler", default=None, help="Dask scheduler address (many machines)")
    build.add_argument("--engine-device", choices=("cpu", "gpu"), default=None,
                       help="override the config's engine_device (gpu: DFT through gpu4pyscf)")
    build.add_argument("--no-merge", action="store_true", help="leave the shards, do not merge")
    info = sub.add_parser("info", help="summary of a QM data file (SPICE HDF5, industry SDF)")
    info.add_argument("file",
                      help="SPICE-format .h5, or OpenFF industry qm-*.sdf.xz file(s) or their directory")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.add_argument("--markdown", action="store_true", help="print a markdown table")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from espaloma_like.exceptions import DataFormatError

    if args.data_command == "build":
        from espaloma_like.data.build import build_dataset, load_build_config

        config = load_build_config(args.config)
        updates = {k: v for k, v in (("workers", args.workers), ("scheduler", args.scheduler),
                                     ("engine_device", args.engine_device)) if v}
        if updates:  # validated again: the overrides are user input too
            config = type(config).model_validate({**config.model_dump(), **updates})
        report = build_dataset(config, merge=not args.no_merge)
        print(json.dumps(report, indent=2))
        return 0

    from espaloma_like.data.build import dataset_info, info_markdown

    if not Path(args.file).exists():
        raise DataFormatError(f"no such dataset file or directory: {args.file}")
    info = dataset_info(args.file)
    if args.json:
        print(json.dumps(info, indent=2))
    elif args.markdown:
        print(info_markdown(info), end="")
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            text = ", ".join(f"{k}: {v}" for k, v in value.items()) if isinstance(value, dict) else value
            print(f"{key.replace('_', ' '):<{width}}  {text}")
    return 0
