"""``espaloma-like parametrize``: molecules in, OpenMM XML (or GROMACS / Amber files) out.

Inputs: one SMILES (or mapped SMILES), a text file of SMILES (``.smi``, ``.smiles``, ``.txt``,
``.csv``: one per line, an optional name after whitespace or a comma), or an SDF/mol2 file with
one or many molecules. One molecule is written to the ``-o`` file; several go to the ``-o``
directory as ``<index>_<name>_<hash>.xml``, the hash taken from the canonical SMILES, so that
different molecules never share a file name. An existing output file is never replaced without
``--overwrite``. A molecule that fails is reported with its error and the others are still
written; the exit status is then 1.

``--format gromacs`` writes a ``.top`` and a ``.gro``, ``--format amber`` a ``.prmtop`` and an
``.inpcrd`` (through ParmEd), with the molecule's coordinates or a generated conformer: ``-o
out/mol.top`` (or ``out/mol``) names the pair ``out/mol.top`` + ``out/mol.gro``.

Beside each XML file (``--format system`` or ``forcefield``) goes a PDB file with the same
coordinates rule and the topology (``lig.xml`` -> ``lig.pdb``; one residue ``MOL``, the ffxml's
atom names, bonds as ``CONECT`` records, atoms in the System's order), so that
``openmm.app.PDBFile`` gives the positions and topology the written System or ForceField needs.
``--no-positions`` writes the XML alone. A molecule whose stereochemistry is undefined and that
has no coordinates gets its XML and a one-line note instead of a PDB (a conformer would pick one
stereoisomer). The PDB obeys the same naming and ``--overwrite`` rules as the XML.

A molecule outside the model's applicability domain is still written; one line on stderr says
why (and the XML's provenance records it).
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

from espaloma_like.methods import METHOD_NAMES as METHODS
from espaloma_like.methods import get_method

FORMATS = ("system", "forcefield", "gromacs", "amber")
#: file suffixes written by each format (the first names the output)
SUFFIXES = {"system": (".xml",), "forcefield": (".xml",), "gromacs": (".top", ".gro"),
            "amber": (".prmtop", ".inpcrd")}
#: formats written as one XML file, which get a PDB file of positions and topology beside them
XML_FORMATS = ("system", "forcefield")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="SMILES, mapped SMILES, a .smi/.txt list, or an SDF/mol2 file")
    parser.add_argument("-o", "--output", required=True,
                        help="output XML file (one molecule) or directory (several)")
    parser.add_argument("--format", choices=FORMATS, default="system",
                        help="serialized openmm.System or OpenMM ForceField XML (default: "
                             "system), or GROMACS .top+.gro / Amber .prmtop+.inpcrd files")
    parser.add_argument("--method", choices=METHODS, default="model",
                        help="the shipped GNN model (default), or a baseline with AM1-BCC charges")
    parser.add_argument("--model", default=None,
                        help="shipped model name (default, or a functional-form option form-*: "
                             "espaloma_like.available_models()) or checkpoint path (--method model)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; one is fastest for per-molecule inference (default 1)")
    parser.add_argument("--positions", action=argparse.BooleanOptionalAction, default=True,
                        help="also write a PDB file (coordinates and topology, System atom order) "
                             "beside each XML file: lig.xml -> lig.pdb, the input's 3D "
                             "coordinates or one generated conformer; for OpenMM's PDBFile "
                             "(default: on; GROMACS and Amber files carry their own coordinates)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist (default: refuse)")


def _method(args: argparse.Namespace) -> Callable[[Any], Any]:
    method = get_method(args.method)
    if method.baseline:
        return method.parametrize
    import torch

    from espaloma_like.api import load_model

    torch.set_num_threads(max(1, args.threads))
    model = load_model(args.model)

    def run_model(molecule: Any) -> Any:
        import warnings

        from espaloma_like.domain import OutOfDomainWarning

        with warnings.catch_warnings():  # reported as one line by _report_domain instead
            warnings.simplefilter("ignore", OutOfDomainWarning)
            return method.parametrize(molecule, model=model)

    return run_model


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60].strip("_.") or "molecule"


def output_name(index: int, name: str, smiles: str) -> str:
    """``<index>_<name>_<hash>.xml``: the hash of the canonical SMILES keeps molecules apart."""
    digest = hashlib.sha1(smiles.encode()).hexdigest()[:8]
    return f"{index:05d}_{_safe_name(name)}_{digest}.xml"


def _xml(result: Any, fmt: str) -> str:
    return str(result.to_system_xml() if fmt == "system" else result.to_forcefield_xml())


def pdb_path(xml: Path) -> Path:
    """The PDB file beside the XML file ``xml``: ``lig.xml`` -> ``lig.pdb``, ``lig`` -> ``lig.pdb``,
    any other name gets ``.pdb`` appended (so that it never names the XML itself)."""
    if xml.suffix.lower() in (".xml", ""):
        return xml.with_suffix(".pdb")
    return xml.with_name(xml.name + ".pdb")


def output_paths(target: Path, fmt: str, positions: bool = False) -> list[Path]:
    """The files written for ``target`` in format ``fmt`` (``mol.top`` -> ``mol.top, mol.gro``);
    with ``positions``, an XML format's file is followed by its PDB file (:func:`pdb_path`)."""
    suffixes = SUFFIXES[fmt]
    if len(suffixes) == 1:
        return [target, pdb_path(target)] if positions and fmt in XML_FORMATS else [target]
    stem = target.with_suffix("") if target.suffix.lower() in (*suffixes, ".xml") else target
    return [stem.with_name(stem.name + suffix) for suffix in suffixes]


def _refuse_existing(paths: list[Path], overwrite: bool) -> None:
    for path in paths:
        if path.exists() and not overwrite:
            raise _exists(path)


def pdb_text(result: Any, residue_name: str = "MOL") -> str:
    """PDB file of a parametrized molecule: its coordinates (the input's, else one ETKDG conformer,
    as in the GROMACS and Amber files) and its topology, atoms in the System's order.

    Raises
    ------
    UndefinedStereoError
        The molecule has no coordinates and undefined stereochemistry.
    """
    import io

    from openmm import unit
    from openmm.app import PDBFile

    from espaloma_like.export.parmed_files import molecule_positions

    xyz = molecule_positions(result.molecule)
    handle = io.StringIO()
    PDBFile.writeFile(result.to_openmm_topology(residue_name), xyz * unit.nanometer, handle)
    return handle.getvalue()


def write_result(result: Any, target: Path, fmt: str, overwrite: bool, positions: bool = False,
                 label: str = "") -> list[Path]:
    """Write ``result`` in format ``fmt``; returns the files written (see :func:`output_paths`).

    With ``positions`` an XML format gets its PDB file too; where no conformer can be made
    without choosing a stereoisomer, the XML alone is written and a note naming ``label`` goes
    to stderr.
    """
    from espaloma_like.exceptions import UndefinedStereoError

    paths = output_paths(target, fmt, positions)
    if fmt in XML_FORMATS:
        pdb = None
        if len(paths) > 1:
            try:
                pdb = pdb_text(result)
            except UndefinedStereoError as err:
                print(f"{label or paths[0]}: no PDB written: {_one_line(err)} (--no-positions "
                      "skips the PDB)", file=sys.stderr)
                paths = paths[:1]
        write_output(paths[0], _xml(result, fmt), overwrite)
        if pdb is not None:
            write_output(paths[1], pdb, overwrite)
        return paths
    _refuse_existing(paths, overwrite)
    try:
        (result.to_gromacs if fmt == "gromacs" else result.to_amber)(*paths)
    except OSError as err:  # name the output, not a temporary file
        raise OSError(err.errno, err.strerror or str(err), str(paths[0])) from err
    return paths


def _report_domain(index: int | None, name: str, result: Any) -> None:
    reasons = getattr(result, "domain_warnings", ())
    if reasons:
        label = f"molecule {index} ({name})" if index is not None else name
        print(f"{label}: outside the model's applicability domain: {'; '.join(reasons)}",
              file=sys.stderr)


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
        _refuse_existing(output_paths(output, args.format, args.positions), args.overwrite)
        parametrize = _method(args)
        output.parent.mkdir(parents=True, exist_ok=True)
        result = parametrize(molecule)
        _report_domain(None, molecule.name, result)
        written = write_result(result, output, args.format, args.overwrite, args.positions,
                               molecule.name)
        print(f"wrote {' and '.join(str(path) for path in written)}")
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
            _refuse_existing(output_paths(target, args.format, args.positions), args.overwrite)
            result = parametrize(molecule)
            _report_domain(index, name, result)
            write_result(result, target, args.format, args.overwrite, args.positions,
                         f"molecule {index} ({name})")
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
