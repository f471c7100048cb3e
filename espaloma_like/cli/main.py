"""``espaloma-like`` entry point: dispatches to one module per command (imported lazily)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from espaloma_like import __version__

#: command name -> module with ``add_arguments(parser)`` and ``run(args) -> int``
COMMANDS = {
    "parametrize": ("espaloma_like.cli.parametrize", "Assign force-field parameters, write OpenMM XML"),
    "data": ("espaloma_like.cli.data", "Build QM datasets, summarize SPICE-format files"),
    "train": ("espaloma_like.cli.train", "Train or fine-tune the model on QM energies and forces"),
    "evaluate": ("espaloma_like.cli.evaluate",
                 "Energy/force/charge errors against QM data, with baselines"),
    "benchmark": ("espaloma_like.cli.benchmark",
                  "Accuracy and speed against Sage and GAFF, and the speed-accuracy figure"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="espaloma-like",
        description="Graph-neural-network force-field parameters for OpenMM.",
    )
    parser.add_argument("--version", action="version", version=f"espaloma_like {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pint").setLevel(logging.ERROR)  # openff-units redefinition notices
    from espaloma_like.exceptions import EspalomaLikeError

    try:
        return int(args._module.run(args))
    except EspalomaLikeError as err:
        print(f"espaloma-like {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
