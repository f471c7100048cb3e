"""Evaluation against QM data: energy, force and charge errors of the model and the baselines.

Every method is scored the same way: its :class:`~espaloma_like.parameters.ParameterSet` goes
through :func:`espaloma_like.mm.energy.energy_terms` in float64 at every QM conformation of a
molecule, forces by autograd, in the atom order of the record's own mapped SMILES.

* energy RMSE: of per-molecule mean-centred energies (a force field has no absolute energy),
  pooled over every conformation, kcal/mol;
* force RMSE: over every Cartesian force component, kcal/mol/A;
* charge RMSE: partial charges against the record's AM1-BCC labels, e. The baselines are given
  those very labels, so theirs is 0 by construction (it is computed, and is exactly 0).

Molecules are compared on one set: a molecule on which any method fails is left out of every
method's metrics (and listed), so that the ratios model/sage and model/gaff compare like with
like; the model's metrics on every molecule it parametrized are reported beside them.

:func:`~espaloma_like.training.md_stability.md_stability` (re-exported here) runs short vacuum
Langevin MD of exported model Systems and checks that the molecules stay intact.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like._io import atomic_write_text
from espaloma_like.exceptions import DataFormatError
from espaloma_like.methods import BASELINES, METHOD_NAMES, get_method
from espaloma_like.training.md_stability import MDResult, MDStabilityReport, md_stability
from espaloma_like.units import KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A, KJ_TO_KCAL

if TYPE_CHECKING:
    from espaloma_like.data.records import QMRecord
    from espaloma_like.molecule import MoleculeGraph
    from espaloma_like.nn.model import ParameterModel
    from espaloma_like.parameters import ParameterSet

logger = logging.getLogger(__name__)

__all__ = [
    "METHODS",
    "SPLITS",
    "ErrorMetrics",
    "EvaluationReport",
    "MDResult",
    "MDStabilityReport",
    "MethodErrors",
    "MoleculeEvaluation",
    "evaluate",
    "md_stability",
    "write_parity_plots",
]

#: Methods :func:`evaluate` knows, in report order (:mod:`espaloma_like.methods`).
METHODS = METHOD_NAMES
#: ``split`` values: the file's held-out molecules, the rest, or everything.
SPLITS = ("held_out", "train", "all")
UNITS = {"energy": "kcal/mol (per-molecule mean-centred)", "force": "kcal/mol/A", "charge": "e"}

#: (method, mapped SMILES, charges bytes) -> ParameterSet, or the error message of a failure.
BaselineCache = dict[tuple[str, str, bytes], "ParameterSet | str"]


# --------------------------------------------------------------------------------------------
# Report objects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodErrors:
    """Errors of one method on one molecule.

    Attributes
    ----------
    energy_rmse : float
        kcal/mol, of mean-centred energies over the molecule's conformations.
    force_rmse : float
        kcal/mol/A, over all (C, N, 3) force components.
    charge_rmse : float or None
        e, against the record's AM1-BCC labels; None when the record has none.
    seconds : float
        Wall time of parametrization plus energies and forces.
    """

    energy_rmse: float
    force_rmse: float
    charge_rmse: float | None
    seconds: float


@dataclass(frozen=True)
class MoleculeEvaluation:
    """One molecule: its errors per method, and the methods that failed on it."""

    name: str
    smiles: str
    subset: str
    n_atoms: int
    n_conformations: int
    errors: dict[str, MethodErrors]
    failures: dict[str, str]

    @property
    def compared(self) -> bool:
        """True when every method succeeded (the molecule is in the comparison set)."""
        return not self.failures


@dataclass(frozen=True)
class ErrorMetrics:
    """Errors of one method on a set of molecules (units as in :class:`MethodErrors`).

    ``energy_rmse``, ``force_rmse`` and ``charge_rmse`` are pooled over every conformation,
    force component and atom; a few strained conformations can dominate them, so the medians
    over molecules of the per-molecule RMSEs are given too.
    """

    n_molecules: int
    n_conformations: int
    energy_rmse: float
    force_rmse: float
    charge_rmse: float | None
    energy_rmse_median: float = math.nan
    force_rmse_median: float = math.nan


@dataclass(frozen=True)
class ParityData:
    """Points of the parity plots of one method (comparison set), report units.

    ``energy_ref``/``energy_mm`` (sum C,) mean-centred, ``force_ref``/``force_mm`` (sum 3 C N,).
    """

    energy_ref: np.ndarray
    energy_mm: np.ndarray
    force_ref: np.ndarray
    force_mm: np.ndarray


def finite_or_none(value: Any) -> Any:
    """JSON cannot hold NaN/inf: write them as null (recursively)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def format_number(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.0f}"


@dataclass
class EvaluationReport:
    """Errors of every method on one split of QM data (see the module docstring).

    Attributes
    ----------
    settings : dict
        What was run: model, files, split, methods, limits, package version.
    methods : tuple of str
    overall : dict[str, ErrorMetrics]
        Per method, on the comparison set.
    by_subset : dict[str, dict[str, ErrorMetrics]]
        Subset (the records' source) -> method -> metrics, on the comparison set.
    ratios : dict[str, dict[str, dict[str, float | None]]]
        Scope ("overall" or a subset) -> baseline -> {"energy": model/baseline RMSE ratio,
        "force": ...}.
    model_all_molecules : ErrorMetrics or None
        The model on every molecule it parametrized, excluded ones included.
    molecules : list of MoleculeEvaluation
    skipped : list of (name, reason)
        Records that could not be read as a supported molecule.
    timings : dict[str, dict[str, float]]
        Per method: seconds in total and per molecule (mean, median, max).
    md : MDStabilityReport or None
    parity : dict[str, ParityData]
        Plot data; not written to JSON.
    """

    settings: dict[str, Any]
    methods: tuple[str, ...]
    overall: dict[str, ErrorMetrics]
    by_subset: dict[str, dict[str, ErrorMetrics]]
    ratios: dict[str, dict[str, dict[str, float | None]]]
    model_all_molecules: ErrorMetrics | None
    molecules: list[MoleculeEvaluation]
    skipped: list[tuple[str, str]]
    timings: dict[str, dict[str, float]]
    md: MDStabilityReport | None = None
    parity: dict[str, ParityData] = field(default_factory=dict, repr=False, compare=False)

    @property
    def excluded(self) -> list[MoleculeEvaluation]:
        """Molecules left out of the comparison because a method failed on them."""
        return [m for m in self.molecules if not m.compared]

    def to_dict(self) -> dict[str, Any]:
        """Everything but the plot data, JSON-ready (non-finite numbers as None)."""
        return finite_or_none({
            "settings": self.settings,
            "units": UNITS,
            "methods": list(self.methods),
            "n_molecules_evaluated": len(self.molecules),
            "n_molecules_compared": len(self.molecules) - len(self.excluded),
            "overall": {m: asdict(v) for m, v in self.overall.items()},
            "by_subset": {s: {m: asdict(v) for m, v in d.items()}
                          for s, d in self.by_subset.items()},
            "ratios": self.ratios,
            "model_all_molecules": (asdict(self.model_all_molecules)
                                    if self.model_all_molecules is not None else None),
            "excluded": [{"name": m.name, "smiles": m.smiles, "failures": m.failures}
                         for m in self.excluded],
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
            "timings": self.timings,
            "molecules": [asdict(m) for m in self.molecules],
            "md_stability": self.md.to_dict() if self.md is not None else None,
        })

    def to_json(self, indent: int = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_markdown(self) -> str:
        """Tables: overall, ratios, per subset, exclusions, timings, MD stability."""
        s = self.settings
        n_compared = len(self.molecules) - len(self.excluded)
        lines = [
            f"# Evaluation of `{s.get('model', '-')}` on the {s['split']} split", "",
            f"Data: {', '.join(f'`{f}`' for f in s['data_files'])}. {len(self.molecules)} "
            f"molecules evaluated, {n_compared} compared (every method succeeded), "
            f"{len(self.skipped)} skipped as unsupported. Energies in kcal/mol (per-molecule "
            "mean-centred), forces in kcal/mol/A, charges in e against the AM1-BCC labels "
            "(the baselines use those labels: 0 by construction).", "",
            "| method | molecules | conformations | energy RMSE | force RMSE | charge RMSE "
            "| median per molecule: energy / force RMSE |",
            "|---|---|---|---|---|---|---|",
        ]
        for method, m in self.overall.items():
            charge = format_number(m.charge_rmse)
            if method in BASELINES and m.charge_rmse == 0.0:
                charge = "0 (labels)"
            lines.append(f"| {method} | {m.n_molecules} | {m.n_conformations} | "
                         f"{format_number(m.energy_rmse)} | {format_number(m.force_rmse)} | {charge} | "
                         f"{format_number(m.energy_rmse_median)} / {format_number(m.force_rmse_median)} |")
        if self.excluded and self.model_all_molecules is not None:
            a = self.model_all_molecules
            lines.append(f"| model, all {a.n_molecules} it parametrized | {a.n_molecules} | "
                         f"{a.n_conformations} | {format_number(a.energy_rmse)} | "
                         f"{format_number(a.force_rmse)} | "
                         f"{format_number(a.charge_rmse)} | {format_number(a.energy_rmse_median)} / "
                         f"{format_number(a.force_rmse_median)} |")
        overall_ratios = self.ratios.get("overall", {})
        if overall_ratios:
            lines += ["", "| ratio | energy RMSE | force RMSE |", "|---|---|---|"]
            for baseline, r in overall_ratios.items():
                lines.append(f"| model / {baseline} | {format_number(r['energy'])} | "
                             f"{format_number(r['force'])} |")
        if self.by_subset:
            names = " / ".join(self.methods)
            lines += ["", "## By subset", "",
                      f"| subset | molecules | conformations | energy RMSE ({names}) | "
                      f"force RMSE ({names}) | charge RMSE ({names}) |",
                      "|---|---|---|---|---|---|"]
            for subset, per_method in self.by_subset.items():
                first = next(iter(per_method.values()))
                cells = [" / ".join(format_number(getattr(per_method[m], key)) for m in self.methods)
                         for key in ("energy_rmse", "force_rmse", "charge_rmse")]
                lines.append(f"| {subset} | {first.n_molecules} | {first.n_conformations} | "
                             + " | ".join(cells) + " |")
        if self.excluded:
            lines += ["", "## Excluded from the comparison", "", "| molecule | SMILES | failures |",
                      "|---|---|---|"]
            lines += [f"| {m.name} | `{m.smiles}` | "
                      + "; ".join(f"{k}: {v[:160]}" for k, v in m.failures.items()) + " |"
                      for m in self.excluded]
        if self.skipped:
            lines += ["", "## Skipped (not supported)", ""]
            lines += [f"- {name}: {reason[:200]}" for name, reason in self.skipped]
        if self.timings:
            lines += ["", "## Timings (parametrization + energies and forces, per molecule)", "",
                      "| method | molecules | total (s) | mean (s) | median (s) | max (s) |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {m} | {int(t['molecules'])} | {t['total']:.1f} | {t['mean']:.3f} | "
                      f"{t['median']:.3f} | {t['max']:.2f} |" for m, t in self.timings.items()]
        if self.md is not None:
            lines += ["", "## MD stability (model)", "", self.md.to_markdown().rstrip()]
        return "\n".join(lines) + "\n"

    def write(self, directory: str | Path, plots: bool = True) -> list[Path]:
        """Write ``report.json``, ``report.md`` and (if ``plots``) ``parity_*.png``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "report.json", out / "report.md"]
        atomic_write_text(written[0], self.to_json() + "\n")
        atomic_write_text(written[1], self.to_markdown())
        if plots:
            written += write_parity_plots(self, out)
        return written


# --------------------------------------------------------------------------------------------
# Energies, forces, parameters
# --------------------------------------------------------------------------------------------


def mm_energies_forces(parameters: ParameterSet, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energies (C,) kJ/mol and forces (C, N, 3) kJ/mol/nm of ``parameters``, float64.

    Parameters
    ----------
    parameters : ParameterSet
    xyz : np.ndarray
        (C, N, 3) conformations, nm.
    """
    import torch

    from espaloma_like.mm.energy import energy_terms

    params = parameters.to(dtype=torch.float64)
    x = torch.tensor(np.asarray(xyz, dtype=np.float64), dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        total = energy_terms(params, x).total
        (gradient,) = torch.autograd.grad(total.sum(), x)
    return total.detach().numpy(), -gradient.numpy()


class _BaselineFailure(RuntimeError):
    """A baseline failed on this molecule (message already says why, possibly from the cache)."""


def method_parameters(method: str, graph: MoleculeGraph, charges: np.ndarray | str,
                network: ParameterModel | None, cache: BaselineCache) -> ParameterSet:
    """The ParameterSet of ``method`` for ``graph``; baselines cached, failures too.

    ``charges`` are the baselines' (N,) charges, e, or the error that prevented computing them.
    """
    chosen = get_method(method)
    if not chosen.baseline:
        return chosen.parameters(graph, model=network)
    if isinstance(charges, str):
        raise _BaselineFailure(charges)
    key = (method, graph.mapped_smiles, np.ascontiguousarray(charges).tobytes())
    if key not in cache:
        try:
            cache[key] = chosen.parameters(graph, charges)
        except Exception as err:  # recorded as this method's failure on this molecule
            cache[key] = f"{type(err).__name__}: {err}"
    value = cache[key]
    if isinstance(value, str):
        raise _BaselineFailure(value)
    return value


def _load_network(
    model: ParameterModel | str | Path | None,
) -> tuple[ParameterModel, dict[str, Any]]:
    """A float64 eval-mode model and a short description of it; never mutates the caller's."""
    from espaloma_like.api import load_model
    from espaloma_like.nn.model import ParameterModel

    if isinstance(model, ParameterModel):
        network = copy.deepcopy(model).double().eval()
        metadata = dict(getattr(model, "metadata", {}) or {})
        network.metadata = metadata  # type: ignore[assignment]
    else:
        network = load_model(model)
        metadata = dict(getattr(network, "metadata", {}) or {})
    described = {k: metadata[k] for k in ("name", "path", "step") if k in metadata}
    described.setdefault("name", "in-memory")
    return network, described


def _records(paths: Sequence[Path], split: str, max_molecules: int | None,
             skipped: list[tuple[str, str]], splits_seen: dict[str, int],
             ) -> Iterator[tuple[QMRecord, MoleculeGraph]]:
    """Records of ``split`` with their graphs (record atom order); unsupported ones listed."""
    from espaloma_like.data.records import record_graph
    from espaloma_like.data.spice import read_spice_hdf5

    n = 0
    for path in paths:
        for record in read_spice_hdf5(path):
            found = record.metadata.get("split", "train")
            splits_seen[found] = splits_seen.get(found, 0) + 1
            if split != "all" and found != split:
                continue
            if max_molecules is not None and n >= max_molecules:
                return
            n += 1
            try:
                graph = record_graph(record)
            except Exception as err:  # unsupported chemistry: listed, not fatal
                skipped.append((record.name, f"{type(err).__name__}: {err}"))
                continue
            yield record, graph


def _pool(rows: Sequence[tuple[int, int, MethodErrors]]) -> ErrorMetrics:
    """Pool per-molecule RMSEs ``(n_conformations, n_atoms, errors)`` into one set's RMSEs."""
    n_conf = sum(c for c, _, _ in rows)
    n_force = sum(3 * c * a for c, a, _ in rows)
    energy = sum(e.energy_rmse**2 * c for c, _, e in rows)
    force = sum(e.force_rmse**2 * 3 * c * a for c, a, e in rows)
    labelled = [(a, e.charge_rmse) for _, a, e in rows if e.charge_rmse is not None]
    n_q = sum(a for a, _ in labelled)
    charge = math.sqrt(sum(q**2 * a for a, q in labelled) / n_q) if n_q else None
    return ErrorMetrics(
        n_molecules=len(rows), n_conformations=n_conf,
        energy_rmse=math.sqrt(energy / n_conf) if n_conf else math.nan,
        force_rmse=math.sqrt(force / n_force) if n_force else math.nan,
        charge_rmse=charge,
        energy_rmse_median=float(np.median([e.energy_rmse for _, _, e in rows])) if rows
        else math.nan,
        force_rmse_median=float(np.median([e.force_rmse for _, _, e in rows])) if rows
        else math.nan,
    )


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 and math.isfinite(a) and math.isfinite(b) else None


def _ratios(per_method: dict[str, ErrorMetrics]) -> dict[str, dict[str, float | None]]:
    if "model" not in per_method:
        return {}
    model = per_method["model"]
    return {b: {"energy": _ratio(model.energy_rmse, per_method[b].energy_rmse),
                "force": _ratio(model.force_rmse, per_method[b].force_rmse)}
            for b in BASELINES if b in per_method}


def _timing(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"molecules": 0, "total": 0.0, "mean": 0.0, "median": 0.0, "max": 0.0}
    return {"molecules": len(seconds), "total": float(np.sum(seconds)),
            "mean": float(np.mean(seconds)), "median": float(np.median(seconds)),
            "max": float(np.max(seconds))}


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------


def evaluate(
    model_or_checkpoint: ParameterModel | str | Path | None,
    data_files: Sequence[str | Path] | str | Path,
    split: str = "held_out",
    methods: Iterable[str] = METHODS,
    max_molecules: int | None = None,
    max_conformations: int | None = None,
    *,
    max_relative_energy_kcal: float | None = 150.0,
    max_force_kcal_per_a: float | None = 300.0,
    seed: int = 0,
    baseline_cache: BaselineCache | None = None,
    md_picoseconds: float = 0.0,
    md_options: dict[str, Any] | None = None,
    num_threads: int | None = None,
    progress: bool = False,
) -> EvaluationReport:
    """Energy, force and charge errors of the model and the baselines on QM data.

    Parameters
    ----------
    model_or_checkpoint : ParameterModel, str, pathlib.Path or None
        A model (copied and run in float64), a shipped model name or a checkpoint path; the
        default shipped model if None. Not loaded when "model" is not among ``methods``.
    data_files : path or sequence of paths
        SPICE-format HDF5 files (:mod:`espaloma_like.data.spice`).
    split : {"held_out", "train", "all"}
        Which molecules: those the file marks held out (``metadata["split"]``), the others
        (records without a split count as train), or all.
    methods : iterable of str
        Any of "model", "sage", "gaff" (Sage 2.2.1 and GAFF-2.11, both with the record's
        AM1-BCC charges; computed with AmberTools when a record has none).
    max_molecules : int, optional
        Evaluate the first ``max_molecules`` molecules of the split (file order).
    max_conformations : int, optional
        At most this many conformations per molecule, drawn with ``seed``.
    seed : int
        Seed of the conformation subsample.
    baseline_cache : dict, optional
        Baseline ParameterSets by molecule and charges; pass the same dict to several calls
        (e.g. one per checkpoint) to compute the baselines once. A fresh one per call otherwise.
    md_picoseconds : float
        When > 0, run :func:`md_stability` of the model for this long on every evaluated
        molecule (started from its first QM conformation).
    md_options : dict, optional
        Further keyword arguments of :func:`md_stability` (temperature, platform, seed, ...).
    num_threads : int, optional
        torch intra-op threads during the call (restored afterwards). Molecules this small gain
        nothing from several threads, and on a busy machine they lose a lot: 1 is a good choice.
    progress : bool
        Show a progress bar.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    DataFormatError
        A data file is missing or unreadable, or the split holds no molecules.
    CheckpointError
        The model cannot be loaded.
    ValueError
        Unknown split or method.
    """
    import torch

    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        return _evaluate(model_or_checkpoint, data_files, split, tuple(methods), max_molecules,
                         max_conformations, seed, baseline_cache, md_picoseconds, md_options,
                         progress, (max_relative_energy_kcal, max_force_kcal_per_a))
    finally:
        torch.set_num_threads(previous)


def _evaluate(
    model_or_checkpoint: ParameterModel | str | Path | None,
    data_files: Sequence[str | Path] | str | Path, split: str, methods: tuple[str, ...],
    max_molecules: int | None, max_conformations: int | None, seed: int,
    baseline_cache: BaselineCache | None, md_picoseconds: float,
    md_options: dict[str, Any] | None, progress: bool,
    limits: tuple[float | None, float | None] = (None, None),
) -> EvaluationReport:
    from tqdm import tqdm

    from espaloma_like import __version__

    methods = tuple(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown methods {unknown}; choose from {METHODS}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    files = ([Path(data_files)] if isinstance(data_files, str | Path)
             else [Path(p) for p in data_files])
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise DataFormatError(f"no such dataset file: {', '.join(missing)}")
    network, described = _load_network(model_or_checkpoint) if "model" in methods else (None, {})
    cache: BaselineCache = {} if baseline_cache is None else baseline_cache
    rng = np.random.default_rng(seed)

    skipped: list[tuple[str, str]] = []
    splits_seen: dict[str, int] = {}
    molecules: list[MoleculeEvaluation] = []
    # (n_conformations, n_atoms, errors) per method, for the pooled metrics
    rows: dict[str, list[tuple[int, int, MethodErrors, str, bool]]] = {m: [] for m in methods}
    points: dict[str, list[tuple[np.ndarray, ...]]] = {m: [] for m in methods}
    md_inputs: list[MoleculeGraph] = []
    bar = tqdm(desc="evaluate", unit="mol", disable=not progress)
    for record, graph in _records(files, split, max_molecules, skipped, splits_seen):
        from espaloma_like.training.dataset import lennard_jones_clashes, plausible_conformations

        mask = plausible_conformations(record.energies, record.forces, *limits)
        if limits[1] is not None:
            mask &= ~lennard_jones_clashes(graph, record.conformations, limits[1])
        keep = np.flatnonzero(mask)
        if len(keep) < 2:
            skipped.append((record.name, "fewer than 2 conformations within the energy/force limits"))
            continue
        if max_conformations is not None and len(keep) > max_conformations:
            keep = np.sort(rng.choice(keep, size=max_conformations, replace=False))
        xyz = np.asarray(record.conformations[keep])
        ref_e = np.asarray(record.energies[keep])
        ref_f = np.asarray(record.forces[keep])
        ref_e = ref_e - ref_e.mean()
        labels = None if record.charges is None else np.array(record.charges, dtype=np.float64)
        charges: np.ndarray | str = labels if labels is not None else "no charges"
        if labels is None and any(m in BASELINES for m in methods):
            try:
                from espaloma_like.baselines.am1bcc import am1bcc_charges

                charges = am1bcc_charges(graph)
            except Exception as err:  # then every baseline fails on this molecule
                charges = f"AM1-BCC charges failed: {type(err).__name__}: {err}"
        errors: dict[str, MethodErrors] = {}
        failures: dict[str, str] = {}
        predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for method in methods:
            started = time.perf_counter()
            try:
                parameters = method_parameters(method, graph, charges, network, cache)
                energy, forces = mm_energies_forces(parameters, xyz)
                if not (np.all(np.isfinite(energy)) and np.all(np.isfinite(forces))):
                    raise FloatingPointError("non-finite MM energies or forces")
            except Exception as err:  # a method's failure on one molecule: listed, not fatal
                failures[method] = (str(err) if isinstance(err, _BaselineFailure)
                                    else f"{type(err).__name__}: {err}")
                continue
            q = parameters.nonbonded.charges.detach().cpu().double().numpy()
            energy = energy - energy.mean()
            errors[method] = MethodErrors(
                energy_rmse=float(np.sqrt(np.mean((energy - ref_e) ** 2))) * KJ_TO_KCAL,
                force_rmse=float(np.sqrt(np.mean((forces - ref_f) ** 2)))
                * KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A,
                charge_rmse=None if labels is None else float(np.sqrt(np.mean((q - labels) ** 2))),
                seconds=time.perf_counter() - started,
            )
            predictions[method] = (energy, forces)
        evaluation = MoleculeEvaluation(
            name=record.name, smiles=record.metadata.get("smiles", graph.smiles),
            subset=record.subset or "(none)", n_atoms=graph.n_atoms, n_conformations=len(keep),
            errors=errors, failures=failures)
        molecules.append(evaluation)
        for method, e in errors.items():
            rows[method].append(
                (len(keep), graph.n_atoms, e, evaluation.subset, evaluation.compared))
            if evaluation.compared:
                energy, forces = predictions[method]
                points[method].append((ref_e, energy, ref_f.ravel(), forces.ravel()))
        if md_picoseconds > 0 and "model" in errors:
            md_inputs.append(graph.with_positions(xyz[0]))
        bar.update()
    bar.close()
    if not molecules:
        raise DataFormatError(
            f"no molecules in the {split!r} split of {', '.join(map(str, files))}"
            + (f" ({len(skipped)} skipped as unsupported)" if skipped else "")
            + "; molecules per split in the files: "
            + (", ".join(f"{k}: {v}" for k, v in sorted(splits_seen.items())) or "none")
        )

    overall = {m: _pool([(c, a, e) for c, a, e, _, ok in rows[m] if ok]) for m in methods}
    subsets = sorted({m.subset for m in molecules if m.compared})
    by_subset = {s: {m: _pool([(c, a, e) for c, a, e, sub, ok in rows[m] if ok and sub == s])
                     for m in methods} for s in subsets}
    ratios = {"overall": _ratios(overall)} | {s: _ratios(d) for s, d in by_subset.items()}
    force_unit = KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A
    parity = {
        method: ParityData(
            energy_ref=np.concatenate([c[0] for c in chunks]) * KJ_TO_KCAL,
            energy_mm=np.concatenate([c[1] for c in chunks]) * KJ_TO_KCAL,
            force_ref=np.concatenate([c[2] for c in chunks]) * force_unit,
            force_mm=np.concatenate([c[3] for c in chunks]) * force_unit,
        )
        for method, chunks in points.items() if chunks
    }
    settings: dict[str, Any] = {
        "model": described.get("name", "-") if network is not None else "-",
        "model_info": described,
        "data_files": [str(p) for p in files], "split": split, "methods": list(methods),
        "max_molecules": max_molecules, "max_conformations": max_conformations, "seed": seed,
        "conformation_limits": {"max_relative_energy_kcal": limits[0],
                                "max_force_kcal_per_a": limits[1],
                                "note": "the same conformations for every method"},
        "package_version": __version__,
        "baseline_charges": "the records' AM1-BCC labels (the same for Sage and GAFF)",
        "energy_evaluation": "espaloma_like.mm.energy.energy_terms, float64, forces by autograd",
    }
    report = EvaluationReport(
        settings=settings, methods=methods, overall=overall, by_subset=by_subset, ratios=ratios,
        model_all_molecules=_pool([(c, a, e) for c, a, e, _, _ in rows["model"]])
        if "model" in methods and rows["model"] else None,
        molecules=molecules, skipped=skipped,
        timings={m: _timing([e.seconds for _, _, e, _, _ in rows[m]]) for m in methods},
        parity=parity,
    )
    if md_picoseconds > 0 and network is not None and md_inputs:
        report.md = md_stability(network, md_inputs, picoseconds=md_picoseconds,
                                 progress=progress, **(md_options or {}))
    return report


# --------------------------------------------------------------------------------------------
# Parity plots
# --------------------------------------------------------------------------------------------


def write_parity_plots(report: EvaluationReport, directory: str | Path,
                       max_force_points: int = 200_000) -> list[Path]:
    """``parity_energy.png`` and ``parity_force.png``, one panel per method (comparison set).

    Points are subsampled (fixed seed) to ``max_force_points`` per panel to keep files small;
    all panels share one axis range.
    Returns the files written; none, with a logged warning, when matplotlib is missing.
    """
    try:  # the object API, not pyplot: no global backend or figure state is touched
        from matplotlib.figure import Figure
    except ImportError:
        logger.warning("matplotlib is not installed: parity plots skipped")
        return []
    methods = [m for m in report.methods if m in report.parity]
    if not methods:
        return []
    out = Path(directory)
    written = []
    for kind, unit in (("energy", "kcal/mol"), ("force", "kcal/mol/Å")):
        panels = []
        for method in methods:
            data = report.parity[method]
            ref, mm = ((data.energy_ref, data.energy_mm) if kind == "energy"
                       else (data.force_ref, data.force_mm))
            if len(ref) > max_force_points:
                pick = np.random.default_rng(0).choice(len(ref), max_force_points, replace=False)
                ref, mm = ref[pick], mm[pick]
            panels.append((method, ref, mm))
        # one range for every panel, so that the methods can be compared by eye
        lo = min(float(min(r.min(initial=0.0), m.min(initial=0.0))) for _, r, m in panels)
        hi = max(float(max(r.max(initial=0.0), m.max(initial=0.0))) for _, r, m in panels)
        lo, hi = lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo)
        fig = Figure(figsize=(4.2 * len(methods), 4.6), layout="constrained")
        axes = fig.subplots(1, len(methods), squeeze=False)
        for ax, (method, ref, mm) in zip(axes[0], panels, strict=True):
            rmse = getattr(report.overall[method], f"{kind}_rmse")
            ax.scatter(ref, mm, s=2 if kind == "energy" else 0.5, alpha=0.4, rasterized=True)
            ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_aspect("equal")
            ax.set_title(f"{method}: RMSE {format_number(rmse)} {unit}")
            ax.set_xlabel(f"QM {kind} ({unit})")
            ax.set_ylabel(f"MM {kind} ({unit})")
        fig.suptitle(f"{report.settings['split']} split, "
                     f"{report.overall[methods[0]].n_molecules} molecules"
                     + (", energies mean-centred per molecule" if kind == "energy" else ""))
        path = out / f"parity_{kind}.png"
        fig.savefig(path, dpi=120)
        written.append(path)
    return written
