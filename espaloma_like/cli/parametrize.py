"""``espaloma-like parametrize``: molecules in, OpenMM XML out.

Inputs: one SMILES (or mapped SMILES), a text file of SMILES (one per line, an optional name
after whitespace), or an SDF/mol2 file with one or many molecules. One molecule is written to the
``-o`` file; several go to the ``-o`` directory as ``<index>_<name>.xml``. A molecule that fails
is reported with its error and the others are still written.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

METHODS = ("model", "sage", "gaff")
SMILES_LIST_SUFFIXES = (".smi", ".smiles", ".txt", ".csv")


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


def _read_inputs(text: str) -> Iterator[tuple[str, Any]]:
    """Yield (name, molecule input) pairs; errors in individual records surface later."""
    from espaloma_like.molecule import iter_molecule_file, looks_like_molecule_file

    path = Path(text)
    if looks_like_molecule_file(text):
        yield from iter_molecule_file(path)
    elif path.suffix.lower() in SMILES_LIST_SUFFIXES:
        if not path.is_file():
            from espaloma_like.exceptions import MoleculeFileError

            raise MoleculeFileError(f"no such SMILES file: {path}")
        for line in path.read_text().splitlines():
            fields = line.replace(",", " ").split()
            if not fields or fields[0].startswith("#"):
                continue
            yield (fields[1] if len(fields) > 1 else fields[0]), fields[0]
    else:
        yield text, text


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
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60].strip("_") or "molecule"


def _xml(result: Any, fmt: str) -> str:
    return str(result.to_system_xml() if fmt == "system" else result.to_forcefield_xml())


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from espaloma_like._io import atomic_write_text
    from espaloma_like.exceptions import EspalomaLikeError

    inputs = list(_read_inputs(args.input))
    parametrize = _method(args)
    output = Path(args.output)
    if len(inputs) == 1:
        _name, molecule = inputs[0]
        if isinstance(molecule, Exception):
            raise molecule
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output, _xml(parametrize(molecule), args.format))
        print(f"wrote {output}")
        return 0

    output.mkdir(parents=True, exist_ok=True)
    failures = []
    for index, (name, molecule) in enumerate(tqdm(inputs, desc="parametrize", unit="mol",
                                                  disable=not sys.stderr.isatty())):
        target = output / f"{index:05d}_{_safe_name(name)}.xml"
        try:
            if isinstance(molecule, Exception):
                raise molecule
            atomic_write_text(target, _xml(parametrize(molecule), args.format))
        except EspalomaLikeError as err:
            failures.append((index, name, err))
            print(f"molecule {index} ({name}): {type(err).__name__}: {err}", file=sys.stderr)
    done = len(inputs) - len(failures)
    print(f"wrote {done} of {len(inputs)} molecules to {output}"
          + (f"; {len(failures)} failed (listed above)" if failures else ""))
    return 1 if failures else 0
