"""``espaloma-like benchmark conformers``: OpenFF's industry benchmark, force field by force field.

Every B3LYP-D3BJ/DZVP optimized conformer of the OpenFF Industry Benchmark molecules of one split
(:func:`espaloma_like.data.industry.read_industry_sdf`; default the test split) is minimized
with each method as OpenFF minimized it for its published numbers (OpenMM ``LocalEnergyMinimizer``,
L-BFGS, Reference platform, vacuum, no cutoff, no constraints, tolerance 5e-9 kJ/mol/nm, at most
1500 iterations: ``openff-sage/.../qc-opt-geo/02-b-minimize.py``) and scored with
:mod:`espaloma_like.benchmark.conformers_metrics` (ddE, RMSD, TFD, internal-coordinate RMSDs).

Methods: the package's model(s) on every molecule; OpenFF Sage 2.2.1 and GAFF-2.11 from
:mod:`espaloma_like.baselines` (AM1-BCC charges, cached on disk) on a deterministic subset of
the molecules; OpenFF's published Sage 2.0.0 and GAFF-2.11 rows (``openff-metrics-NNN.csv.xz``)
joined record by record. Parameters come from the package's method dispatch,
:func:`espaloma_like.training.evaluate.method_parameters`.

Work is spread over a process pool, one molecule per task; each (molecule, method) result is
appended to ``conformers_results.jsonl`` in the output folder as soon as it is done, and a
re-run skips what that file already holds for the same method (same checkpoint file), so an
interrupted run resumes, and a new candidate model adds only its own minimizations.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like.benchmark.provenance import cpu_model, git_state
from espaloma_like.methods import BASELINES, METHODS

if TYPE_CHECKING:
    import openmm

    from espaloma_like.data.records import QMRecord
    from espaloma_like.parametrized import ParametrizedMolecule

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_INDUSTRY_DIR",
    "MINIMIZER_MAX_ITERATIONS",
    "MINIMIZER_TOLERANCE",
    "PUBLISHED",
    "ConformerBenchmarkConfig",
    "MethodSpec",
    "iter_results",
    "minimize",
    "read_published_rows",
    "run_conformer_benchmark",
]

DEFAULT_INDUSTRY_DIR = Path("../shared/qm-reference/openff_industry_b3lyp")
#: OpenFF's settings (02-b-minimize.py): kJ/mol/nm and iterations
MINIMIZER_TOLERANCE = 5.0e-9
MINIMIZER_MAX_ITERATIONS = 1500
#: ``Force Field`` value in openff-metrics-NNN.csv -> label in our outputs
PUBLISHED = {"OpenFF 2.0.0": "openff-2.0.0 (published)",
             "GAFF 2.11 + AM1BCC": "gaff-2.11 (published)"}
BASELINE_LABELS = {name: METHODS[name].results_label for name in BASELINES}
RESULTS_FILE = "conformers_results.jsonl"
#: salt of the hash that picks the baseline subset (changing it changes the subset)
SUBSET_SALT = "conformers-baseline-subset-v1"
SPLIT_NAMES = {"test": "held_out", "held_out": "held_out", "validation": "validation",
               "train": "train"}
#: ``ConformerBenchmarkConfig.charge`` values
CHARGE_FILTERS = ("all", "charged", "neutral")
QUICK_MOLECULES = 3
QUICK_MAX_FILES = 12


@dataclass(frozen=True)
class MethodSpec:
    """One method to minimize with.

    Attributes
    ----------
    label : str
        Name in every output (``model``, ``model:<name>``, ``sage-2.2.1``, ``gaff-2.11``).
    kind : {"model", "sage", "gaff"}
        The kind :func:`espaloma_like.training.evaluate.method_parameters` dispatches on.
    model : str or None
        Shipped model name or checkpoint path (kind ``model``).
    identity : str
        What the results depend on (checkpoint file hash, baseline version): results in the
        JSONL file with another identity are stale and ignored.
    """

    label: str
    kind: str
    model: str | None = None
    identity: str = ""


@dataclass(frozen=True)
class ConformerBenchmarkConfig:
    """Settings of one run (the CLI's options).

    Attributes
    ----------
    out : Path
        Output folder (JSON, Markdown, plots, the resumable JSONL file).
    industry : Path
        Folder of ``qm-NNN.sdf.xz`` and ``openff-metrics-NNN.csv.xz``.
    split : {"test", "validation", "train"}
        Industry split (by scaffold) to evaluate; ``test`` is ``held_out`` in the records.
    models : tuple of str
        Model names or checkpoint paths, each one method.
    baselines : tuple of str
        Package baselines (``sage``, ``gaff``) run on the baseline subset.
    baseline_molecules : int
        Size of the baseline subset (0: no package baselines).
    max_molecules : int or None
        First molecules of the split in file order (None: all); counted after ``charge``.
    charge : {"all", "charged", "neutral"}
        Keep only molecules with a net charge (``charged``) or without one (``neutral``):
        charged molecules are a tenth of each split, so a selection among models on them
        needs all of the split's, not its first few hundred molecules.
    workers : int
        Processes (1: in this process).
    quick : bool
        A few small molecules, model(s) and published rows only (CI smoke test).
    progress : bool
        tqdm progress bar.
    """

    out: Path
    industry: Path = DEFAULT_INDUSTRY_DIR
    split: str = "test"
    models: tuple[str, ...] = ("default",)
    baselines: tuple[str, ...] = ("sage", "gaff")
    baseline_molecules: int = 50
    max_molecules: int | None = None
    charge: str = "all"
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    quick: bool = False
    progress: bool = True


# --------------------------------------------------------------------------------------------
# Minimization
# --------------------------------------------------------------------------------------------


def minimize(system: openmm.System, xyz_nm: np.ndarray) -> tuple[np.ndarray, float]:
    """OpenMM L-BFGS minimum of ``system`` from ``xyz_nm``, with OpenFF's benchmark settings.

    Parameters
    ----------
    system : openmm.System
        Vacuum system without constraints.
    xyz_nm : np.ndarray
        (N, 3) starting coordinates, nm.

    Returns
    -------
    tuple of (np.ndarray, float)
        (N, 3) minimized coordinates, nm, and the potential energy there, kcal/mol.
    """
    import openmm
    from openmm import unit

    context = openmm.Context(system, openmm.VerletIntegrator(0.0001),
                             openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.asarray(xyz_nm, dtype=np.float64))
    openmm.LocalEnergyMinimizer.minimize(context, MINIMIZER_TOLERANCE, MINIMIZER_MAX_ITERATIONS)
    state = context.getState(getPositions=True, getEnergy=True)
    xyz = np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    energy = float(state.getPotentialEnergy().value_in_unit(unit.kilocalories_per_mole))
    return xyz, energy


# --------------------------------------------------------------------------------------------
# Worker side: one molecule, several methods
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    record: QMRecord
    methods: tuple[MethodSpec, ...]


_BASELINE_CACHE: dict[Any, Any] = {}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one molecule per process: threads would only compete


def _run_method(record: QMRecord, method: MethodSpec) -> dict[str, Any]:
    """Minimize every conformer of ``record`` with ``method``; one JSONL entry."""
    from espaloma_like.benchmark.conformers_metrics import score_molecule
    from espaloma_like.data.records import record_graph
    from espaloma_like.export.openmm_system import to_openmm_system
    from espaloma_like.training.evaluate import method_parameters
    from espaloma_like.units import KJ_TO_KCAL, NM_TO_ANGSTROM

    entry: dict[str, Any] = {"molecule": record.name, "method": method.label,
                             "identity": method.identity, "records": [], "error": None}
    start = time.perf_counter()
    try:
        graph = record_graph(record)
        network = None
        charges: np.ndarray | str = "unused"
        if method.kind == "model":
            from espaloma_like.api import load_model

            network = load_model(method.model)
        else:
            try:
                from espaloma_like.baselines.am1bcc import am1bcc_charges

                charges = am1bcc_charges(graph)
            except Exception as err:  # reported as this baseline's failure on this molecule
                charges = f"AM1-BCC charges: {type(err).__name__}: {err}"
        parameters = method_parameters(method.kind, graph, charges, network, _BASELINE_CACHE)
        system = to_openmm_system(parameters, masses=graph.masses)
        setup_seconds = time.perf_counter() - start
        minima, energies = [], []
        for xyz in record.conformations:
            xyz_min, energy = minimize(system, xyz)
            minima.append(xyz_min)
            energies.append(energy)
        ids = json.loads(record.metadata["record_ids"])
        scores = score_molecule(graph.rdkit_mol, ids, record.conformations * NM_TO_ANGSTROM,
                                record.energies * KJ_TO_KCAL,
                                np.stack(minima) * NM_TO_ANGSTROM, np.asarray(energies))
        entry["records"] = [s.to_dict() for s in scores]
        entry["setup_seconds"] = setup_seconds
    except Exception as err:  # one molecule's failure is a result, not the run's end
        entry["error"] = f"{type(err).__name__}: {err}"
    entry["seconds"] = time.perf_counter() - start
    return entry


def _run_task(task: _Task) -> list[dict[str, Any]]:
    """All methods on one molecule; warnings (e.g. out of the model's domain) kept per entry."""
    import warnings

    entries = []
    for method in task.methods:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            entry = _run_method(task.record, method)
        entry["warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
        entries.append(entry)
    return entries


# --------------------------------------------------------------------------------------------
# Molecules, methods, published rows
# --------------------------------------------------------------------------------------------


def heavy_atom_count(record: QMRecord) -> int:
    """Number of non-hydrogen atoms."""
    return int((np.asarray(record.atomic_numbers) > 1).sum())


def _select_records(config: ConformerBenchmarkConfig) -> tuple[list[QMRecord], list[str]]:
    """The split's molecules in file order; skip messages of the reader.

    ``quick``: of the first ``QUICK_MAX_FILES`` files, the ``QUICK_MOLECULES`` molecules of the
    split with the fewest atoms x conformers (the cheapest to minimize).
    """
    from espaloma_like.data.industry import industry_files, read_industry_sdf

    wanted = SPLIT_NAMES[config.split]
    skipped: list[str] = []
    files = industry_files(config.industry)
    if config.quick:
        files = files[:QUICK_MAX_FILES]
    chosen: list[QMRecord] = []
    for record in read_industry_sdf(files, skipped):
        if record.metadata.get("split") != wanted:
            continue
        if config.charge != "all" and (record.total_charge != 0) != (config.charge == "charged"):
            continue
        chosen.append(record)
        if (not config.quick and config.max_molecules is not None
                and len(chosen) >= config.max_molecules):
            break
    if config.quick:
        cheapest = sorted(chosen, key=lambda r: (r.n_atoms * r.n_conformations, r.name))
        keep = {r.name for r in cheapest[:QUICK_MOLECULES]}
        chosen = [r for r in chosen if r.name in keep]
    return chosen, skipped


def baseline_subset(records: Sequence[QMRecord], n: int) -> list[str]:
    """Names of the ``n`` molecules with the smallest salted hash: a fixed pseudo-random subset.

    The choice of a molecule depends only on its name, so a larger ``n`` or more molecules
    keep the molecules already chosen whenever they still rank among the first ``n``.
    """
    from espaloma_like.data.split import stable_fraction

    ranked = sorted(records, key=lambda r: (stable_fraction(r.name, SUBSET_SALT), r.name))
    return [r.name for r in ranked[:max(n, 0)]]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def method_specs(models: Sequence[str], baselines: Sequence[str]) -> list[MethodSpec]:
    """One :class:`MethodSpec` per model (identified by its checkpoint's SHA-256) and baseline."""
    from espaloma_like.nn.checkpoint import resolve_model_path

    specs = []
    for model in models:
        path = Path(resolve_model_path(model)).resolve()
        label = "model" if model == "default" else f"model:{model}"
        specs.append(MethodSpec(label, "model", model, f"sha256:{_file_sha256(path)}"))
    for baseline in baselines:
        if baseline not in BASELINE_LABELS:
            raise ValueError(f"unknown baseline {baseline!r}; choose from {sorted(BASELINE_LABELS)}")
        specs.append(MethodSpec(BASELINE_LABELS[baseline], baseline, None,
                                f"{BASELINE_LABELS[baseline]}+am1bcc-antechamber"))
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"methods must be distinct, got {labels}")
    return specs


def method_parametrizers(models: Sequence[str], baselines: Sequence[str]
                         ) -> dict[str, Callable[[Any], ParametrizedMolecule]]:
    """Each method of :func:`method_specs` by label, with its parametrize function (molecule ->
    :class:`~espaloma_like.parametrized.ParametrizedMolecule`), for benchmarks that build
    Systems rather than minimize."""
    from espaloma_like.methods import get_method

    return {spec.label: functools.partial(get_method(spec.kind).parametrize, model=spec.model)
            for spec in method_specs(models, baselines)}


def read_published_rows(industry: Path, sources: Sequence[str],
                        record_ids: set[str]) -> dict[str, dict[str, dict[str, float | None]]]:
    """OpenFF's published metrics of ``record_ids``: label -> record id -> metric -> value.

    Parameters
    ----------
    industry : Path
        Folder of ``openff-metrics-NNN.csv.xz``.
    sources : sequence of str
        ``qm-NNN.sdf.xz`` names the records come from (their CSV files are read).
    record_ids : set of str
        Records to keep.
    """
    import csv
    import lzma

    columns = {"ddE": "ddE", "rmsd": "RMSD", "tfd": "TDF", "bond_rmsd": "Bond RMSD",
               "angle_rmsd": "Angle RMSD", "dihedral_rmsd": "Dihedral RMSD",
               "improper_rmsd": "Improper RMSD"}

    def number(text: str | None) -> float | None:
        try:
            value = float(text) if text not in (None, "") else math.nan
        except ValueError:
            return None
        return None if math.isnan(value) else value

    out: dict[str, dict[str, dict[str, float | None]]] = {label: {} for label in PUBLISHED.values()}
    for source in sorted(set(sources)):
        stem = source.split(".")[0].replace("qm-", "openff-metrics-")
        path = industry / f"{stem}.csv.xz"
        if not path.is_file():
            logger.warning("no published metrics for %s (%s missing)", source, path.name)
            continue
        with lzma.open(path, "rt", encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                label = PUBLISHED.get(row.get("Force Field", ""))
                if label is None or row.get("Record ID") not in record_ids:
                    continue
                out[label][row["Record ID"]] = {k: number(row.get(c)) for k, c in columns.items()}
    return out


# --------------------------------------------------------------------------------------------
# Resumable results
# --------------------------------------------------------------------------------------------


def iter_results(path: Path) -> Iterator[dict[str, Any]]:
    """The entries of a results JSONL file in the order written (one per molecule and method).

    Each entry holds ``molecule``, ``method`` (label), ``identity`` (of the method's parameters)
    and ``records`` (per-conformer metrics). A line cut short by a kill is skipped (its molecule
    is computed again on resume); a missing file yields nothing.
    """
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def _read_results(path: Path, specs: Sequence[MethodSpec]) -> tuple[dict[tuple[str, str], Any], int]:
    """Entries of the JSONL file for the current methods: (molecule, label) -> entry; stale count."""
    identities = {s.label: s.identity for s in specs}
    done: dict[tuple[str, str], Any] = {}
    stale = 0
    for entry in iter_results(path):
        if identities.get(entry.get("method", "")) != entry.get("identity"):
            stale += 1
            continue
        done[(entry["molecule"], entry["method"])] = entry
    return done, stale


def append_jsonl(path: Path, entries: Sequence[dict[str, Any]]) -> None:
    """Append whole lines and flush them to disk (a kill loses at most the line being written)."""
    with path.open("a", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, allow_nan=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _run_tasks(tasks: list[_Task], workers: int, results_path: Path,
               progress: bool) -> Iterator[list[dict[str, Any]]]:
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="molecules", unit="mol", disable=not progress)
    try:
        if workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                entries = _run_task(task)
                append_jsonl(results_path, entries)
                bar.update()
                yield entries
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: torch and OpenMM are not fork-safe once initialised in the parent
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_run_task, task) for task in tasks]
            for future in as_completed(futures):
                entries = future.result()
                append_jsonl(results_path, entries)
                bar.update()
                yield entries
    finally:
        bar.close()


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def _provenance(started: float) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    from espaloma_like import __version__

    commit, dirty = git_state()
    versions = {"espaloma_like": __version__}
    for name in ("openmm", "rdkit", "torch", "numpy"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return {"git_commit": (commit + ("+dirty" if dirty else "")) if commit else None,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
            "machine": {"platform": platform.platform(), "cpu": cpu_model(),
                        "cores": os.cpu_count(), "python": platform.python_version()},
            "versions": versions}


def run_conformer_benchmark(config: ConformerBenchmarkConfig) -> dict[str, Any]:
    """Run (or resume) the benchmark and write ``conformers.json``, ``conformers.md`` and plots.

    Returns
    -------
    dict
        The content of ``conformers.json``.
    """
    from espaloma_like._io import DirectoryLock, atomic_write_text
    from espaloma_like.benchmark.conformers_report import build_report, markdown, write_plots

    if config.split not in SPLIT_NAMES:
        raise ValueError(f"unknown split {config.split!r}; choose from {sorted(SPLIT_NAMES)}")
    if config.charge not in CHARGE_FILTERS:
        raise ValueError(f"unknown charge filter {config.charge!r}; choose from {CHARGE_FILTERS}")
    started = time.time()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    with DirectoryLock(out):
        provenance = _provenance(started)  # git state read before anything is written
        records, skipped = _select_records(config)
        baselines = () if config.quick else config.baselines
        n_subset = 0 if config.quick else config.baseline_molecules
        specs = method_specs(config.models, baselines)
        subset = set(baseline_subset(records, n_subset)) if baselines else set()
        results_path = out / RESULTS_FILE
        done, stale = _read_results(results_path, specs)
        tasks = []
        for record in records:
            todo = tuple(s for s in specs if (record.name, s.label) not in done
                         and (s.kind == "model" or record.name in subset))
            if todo:
                tasks.append(_Task(record, todo))
        # largest molecules first: the pool's last tasks are then short ones
        tasks.sort(key=lambda t: -t.record.n_atoms * t.record.n_conformations)
        logger.info("%d molecules, %d to run (%d results already done, %d stale)",
                    len(records), len(tasks), len(done), stale)
        for entries in _run_tasks(tasks, config.workers, results_path, config.progress):
            for entry in entries:
                done[(entry["molecule"], entry["method"])] = entry

        ids = {i for r in records for i in json.loads(r.metadata["record_ids"])}
        published = read_published_rows(Path(config.industry),
                                        [r.metadata["source"] for r in records], ids)
        settings = {
            "industry": str(config.industry), "split": config.split,
            "quick": config.quick, "max_molecules": config.max_molecules,
            "charge": config.charge,
            "workers": config.workers, "baseline_molecules": len(subset),
            "minimizer": {"method": "OpenMM LocalEnergyMinimizer (L-BFGS), Reference platform",
                          "tolerance_kj_per_mol_nm": MINIMIZER_TOLERANCE,
                          "max_iterations": MINIMIZER_MAX_ITERATIONS},
            "methods": [{"label": s.label, "kind": s.kind, "model": s.model,
                         "identity": s.identity} for s in specs],
            "subset_rule": f"smallest stable_fraction(name, {SUBSET_SALT!r})",
            "stale_results_ignored": stale,
            "records_skipped_by_reader": skipped,
        }
        document = build_report(records, specs, done, published, subset, settings, provenance)
        atomic_write_text(out / "conformers.json",
                          json.dumps(document, indent=1, allow_nan=False) + "\n")
        plots = write_plots(document, out)
        atomic_write_text(out / "conformers.md", markdown(document, plots))
    return document
