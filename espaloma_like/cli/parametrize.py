"""``espaloma-like parametrize``: molecules in, OpenMM XML out.

Inputs: one SMILES (or mapped SMILES), a text file of SMILES (``.smi``, ``.smiles``, ``.txt``,
``.csv``: one per line, an optional name after whitespace or a comma), or an SDF/mol2 file with
one or many molecules. One molecule is written to the ``-o`` file; several go to the ``-o``
directory as ``<index>_<name>_<hash>.xml``, the hash taken from the canonical SMILES, so that
different molecules never share a file name. An existing output file is never replaced without
``--overwrite``. A molecule that fails is reported with its error and the others are still
written; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

METHODS = ("model", "sage", "gaff")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="SMILES, mapped SMILES, a .smi/.txt list, or an SDF/mol2 file")
    parser.add_argument("-o", "--output", required=True,
                        help="output XML file (one molecule) or directory (several)")
    parser.add_argument("--format", choices=("system", "forcefield"), default="system",
                        help="serialized openmm.System or OpenMM ForceField XML (default: system)")
    parser.add_argument("--method", choices=METHODS, default="model",
                        help="the shipped GNN model (default), or a baseline with AM1-BCC charges")
    parser.add_argument("--model", default=None, help="model name or checkpoint path (--method model)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; one is fastest for per-molecule inference (default 1)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist (default: refuse)")


def _method(args: argparse.Namespace) -> Callable[[Any], Any]:
    if args.method == "sage":
        from espaloma_like.baselines import sage

        return sage
    if args.method == "gaff":
        from espaloma_like.baselines import gaff

        return gaff
    import torch

    from espaloma_like.api import load_model, parametrize

    torch.set_num_threads(max(1, args.threads))
    model = load_model(args.model)
    return lambda molecule: parametrize(molecule, model=model)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60].strip("_.") or "molecule"


def output_name(index: int, name: str, smiles: str) -> str:
    """``<index>_<name>_<hash>.xml``: the hash of the canonical SMILES keeps molecules apart."""
    digest = hashlib.sha1(smiles.encode()).hexdigest()[:8]
    return f"{index:05d}_{_safe_name(name)}_{digest}.xml"


def _xml(result: Any, fmt: str) -> str:
    return str(result.to_system_xml() if fmt == "system" else result.to_forcefield_xml())


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _exists(path: Path) -> Exception:
    from espaloma_like.exceptions import OutputExistsError

    return OutputExistsError(f"{path} exists; pass --overwrite to replace it")


def write_output(path: Path, text: str, overwrite: bool) -> None:
    """Write ``text`` to ``path`` atomically (:func:`espaloma_like._io.atomic_open`).

    A full or read-only disk leaves no partial ``path``. Without ``overwrite`` an existing
    ``path`` is refused, also when another run creates it meanwhile: the complete file is
    written under a temporary name and hard-linked to ``path``, which fails on an existing name.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.
    OSError
        The file cannot be written (permissions, disk full), with ``filename`` the output.
    """
    from espaloma_like._io import TEMP_SUFFIX, atomic_write_text

    staging = path.with_name(f".{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}")
    try:
        if overwrite:
            atomic_write_text(path, text)
            return
        atomic_write_text(staging, text)
        try:
            os.link(staging, path)  # atomic, and refuses an existing name
        except FileExistsError:
            raise _exists(path) from None
        except OSError:  # file systems without hard links: check, then rename
            if path.exists():
                raise _exists(path) from None
            os.replace(staging, path)
    except OSError as err:  # name the output, not a temporary file
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err
    finally:
        staging.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from espaloma_like.exceptions import EspalomaLikeError, MoleculeFileError
    from espaloma_like.molecule import MoleculeGraph, iter_molecules

    output = Path(args.output)
    inputs = list(iter_molecules(args.input))
    if len(inputs) == 1:
        _name, molecule = inputs[0]
        if isinstance(molecule, Exception):
            raise molecule
        if output.is_dir():
            raise MoleculeFileError(
                f"-o {output} is a directory; one molecule is written to a file (e.g. -o "
                f"{output / output_name(0, molecule.name, molecule.smiles)})"
            )
        if output.exists() and not args.overwrite:
            raise _exists(output)
        parametrize = _method(args)
        output.parent.mkdir(parents=True, exist_ok=True)
        write_output(output, _xml(parametrize(molecule), args.format), args.overwrite)
        print(f"wrote {output}")
        return 0

    if output.exists() and not output.is_dir():
        raise MoleculeFileError(f"-o {output} is a file; {len(inputs)} molecules go to a directory")
    parametrize = _method(args)
    output.mkdir(parents=True, exist_ok=True)
    failures = 0
    for index, (name, molecule) in enumerate(tqdm(inputs, desc="parametrize", unit="mol",
                                                  disable=not sys.stderr.isatty())):
        try:
            if isinstance(molecule, Exception):
                raise molecule
            assert isinstance(molecule, MoleculeGraph)
            target = output / output_name(index, name, molecule.smiles)
            if target.exists() and not args.overwrite:
                raise _exists(target)
            write_output(target, _xml(parametrize(molecule), args.format), args.overwrite)
        except OSError:
            raise  # a full or read-only disk stops the run (one line from main)
        except EspalomaLikeError as err:
            failures += 1
            print(f"molecule {index} ({name}): {type(err).__name__}: {_one_line(err)}",
                  file=sys.stderr)
        except Exception as err:  # a bug for one molecule must not lose the others' results
            if getattr(args, "debug", False):
                raise
            failures += 1
            print(f"molecule {index} ({name}): internal error {type(err).__name__}: "
                  f"{_one_line(err)} (--debug shows the traceback)", file=sys.stderr)
    done = len(inputs) - failures
    print(f"wrote {done} of {len(inputs)} molecules to {output}"
          + (f"; {failures} failed (listed above)" if failures else ""))
    return 1 if failures else 0
