"""``espaloma-like`` entry point: dispatches to one module per command (imported lazily).

Every command ends in one line: its result, or ``espaloma-like COMMAND: error: ...`` on stderr
with a non-zero exit status. Tracebacks are shown only with ``--debug``.
"""

from __future__ import annotations

import argparse
import errno
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
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of one line")
    # --debug is accepted after the command name as well
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        module = importlib.import_module(module_name)
        module.add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def _one_line(text: str) -> str:
    return " ".join(text.split())


def error_message(err: BaseException) -> str:
    """One line saying what went wrong, for errors the user can act on without a traceback."""
    from espaloma_like.exceptions import EspalomaLikeError

    if isinstance(err, EspalomaLikeError):
        return _one_line(str(err))
    if type(err).__name__ == "ValidationError" and hasattr(err, "errors"):  # pydantic
        problems = []
        for item in err.errors():
            where = ".".join(str(part) for part in item.get("loc", ())) or "config"
            message = item.get("msg", "invalid")
            if item.get("type") == "extra_forbidden":
                message = "unknown field (a typo?)"
            problems.append(f"{where}: {message}")
        return _one_line(f"invalid config: {'; '.join(problems)}")
    if isinstance(err, OSError):
        what = err.strerror or str(err) or type(err).__name__
        if err.errno == errno.ENOSPC:
            what = "no space left on device"
        where = f": {err.filename}" if err.filename else ""
        return _one_line(f"{what}{where}")
    module = type(err).__module__
    if module.startswith("yaml"):
        return _one_line(f"cannot read the YAML config: {err}")
    return _one_line(f"{type(err).__name__}: {err} (an internal error: --debug shows the traceback; "
                     "please report it)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pint").setLevel(logging.ERROR)  # openff-units redefinition notices
    try:
        return int(args._module.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        print(f"espaloma-like {args.command}: error: {error_message(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
