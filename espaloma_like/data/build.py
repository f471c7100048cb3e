"""Build a QM dataset: molecules -> conformations -> QM labels -> SPICE-format HDF5.

The build is resumable and parallel:

* every molecule is one task (sampling, QM labels, AM1-BCC charges); its result is written to its
  own shard file (``<work_dir>/shards/<key>.h5``) atomically, and a molecule that fails writes a
  failure record instead, so an interrupted build resumes with the molecules not yet done and
  never computes a finished molecule twice (sampling is seeded per molecule, so a molecule cut
  off mid-way is recomputed identically);
* tasks run in this process (``workers: 1``), on a Dask ``LocalCluster`` (``workers > 1``), or
  on any Dask scheduler (``scheduler: tcp://host:8786``) for many machines; results come back to
  this process, which alone writes files;
* at the end the shards are merged, in the fixed molecule order, into one compressed HDF5 file
  (written atomically), with the held-out split (scaffold split, fixed by hashes) stored per
  molecule, and a JSON summary report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from espaloma_like.data.sampling import SamplingConfig
from espaloma_like.data.sources import MoleculeSource
from espaloma_like.data.split import scaffold_of
from espaloma_like.data.split import stable_fraction as _stable_fraction

logger = logging.getLogger(__name__)


class SourcesConfig(BaseModel):
    """Which molecules go in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    builtin: bool = True
    brics_max_heavy_atoms: int = 20
    smiles: tuple[str, ...] = ()
    smiles_files: tuple[str, ...] = ()
    sdf_files: tuple[str, ...] = ()
    #: the NCI first-5K set shipped inside RDKit (:func:`~espaloma_like.data.sources.rdkit_nci_set`)
    nci: bool = False
    charged_variants: bool = True
    #: cap per source (e.g. AlkEthOH's ~1900 alkanes/ethers/alcohols would swamp the rest)
    max_per_source: dict[str, int] = Field(default_factory=dict)


class FilterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_heavy_atoms: int = 1
    max_heavy_atoms: int = 20
    min_charge: int = -2
    max_charge: int = 2
    #: undefined stereo: RDKit's first isomer (the shipped build), or the first that embeds in 3D
    #: (avoids sampling failures in bridged rings), see :func:`~espaloma_like.data.sources.filter_molecules`
    stereo: Literal["first", "first-embeddable"] = "first"


class SplitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["scaffold"] = "scaffold"
    held_out_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    salt: str = "espaloma_like-split-v1"


class BuildConfig(BaseModel):
    """A dataset build, mirrored by YAML files (unknown keys refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    output: str
    work_dir: str | None = None
    sources: SourcesConfig = SourcesConfig()
    filters: FilterConfig = FilterConfig()
    max_molecules: int | None = None
    sampling: SamplingConfig = SamplingConfig()
    #: torsion scans for every k-th molecule (by order), 0 for none: scans cost 24 conformations
    scan_every: int = Field(default=1, ge=0)
    engine: str = "gfn2-xtb"
    #: where the QM engine runs: "gpu" runs DFT through gpu4pyscf (see PySCFEngine)
    engine_device: Literal["cpu", "gpu"] = "cpu"
    am1bcc: bool = True
    split: SplitConfig = SplitConfig()
    workers: int = Field(default=1, ge=1)
    scheduler: str | None = None
    seed: int = 0
    #: store conformations and gradients as float32 in the merged file, as SPICE does
    single_precision: bool = False

    @model_validator(mode="after")
    def _known_engine(self) -> BuildConfig:
        from espaloma_like.data.engines import engine_from_name

        engine_from_name(self.engine, device=self.engine_device)  # raises ValueError: name, device
        return self

    @property
    def work_path(self) -> Path:
        return Path(self.work_dir) if self.work_dir else Path(self.output + ".parts")


def load_build_config(path: str | Path) -> BuildConfig:
    """Read a YAML build config; relative paths in it are relative to the current directory."""
    import yaml

    return BuildConfig.model_validate(yaml.safe_load(Path(path).read_text()))


# --------------------------------------------------------------------------------------------
# Molecule list and split
# --------------------------------------------------------------------------------------------


def molecule_key(smiles: str) -> str:
    """Stable file-name key of a molecule."""
    return hashlib.sha1(smiles.encode()).hexdigest()[:16]


def scaffold_split(smiles: Sequence[str], config: SplitConfig) -> list[str]:
    """'train' or 'held_out' per molecule: whole scaffolds go to one side, chosen by hash."""
    return [
        "held_out" if _stable_fraction(config.salt + scaffold_of(s)) < config.held_out_fraction
        else "train"
        for s in smiles
    ]


def select_molecules(config: BuildConfig) -> tuple[list[MoleculeSource], list[dict[str, str]]]:
    """The molecules of a build, in a fixed order, and every dropped one with its reason."""
    from espaloma_like.data import sources as src

    records: list[MoleculeSource] = []
    if config.sources.builtin:
        records += src.builtin_sources(max_heavy_atoms=config.sources.brics_max_heavy_atoms)
    if config.sources.nci:
        records += src.rdkit_nci_set()
    records += src.smiles_sources(config.sources.smiles, source="user")
    for path in config.sources.smiles_files:
        records += src.read_smiles_file(path)
    for path in config.sources.sdf_files:
        records += src.read_sdf(path)
    if config.sources.charged_variants:
        records += src.charged_variants(records)
    kept, dropped = src.filter_molecules(
        records, min_heavy=config.filters.min_heavy_atoms, max_heavy=config.filters.max_heavy_atoms,
        charges=(config.filters.min_charge, config.filters.max_charge),
        stereo=config.filters.stereo,
    )
    # fixed order independent of source order: by a hash of the SMILES (also a fair subsample)
    kept.sort(key=lambda m: _stable_fraction(f"{config.seed}:{m.smiles}"))
    dropped_rows = [{"smiles": d.smiles, "source": d.source, "name": d.name, "reason": d.reason}
                    for d in dropped]
    per_source: Counter[str] = Counter()
    capped = []
    for m in kept:
        cap = config.sources.max_per_source.get(m.source)
        if cap is not None and per_source[m.source] >= cap:
            dropped_rows.append({"smiles": m.smiles, "source": m.source, "name": m.name,
                                 "reason": f"over max_per_source: {m.source} capped at {cap}"})
            continue
        per_source[m.source] += 1
        capped.append(m)
    kept = capped
    if config.max_molecules is not None and len(kept) > config.max_molecules:
        for m in kept[config.max_molecules :]:
            dropped_rows.append({"smiles": m.smiles, "source": m.source, "name": m.name,
                                 "reason": "over max_molecules: not selected"})
        kept = kept[: config.max_molecules]
    return kept, dropped_rows


# --------------------------------------------------------------------------------------------
# One molecule (runs on a worker)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoleculeResult:
    """What a worker returns for one molecule."""

    index: int
    key: str
    record: Any  # QMRecord | None (Any keeps this picklable without importing h5py)
    error: str | None
    n_sampled: int
    n_rejected: int
    engine_failures: dict[str, int]
    seconds_sampling: float
    seconds_qm: float
    seconds_charges: float


def label_molecule(index: int, molecule: MoleculeSource, config: BuildConfig, split: str) -> MoleculeResult:
    """Sample, label and charge one molecule; errors are returned, never raised."""
    from espaloma_like.data.engines import engine_from_name
    from espaloma_like.data.sampling import sample_molecule
    from espaloma_like.molecule import from_smiles

    key = molecule_key(molecule.smiles)
    t0 = time.perf_counter()
    timings = [0.0, 0.0, 0.0]
    try:
        graph = from_smiles(molecule.smiles)
        sampling = config.sampling
        scan = config.scan_every > 0 and index % config.scan_every == 0
        if sampling.torsion_scan != scan:
            sampling = sampling.model_copy(update={"torsion_scan": scan})
        seed = config.seed + int(key[:8], 16) % (2**31 - 1)
        sampled = sample_molecule(graph, sampling, seed=seed)
        timings[0] = time.perf_counter() - t0
        if sampled.n_conformations == 0:
            why = ("no conformations to label: the sampling keeps neither ETKDG nor minimized "
                   "conformers and no MD, and the molecule has no bond the torsion scan accepts"
                   if not (sampling.include_etkdg or sampling.include_minimized
                           or sampling.n_md_per_conformer)
                   else "every sampled conformation was rejected as broken")
            return MoleculeResult(index, key, None, why, 0, sampled.n_rejected, {}, *timings)
        t1 = time.perf_counter()
        # OpenMP threads slow xTB down here (processes already fill the cores)
        engine = engine_from_name(config.engine, n_threads=1, device=config.engine_device)
        result = engine.compute(graph.atomic_numbers, sampled.positions, total_charge=graph.total_charge)
        timings[1] = time.perf_counter() - t1
        failures = Counter(_reason(e) for e in result.errors if e is not None)
        t2 = time.perf_counter()
        charges = None
        if config.am1bcc:
            from espaloma_like.baselines.am1bcc import compute_am1bcc

            # AM1 single point at the first Sage-minimized conformer: 57-120x cheaper than
            # antechamber's AM1 optimization for drug-sized molecules, which would otherwise
            # dominate a build (benchmarks/results/am1bcc_single_point.md)
            minimized = [n for n, k in enumerate(sampled.kinds) if k == "minimized"]
            start = sampled.positions[minimized[0] if minimized else 0]
            charges = compute_am1bcc(graph, positions=start, optimize=False)
        timings[2] = time.perf_counter() - t2
        ok = result.ok
        record = result.to_record(
            engine, name=key, mapped_smiles=graph.mapped_smiles,
            atomic_numbers=graph.atomic_numbers, conformations=sampled.positions,
            total_charge=graph.total_charge, subset=molecule.source, charges=charges,
            metadata={
                "source_name": molecule.name, "smiles": molecule.smiles, "split": split,
                "kinds": json.dumps([k for k, good in zip(sampled.kinds, ok, strict=True) if good]),
                "notes": json.dumps(list(molecule.notes)),
            },
        )
        if record.n_conformations == 0:
            return MoleculeResult(index, key, None, "every conformation failed in the QM engine",
                                  sampled.n_conformations, sampled.n_rejected, dict(failures),
                                  *timings)
        return MoleculeResult(index, key, record, None, sampled.n_conformations, sampled.n_rejected,
                              dict(failures), *timings)
    except Exception as err:  # recorded per molecule; the build goes on
        detail = "".join(traceback.format_exception_only(type(err), err)).strip()
        return MoleculeResult(index, key, None, detail, 0, 0, {}, *timings)


def _reason(error: str) -> str:
    return error.split(":")[0][:80]


# --------------------------------------------------------------------------------------------
# The build
# --------------------------------------------------------------------------------------------


def _write_atomic_json(path: Path, payload: Any) -> None:
    from espaloma_like._io import atomic_write_text

    atomic_write_text(path, json.dumps(payload, indent=1))


def _store(result: MoleculeResult, work: Path) -> None:
    from espaloma_like.data.spice import write_spice_hdf5

    info = {
        "index": result.index, "key": result.key, "error": result.error,
        "n_sampled": result.n_sampled, "n_rejected": result.n_rejected,
        "n_labelled": result.record.n_conformations if result.record is not None else 0,
        "engine_failures": result.engine_failures, "seconds_sampling": result.seconds_sampling,
        "seconds_qm": result.seconds_qm, "seconds_charges": result.seconds_charges,
    }
    if result.record is not None:
        write_spice_hdf5(work / "shards" / f"{result.key}.h5", [result.record])
    # the status file is written last: its presence marks the molecule as done
    _write_atomic_json(work / "status" / f"{result.key}.json", info)


def _run_tasks(todo: list[tuple[int, MoleculeSource, str]], config: BuildConfig,
               on_result: Callable[[MoleculeResult], None], progress: bool) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="molecules", unit="mol", disable=not progress)
    if config.workers == 1 and config.scheduler is None:
        for index, molecule, split in todo:
            on_result(label_molecule(index, molecule, config, split))
            bar.update()
        bar.close()
        return
    from dask.distributed import Client, LocalCluster, as_completed

    if config.scheduler:
        client = Client(config.scheduler)
        cluster = None
    else:
        cluster = LocalCluster(n_workers=config.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futures = [client.submit(label_molecule, i, m, config, s, pure=False, key=f"mol-{i}")
                   for i, m, s in todo]
        for future in as_completed(futures):
            on_result(future.result())
            bar.update()
            future.release()
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()


class BuildInterrupted(RuntimeError):
    """Raised by :func:`build_dataset` when ``stop_after`` molecules are done (for tests)."""


def build_dataset(config: BuildConfig, progress: bool = True, stop_after: int | None = None,
                  merge: bool = True) -> dict[str, Any]:
    """Run (or resume) a build and return its summary report.

    Parameters
    ----------
    config : BuildConfig
    progress : bool
        Show a progress bar.
    stop_after : int, optional
        Stop after this many newly finished molecules, as if interrupted (raises
        :class:`BuildInterrupted`); used to test resuming.
    merge : bool
        Merge the shards into ``config.output`` when every molecule is done.

    Raises
    ------
    OutputLockedError
        Another live build is using the same work directory.
    """
    from espaloma_like._io import DirectoryLock, remove_stale_temporaries
    from espaloma_like.data.engines import engine_from_name

    # a missing QM program or GPU would otherwise be recorded as every molecule's failure
    engine_from_name(config.engine, device=config.engine_device).check_available()
    work = config.work_path
    # one build per work directory; a killed build's temporary shard and status files go
    with DirectoryLock(work, "dataset build"):
        for sub in ("shards", "status"):
            (work / sub).mkdir(parents=True, exist_ok=True)
            for path in remove_stale_temporaries(work / sub):
                logger.info("removed %s, left by an interrupted build", path)
        remove_stale_temporaries(work)
        return _build_locked(config, progress, stop_after, merge)


def _build_locked(config: BuildConfig, progress: bool, stop_after: int | None,
                  merge: bool) -> dict[str, Any]:
    work = config.work_path
    molecules, dropped = select_molecules(config)
    splits = scaffold_split([m.smiles for m in molecules], config.split)
    _write_atomic_json(work / "molecules.json", {
        "config": config.model_dump(mode="json"),
        "molecules": [{"smiles": m.smiles, "source": m.source, "name": m.name, "split": s,
                       "key": molecule_key(m.smiles)} for m, s in zip(molecules, splits, strict=True)],
        "dropped": dropped,
    })
    done = {p.stem for p in (work / "status").glob("*.json")}
    todo = [(i, m, s) for i, (m, s) in enumerate(zip(molecules, splits, strict=True))
            if molecule_key(m.smiles) not in done]
    logger.info("%d molecules, %d already done, %d to do",
                len(molecules), len(molecules) - len(todo), len(todo))
    started = time.perf_counter()
    finished = 0

    def on_result(result: MoleculeResult) -> None:
        nonlocal finished
        _store(result, work)
        finished += 1
        if stop_after is not None and finished >= stop_after:
            raise BuildInterrupted(f"stopped after {finished} molecules")

    _run_tasks(todo, config, on_result, progress)
    report = summarize_build(config, molecules, dropped, time.perf_counter() - started)
    if merge:
        merge_shards(config, molecules)
        report["output"] = config.output
    _write_atomic_json(Path(config.output + ".report.json"), report)
    return report


def merge_shards(config: BuildConfig, molecules: Sequence[MoleculeSource]) -> int:
    """Merge finished shards into ``config.output`` (atomically), in the fixed order."""
    from espaloma_like.data.spice import read_spice_hdf5, write_spice_hdf5

    shards = config.work_path / "shards"

    def records():
        for m in molecules:
            path = shards / f"{molecule_key(m.smiles)}.h5"
            if path.is_file():
                yield from read_spice_hdf5(path)

    return write_spice_hdf5(config.output, records(), compression_level=6,
                            single_precision=config.single_precision)


def summarize_build(config: BuildConfig, molecules: Sequence[MoleculeSource],
                    dropped: Sequence[dict[str, str]], seconds: float) -> dict[str, Any]:
    """Counts and timings from the status files of a build."""
    status = []
    for m in molecules:
        path = config.work_path / "status" / f"{molecule_key(m.smiles)}.json"
        if path.is_file():
            status.append(json.loads(path.read_text()))
    failures = Counter(s["error"].split(":")[0] for s in status if s["error"])
    engine_failures: Counter[str] = Counter()
    for s in status:
        engine_failures.update(s["engine_failures"])
    n_labelled = sum(s["n_labelled"] for s in status)
    qm_seconds = sum(s["seconds_qm"] for s in status)
    return {
        "molecules_selected": len(molecules),
        "molecules_done": len(status),
        "molecules_with_data": sum(1 for s in status if s["n_labelled"] > 0),
        "molecules_failed_by_reason": dict(failures),
        "molecules_dropped_by_reason": dict(Counter(d["reason"].split(":")[0] for d in dropped)),
        "conformations_sampled": sum(s["n_sampled"] for s in status),
        "conformations_rejected_by_sampling": sum(s["n_rejected"] for s in status),
        "conformations_labelled": n_labelled,
        "conformation_failures_by_reason": dict(engine_failures),
        "seconds_qm_per_conformation": qm_seconds / n_labelled if n_labelled else None,
        "seconds_sampling_total": sum(s["seconds_sampling"] for s in status),
        "seconds_qm_total": qm_seconds,
        "seconds_charges_total": sum(s["seconds_charges"] for s in status),
        "wall_seconds_this_run": seconds,
        "engine": config.engine,
    }


# --------------------------------------------------------------------------------------------
# Dataset summary (the `data info` command)
# --------------------------------------------------------------------------------------------


def dataset_info(path: str | Path) -> dict[str, Any]:
    """Counts computed from a QM data file: molecules, conformations, elements, charges.

    Any format of :func:`~espaloma_like.data.readers.read_qm_records` (SPICE-format HDF5, OpenFF
    industry SDF files or their directory); records a reader skipped are counted.
    """
    from rdkit import Chem

    from espaloma_like.data.readers import read_qm_records

    elements: Counter[str] = Counter()
    charges: Counter[int] = Counter()
    subsets: Counter[str] = Counter()
    splits: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    n_mol = n_conf = n_scanned = n_charged_labels = 0
    heavy = []
    skipped: list[str] = []
    table = Chem.GetPeriodicTable()
    for record in read_qm_records(path, skipped):
        n_mol += 1
        n_conf += record.n_conformations
        for z in set(record.atomic_numbers.tolist()):
            elements[table.GetElementSymbol(int(z))] += 1
        charges[int(record.total_charge)] += 1
        subsets[record.subset or "-"] += 1
        splits[record.metadata.get("split", "-")] += 1
        levels[record.level_of_theory] += 1
        heavy.append(int((record.atomic_numbers > 1).sum()))
        if record.charges is not None:
            n_charged_labels += 1
        record_kinds = json.loads(record.metadata.get("kinds", "[]"))
        for k in record_kinds:
            kinds[k.split(":")[0] if k.startswith("scan") else k] += 1
        if any(k.startswith("scan") for k in record_kinds):
            n_scanned += 1
    return {
        "file": str(path),
        "molecules": n_mol,
        "conformations": n_conf,
        "molecules_with_torsion_scans": n_scanned,
        "molecules_with_am1bcc_charges": n_charged_labels,
        "level_of_theory": dict(levels),
        "molecules_by_element": dict(sorted(elements.items())),
        "molecules_by_net_charge": {str(k): v for k, v in sorted(charges.items())},
        "molecules_by_subset": dict(sorted(subsets.items())),
        "molecules_by_split": dict(sorted(splits.items())),
        "conformations_by_kind": dict(sorted(kinds.items())),
        "heavy_atoms": {"min": min(heavy, default=0), "median": float(np.median(heavy)) if heavy else 0.0,
                        "max": max(heavy, default=0)},
        "skipped_records": len(skipped),
    }


def info_markdown(info: dict[str, Any]) -> str:
    """The :func:`dataset_info` summary as a markdown table."""
    lines = [f"Summary of `{info['file']}` (computed by `espaloma-like data info`)", "",
             "| quantity | value |", "|---|---|"]
    for key, value in info.items():
        if key == "file":
            continue
        text = ", ".join(f"{k}: {v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
        lines.append(f"| {key.replace('_', ' ')} | {text} |")
    return "\n".join(lines) + "\n"
