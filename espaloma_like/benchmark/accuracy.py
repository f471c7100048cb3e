"""Accuracy benchmark: the shipped model against OpenFF Sage 2.2.1 and GAFF-2.11, in one run.

Every section scores the three methods on the same conformations, Sage and GAFF with the
dataset's AM1-BCC charge labels (the external sets: AM1-BCC single points at their first
conformation). Reference: GFN2-xTB (the training level) except in section 4.

1. held-out split: energy and force RMSE, overall and per subset
   (:func:`espaloma_like.training.evaluate.evaluate`, no MD), parity plots;
2. held-out split by conformation origin (ETKDG embedding, Sage minimum, 500 K MD, relaxed
   torsion-scan point): force RMSE per origin, and the RMSE of every relaxed torsion-scan
   energy profile, each profile aligned by its mean;
3. geometries: GFN2-xTB minima of held-out molecules, each force field minimized from them;
   heavy-atom RMSD and the xTB energy of the MM minimum above the xTB minimum;
4. external QM data (``../shared/qm-reference``: SPICE sample, grappa tripeptides, rMD17
   ethanol), when present; otherwise the section records why it was skipped.

:func:`run_accuracy_benchmark` writes ``accuracy.json`` (its top-level ``summary`` feeds the
speed-accuracy figure), ``accuracy.md`` and PNG plots. Internally OpenMM units; kcal/mol,
kcal/mol/Å and Å in the outputs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like._io import atomic_write_text
from espaloma_like.benchmark.provenance import cpu_model, git_state
from espaloma_like.exceptions import DataFormatError
from espaloma_like.methods import METHOD_NAMES
from espaloma_like.training.evaluate import finite_or_none as _finite_or_none  # cheap: numpy only

if TYPE_CHECKING:
    from espaloma_like.data.engines import XTBEngine
    from espaloma_like.data.records import QMRecord
    from espaloma_like.molecule import MoleculeGraph
    from espaloma_like.nn.model import ParameterModel
    from espaloma_like.parameters import ParameterSet
    from espaloma_like.training.evaluate import BaselineCache, EvaluationReport

logger = logging.getLogger(__name__)

__all__ = ["BenchmarkSize", "GeometryResult", "TorsionProfile", "run_accuracy_benchmark"]

METHODS = METHOD_NAMES
UNITS = {"energy": "kcal/mol (per-molecule mean-centred)", "force": "kcal/mol/Å",
         "torsion_profile": "kcal/mol (each profile aligned by its mean)", "rmsd": "Å (heavy atoms)",
         "geometry_dE": "kcal/mol (GFN2-xTB energy of the MM minimum above the xTB minimum)"}


@dataclass(frozen=True)
class BenchmarkSize:
    """How much of each section to run (None: everything).

    Attributes
    ----------
    held_out_molecules, held_out_conformations : int or None
        Section 1: first molecules of the held-out split (file order); conformations per
        molecule (random subsample, seed 0).
    kind_molecules : int or None
        Section 2: first held-out molecules; in quick mode only molecules with a torsion scan.
    scans_only : bool
        Section 2 takes only molecules with a relaxed torsion scan.
    geometry_molecules : int or None
        Section 3: first held-out molecules.
    external_molecules, external_conformations : int or None
        Section 4, per set: the smallest molecules (atom count), conformations per molecule.
    """

    held_out_molecules: int | None
    held_out_conformations: int | None
    kind_molecules: int | None
    scans_only: bool
    geometry_molecules: int | None
    external_molecules: int | None
    external_conformations: int | None


FULL = BenchmarkSize(None, None, None, False, None, None, None)
QUICK = BenchmarkSize(5, 20, 4, True, 2, 1, 10)


@dataclass(frozen=True)
class TorsionProfile:
    """One relaxed torsion scan: QM and MM energies along it (each aligned by its mean).

    Attributes
    ----------
    torsion : str
        Scanned atoms ``"i-j-k-l"`` (record atom order).
    angles : tuple of float
        (P,) restraint targets of the scan points, degrees, ascending.
    qm, mm : tuple of float, dict[str, tuple of float]
        (P,) energies minus the profile mean, kcal/mol; ``mm`` per method.
    rmse : dict[str, float]
        Per method, kcal/mol.
    """

    name: str
    smiles: str
    torsion: str
    angles: tuple[float, ...]
    qm: tuple[float, ...]
    mm: dict[str, tuple[float, ...]]
    rmse: dict[str, float]


@dataclass(frozen=True)
class GeometryResult:
    """One molecule of section 3: RMSD (Å, heavy atoms) and ΔE (kcal/mol) per method."""

    name: str
    smiles: str
    heavy_atoms: int
    rmsd: dict[str, float]
    delta_e: dict[str, float]


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) or b <= 0:
        return None
    return a / b


def _held_out(data: Path) -> Iterator[tuple[QMRecord, MoleculeGraph]]:
    """Held-out records with their graphs, file order; unsupported ones dropped (logged)."""
    from espaloma_like.data.records import record_graph
    from espaloma_like.data.spice import read_spice_hdf5

    for record in read_spice_hdf5(data):
        if record.metadata.get("split") != "held_out":
            continue
        try:
            graph = record_graph(record)
        except Exception as err:  # the evaluation lists these; here they are only logged
            logger.warning("held-out record %s skipped: %s", record.name, err)
            continue
        yield record, graph


def _method_parameters(method: str, graph: MoleculeGraph, charges: np.ndarray,
                       network: ParameterModel, cache: BaselineCache) -> ParameterSet:
    """Parameters of one method; baselines through the evaluation's cache (failures too)."""
    from espaloma_like.training.evaluate import method_parameters

    return method_parameters(method, graph, charges, network, cache)


# --------------------------------------------------------------------------------------------
# Section 2: conformation origin and torsion profiles
# --------------------------------------------------------------------------------------------


def _conformation_kinds(data: Path, network: ParameterModel, cache: BaselineCache,
                        size: BenchmarkSize, progress: bool) -> tuple[dict[str, Any],
                                                                      list[TorsionProfile]]:
    """Force RMSE by conformation origin and torsion-profile RMSEs on the held-out split."""
    from tqdm import tqdm

    from espaloma_like.training.dataset import lennard_jones_clashes, plausible_conformations
    from espaloma_like.training.evaluate import mm_energies_forces
    from espaloma_like.units import KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A, KJ_TO_KCAL

    squares: dict[str, dict[str, float]] = {m: {} for m in METHODS}
    counts: dict[str, int] = {}
    profiles: list[TorsionProfile] = []
    excluded: list[dict[str, str]] = []
    n_seen = 0
    bar = tqdm(desc="conformation kinds", unit="mol", disable=not progress)
    for record, graph in _held_out(data):
        if size.kind_molecules is not None and n_seen >= size.kind_molecules:
            break
        all_kinds = json.loads(record.metadata.get("kinds", "[]"))
        if len(all_kinds) != record.n_conformations:
            all_kinds = ["unknown"] * record.n_conformations
        if size.scans_only and not any(k.startswith("scan:") for k in all_kinds):
            continue
        n_seen += 1
        bar.update()
        keep = plausible_conformations(record.energies, record.forces)
        keep &= ~lennard_jones_clashes(graph, record.conformations)
        if keep.sum() < 2 or record.charges is None:
            excluded.append({"name": record.name, "reason": "no AM1-BCC charge labels"
                             if record.charges is None else "fewer than 2 plausible conformations"})
            continue
        kinds = np.array(all_kinds)[keep]
        predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        try:
            for method in METHODS:
                parameters = _method_parameters(method, graph, np.asarray(record.charges), network,
                                                cache)
                predictions[method] = mm_energies_forces(parameters, record.conformations[keep])
        except Exception as err:  # one method failed: the molecule is left out for all
            excluded.append({"name": record.name, "reason": f"{method}: {err}"})
            continue
        origin = np.array([k.split(":")[0] for k in kinds])
        reference_e = record.energies[keep]
        reference_f = record.forces[keep]
        for kind in sorted(set(origin)):
            counts[kind] = counts.get(kind, 0) + int((origin == kind).sum()) * 3 * record.n_atoms
        for method, (_, forces) in predictions.items():
            error = (forces - reference_f) * KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A
            for kind in sorted(set(origin)):
                squares[method][kind] = (squares[method].get(kind, 0.0)
                                         + float((error[origin == kind] ** 2).sum()))
        scans = sorted({k.rsplit(":", 1)[0] for k in kinds if k.startswith("scan:")})
        for scan in scans:
            mask = np.array([k.rsplit(":", 1)[0] == scan for k in kinds])
            if mask.sum() < 3:
                continue
            angles = np.array([float(k.rsplit(":", 1)[1]) for k in kinds[mask]])
            order = np.argsort(angles, kind="stable")
            qm = reference_e[mask][order] * KJ_TO_KCAL
            qm = qm - qm.mean()
            mm, rmse = {}, {}
            for method, (energy, _) in predictions.items():
                e = energy[mask][order] * KJ_TO_KCAL
                e = e - e.mean()
                mm[method] = tuple(float(v) for v in e)
                rmse[method] = float(np.sqrt(np.mean((e - qm) ** 2)))
            profiles.append(TorsionProfile(
                name=record.name, smiles=record.metadata.get("smiles", graph.smiles),
                torsion=scan.split(":", 1)[1], angles=tuple(float(a) for a in angles[order]),
                qm=tuple(float(v) for v in qm), mm=mm, rmse=rmse))
    bar.close()
    kinds_seen = sorted(counts)
    result = {
        "n_molecules": n_seen - len(excluded),
        "selection": ("first held-out molecules with a relaxed torsion scan" if size.scans_only
                      else "every held-out molecule"),
        "conformation_limits": "as in section 1 (150 kcal/mol, 300 kcal/mol/Å, LJ clashes)",
        "force_rmse_by_kind": {m: {k: math.sqrt(squares[m][k] / counts[k]) for k in kinds_seen}
                               for m in METHODS},
        "n_force_components_by_kind": counts,
        "torsion_profiles": {
            m: {"n": len(profiles),
                "rmse_mean": float(np.mean([p.rmse[m] for p in profiles])) if profiles else math.nan,
                "rmse_median": float(np.median([p.rmse[m] for p in profiles])) if profiles
                else math.nan}
            for m in METHODS},
        "scans": [{"name": p.name, "smiles": p.smiles, "torsion": p.torsion,
                   "n_points": len(p.angles), "rmse": p.rmse} for p in profiles],
        "excluded": excluded,
    }
    return result, profiles


# --------------------------------------------------------------------------------------------
# Section 3: geometries
# --------------------------------------------------------------------------------------------


def kabsch_rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """RMSD between (N, 3) point sets after optimal superposition, in the units of the input."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1.0, 1.0, d]) @ vt
    return float(np.sqrt(((a @ rotation - b) ** 2).sum(1).mean()))


def xtb_minimize(engine: XTBEngine, numbers: np.ndarray, xyz_nm: np.ndarray,
                 charge: int) -> tuple[np.ndarray, float]:
    """GFN2-xTB minimum (N, 3), nm, and its energy, kJ/mol (SciPy L-BFGS in bohr and hartree)."""
    from scipy.optimize import minimize

    from espaloma_like.units import (
        BOHR_TO_NM,
        HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM,
        HARTREE_TO_KJ_PER_MOL,
        NM_TO_BOHR,
    )

    def fun(flat_bohr: np.ndarray) -> tuple[float, np.ndarray]:
        result = engine.compute(numbers, flat_bohr.reshape(1, -1, 3) * BOHR_TO_NM,
                                total_charge=charge)
        if result.errors[0] is not None:
            raise RuntimeError(result.errors[0])
        gradient = -result.forces[0].ravel() / HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM
        return float(result.energies[0]) / HARTREE_TO_KJ_PER_MOL, gradient

    done = minimize(fun, xyz_nm.ravel() * NM_TO_BOHR, jac=True, method="L-BFGS-B",
                    options={"maxiter": 1000, "gtol": 1e-4})
    return done.x.reshape(-1, 3) * BOHR_TO_NM, float(done.fun) * HARTREE_TO_KJ_PER_MOL


def mm_minimize(parameters: ParameterSet, xyz_nm: np.ndarray) -> np.ndarray:
    """OpenMM L-BFGS minimum (N, 3), nm, of ``parameters`` from ``xyz_nm`` (Reference platform)."""
    import openmm
    from openmm import unit

    from espaloma_like.export.openmm_system import to_openmm_system

    context = openmm.Context(to_openmm_system(parameters), openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(xyz_nm)
    openmm.LocalEnergyMinimizer.minimize(context, 0.1, 0)
    state = context.getState(getPositions=True)
    return np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))


def _geometry(data: Path, network: ParameterModel, cache: BaselineCache, size: BenchmarkSize,
              progress: bool) -> dict[str, Any]:
    """Section 3 on the first ``size.geometry_molecules`` held-out molecules."""
    from tqdm import tqdm

    from espaloma_like.data.engines import XTBEngine
    from espaloma_like.units import KJ_TO_KCAL, NM_TO_ANGSTROM

    engine = XTBEngine(n_threads=1)
    results: list[GeometryResult] = []
    failures: list[dict[str, str]] = []
    bar = tqdm(desc="geometry", unit="mol", total=size.geometry_molecules, disable=not progress)
    for record, graph in _held_out(data):
        if size.geometry_molecules is not None and (
                len(results) + len(failures) >= size.geometry_molecules):
            break
        kinds = json.loads(record.metadata.get("kinds", "[]"))
        start = record.conformations[kinds.index("minimized") if "minimized" in kinds else 0]
        heavy = record.atomic_numbers > 1
        rmsd, delta_e = {}, {}
        try:
            if record.charges is None:
                raise DataFormatError("no AM1-BCC charge labels")
            qm_xyz, qm_energy = xtb_minimize(engine, record.atomic_numbers, start,
                                             record.total_charge)
            for method in METHODS:
                parameters = _method_parameters(method, graph, np.asarray(record.charges),
                                                network, cache)
                mm_xyz = mm_minimize(parameters, qm_xyz)
                energy = engine.compute(record.atomic_numbers, mm_xyz[None],
                                        total_charge=record.total_charge).energies[0]
                rmsd[method] = kabsch_rmsd(mm_xyz[heavy], qm_xyz[heavy]) * NM_TO_ANGSTROM
                delta_e[method] = float(energy - qm_energy) * KJ_TO_KCAL
        except Exception as err:  # reported, and the molecule left out for every method
            failures.append({"name": record.name, "reason": f"{type(err).__name__}: {err}"})
        else:
            results.append(GeometryResult(record.name, record.metadata.get("smiles", ""),
                                          int(heavy.sum()), rmsd, delta_e))
        bar.update()
    bar.close()

    def stat(fn: Any, key: str, method: str) -> float:
        values = [getattr(r, key)[method] for r in results]
        return float(fn(values)) if values else math.nan

    return {
        "n_molecules": len(results),
        "selection": ("every held-out molecule" if size.geometry_molecules is None
                      else f"first {size.geometry_molecules} held-out molecules (file order)"),
        "start": "The record's Sage-minimized conformation, minimized with GFN2-xTB (tblite, "
                 "L-BFGS, gtol 1e-4 hartree/bohr); each force field minimized from the xTB minimum "
                 "(OpenMM L-BFGS, 0.1 kJ/mol/nm)",
        "median": {m: {"rmsd": stat(np.median, "rmsd", m), "delta_e": stat(np.median, "delta_e", m)}
                   for m in METHODS},
        "mean": {m: {"rmsd": stat(np.mean, "rmsd", m), "delta_e": stat(np.mean, "delta_e", m)}
                 for m in METHODS},
        "paired": _paired_geometry(results),
        "molecules": [dataclasses.asdict(r) for r in results],
        "failures": failures,
    }


def _paired_geometry(results: list[GeometryResult]) -> dict[str, dict[str, float]]:
    """Molecule-by-molecule model vs each baseline: medians alone hide which is closer where.

    Per baseline: the fraction of molecules whose model minimum is closer to the xTB minimum
    (RMSD) or lower on the xTB surface (delta E), and the median paired differences model -
    baseline (A, kcal/mol; negative: the model is closer / lower).
    """
    out = {}
    for baseline in METHODS[1:]:
        d_rmsd = np.array([r.rmsd["model"] - r.rmsd[baseline] for r in results])
        d_energy = np.array([r.delta_e["model"] - r.delta_e[baseline] for r in results])
        out[baseline] = {
            "model_closer_fraction": float(np.mean(d_rmsd < 0)) if len(results) else math.nan,
            "median_rmsd_difference": float(np.median(d_rmsd)) if len(results) else math.nan,
            "model_lower_fraction": float(np.mean(d_energy < 0)) if len(results) else math.nan,
            "median_delta_e_difference": float(np.median(d_energy)) if len(results) else math.nan,
        }
    return out


# --------------------------------------------------------------------------------------------
# Section 4: external QM data
# --------------------------------------------------------------------------------------------


def _external_sets(reference: Path) -> dict[str, list[QMRecord]]:
    """The supported records of each external set found under ``reference``."""
    from espaloma_like.data.formats import read_extxyz, read_grappa_npz
    from espaloma_like.data.spice import is_supported, read_spice_hdf5

    sets: dict[str, list[QMRecord]] = {}
    spice = sorted((reference / "spice_sample").glob("*.hdf5"))
    if spice:
        sets["spice_sample"] = [r for r in read_spice_hdf5(spice[0]) if is_supported(r) is None]
    tripeptides = sorted((reference / "grappa_tripeptides").glob("*.npz"))
    if tripeptides:
        level = "not stated by the source (grappa's paper: B3LYP-D3BJ/DZVP)"
        records = [read_grappa_npz(p, level_of_theory=level) for p in tripeptides]
        sets["grappa_tripeptides"] = [r for r in records if is_supported(r) is None]
    ethanol = sorted((reference / "rmd17_ethanol").glob("*.xyz"))
    if ethanol:
        records = [read_extxyz(p, name="ethanol", level_of_theory="PBE/def2-SVP (rMD17)")
                   for p in ethanol]
        sets["rmd17_ethanol"] = [r for r in records if is_supported(r) is None]
    return {name: records for name, records in sets.items() if records}


def _with_am1bcc(record: QMRecord) -> QMRecord:
    """The record marked held out, with AM1-BCC charges (sqm single point at conformation 0)."""
    from espaloma_like.baselines.am1bcc import compute_am1bcc
    from espaloma_like.data.records import record_graph

    charges = compute_am1bcc(record_graph(record), positions=record.conformations[0],
                             optimize=False)
    metadata = dict(record.metadata, split="held_out",
                    charges="AM1-BCC single point at conformation 0 (sqm maxcyc=0)")
    return dataclasses.replace(record, charges=charges, metadata=metadata)


def _external(shared: Path | None, network: ParameterModel, size: BenchmarkSize,
              progress: bool) -> dict[str, Any]:
    """Section 4, or ``{"skipped": reason}`` when there is no reference data."""
    from espaloma_like.data.spice import write_spice_hdf5
    from espaloma_like.training.evaluate import evaluate

    if shared is None:
        return {"skipped": "no shared reference folder given (shared=None)"}
    if not shared.is_dir():
        return {"skipped": f"no external reference data: {shared} does not exist"}
    sets = _external_sets(shared)
    if not sets:
        return {"skipped": f"no supported external data set found under {shared}"}
    out: dict[str, Any] = {"folder": str(shared), "sets": {}}
    with tempfile.TemporaryDirectory(prefix="espaloma_like_accuracy_") as scratch:
        for name, records in sets.items():
            if size.external_molecules is not None:
                records = sorted(records, key=lambda r: r.n_atoms)[:size.external_molecules]
            try:
                labelled = [_with_am1bcc(r) for r in records]
                path = Path(scratch) / f"{name}.h5"
                write_spice_hdf5(path, labelled)
                report = evaluate(network, [path], split="all",
                                  max_conformations=size.external_conformations,
                                  max_relative_energy_kcal=None, max_force_kcal_per_a=None,
                                  num_threads=1, progress=progress)
            except Exception as err:  # a broken set is reported, not fatal to the benchmark
                out["sets"][name] = {"error": f"{type(err).__name__}: {err}"}
                continue
            d = report.to_dict()
            out["sets"][name] = {
                "level_of_theory": records[0].level_of_theory,
                "n_molecules": d["n_molecules_compared"], "overall": d["overall"],
                "ratios": d["ratios"].get("overall", {}), "excluded": d["excluded"],
                "skipped": d["skipped"],
                "charges": "AM1-BCC single point at the first conformation (sqm maxcyc=0)",
            }
    return out


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _torsion_plot(profiles: list[TorsionProfile], path: Path, n: int = 4) -> Path | None:
    """QM and MM energy profiles of the first ``n`` scans (file order, not picked by error)."""
    from matplotlib.figure import Figure

    if not profiles:
        return None
    shown = profiles[:n]
    cols = min(2, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig = Figure(figsize=(5.2 * cols, 3.8 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    styles = {"model": ("tab:red", "-"), "sage": ("tab:blue", "--"), "gaff": ("tab:green", ":")}
    for ax, p in zip(axes, shown, strict=False):
        ax.plot(p.angles, p.qm, color="black", marker="o", ms=3, lw=1.5, label="GFN2-xTB")
        for method in METHODS:
            colour, line = styles[method]
            ax.plot(p.angles, p.mm[method], color=colour, ls=line, lw=1.5,
                    label=f"{method} ({p.rmse[method]:.2f})")
        ax.set_title(f"{p.smiles}\ntorsion {p.torsion}", fontsize=9)
        ax.set_xlabel("scanned dihedral (degrees)")
        ax.set_ylabel("energy − profile mean (kcal/mol)")
        ax.legend(fontsize=7, title="method (RMSE, kcal/mol)", title_fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(shown):]:
        ax.set_visible(False)
    fig.suptitle("Held-out relaxed torsion scans")
    fig.savefig(path, dpi=110)
    return path


def _error_distribution_plot(report: EvaluationReport, path: Path) -> Path | None:
    """Histogram and CDF of per-molecule force RMSEs on the held-out comparison set."""
    from matplotlib.figure import Figure

    values = {m: np.array([mol.errors[m].force_rmse for mol in report.molecules if mol.compared])
              for m in METHODS}
    if not all(len(v) for v in values.values()):
        return None
    fig = Figure(figsize=(10, 4), layout="constrained")
    hist_ax, cdf_ax = fig.subplots(1, 2)
    top = max(float(v.max()) for v in values.values())
    bins = np.linspace(0.0, top * 1.02, 30)
    colours = {"model": "tab:red", "sage": "tab:blue", "gaff": "tab:green"}
    for method, v in values.items():
        label = f"{method} (median {np.median(v):.2f})"
        hist_ax.hist(v, bins=bins, histtype="step", lw=1.6, color=colours[method], label=label)
        x = np.concatenate([[0.0], np.sort(v)])
        cdf_ax.step(x, np.arange(len(x)) / len(v), where="post", color=colours[method], lw=1.6,
                    label=label)
    cdf_ax.set_xlim(0.0, top * 1.02)
    cdf_ax.set_ylim(0.0, 1.02)
    hist_ax.set_xlabel("per-molecule force RMSE (kcal/mol/Å)")
    hist_ax.set_ylabel("molecules")
    cdf_ax.set_xlabel("per-molecule force RMSE (kcal/mol/Å)")
    cdf_ax.set_ylabel("fraction of molecules")
    for ax in (hist_ax, cdf_ax):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Held-out split, {len(values['model'])} molecules: force errors vs GFN2-xTB")
    fig.savefig(path, dpi=110)
    return path


# --------------------------------------------------------------------------------------------
# Provenance, summary, Markdown
# --------------------------------------------------------------------------------------------


def _git_commit() -> str | None:
    """``HEAD`` of the checkout holding this package, with ``+dirty`` if it has changes."""
    commit, dirty = git_state()
    return commit + ("+dirty" if dirty else "") if commit else None


def _machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "python": platform.python_version(), "load_average_start": list(os.getloadavg())}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from espaloma_like import __version__

    found = {"espaloma_like": __version__}
    for name in ("torch", "openmm", "rdkit", "tblite", "numpy", "scipy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    try:  # conda-installed: no distribution metadata; imported by the Sage baseline anyway
        from openff.toolkit import __version__ as openff_version

        found["openff-toolkit"] = str(openff_version)
    except ImportError:
        found["openff-toolkit"] = "not installed"
    return found


def _summary(held_out: dict[str, Any], kinds: dict[str, Any], geometry: dict[str, Any],
             ) -> dict[str, Any]:
    """Headline numbers per method and model/baseline ratios (the figure reads this)."""
    per_method: dict[str, dict[str, float | None]] = {}
    for m in METHODS:
        overall = held_out["overall"].get(m, {})
        per_method[m] = {
            "force_rmse": overall.get("force_rmse"),
            "energy_rmse": overall.get("energy_rmse"),
            "torsion_profile_rmse": kinds["torsion_profiles"][m]["rmse_mean"],
            "torsion_profile_rmse_median": kinds["torsion_profiles"][m]["rmse_median"],
            "geometry_rmsd_median": geometry["median"][m]["rmsd"],
            "geometry_delta_e_median": geometry["median"][m]["delta_e"],
        }
    ratios = {f"model/{b}": {k: _ratio(per_method["model"][k], per_method[b][k])
                             for k in per_method["model"]} for b in ("sage", "gaff")}
    units = {"force_rmse": "kcal/mol/Å", "energy_rmse": "kcal/mol (mean-centred per molecule)",
             "torsion_profile_rmse": "kcal/mol (mean over profiles)",
             "torsion_profile_rmse_median": "kcal/mol (median over profiles)",
             "geometry_rmsd_median": "Å (heavy atoms)", "geometry_delta_e_median": "kcal/mol"}
    return {**per_method, "ratios": ratios, "units": units,
            "n": {"held_out_molecules": held_out["n_molecules_compared"],
                  "held_out_conformations": held_out["overall"]["model"]["n_conformations"],
                  "torsion_profiles": kinds["torsion_profiles"]["model"]["n"],
                  "geometry_molecules": geometry["n_molecules"]}}


def run_accuracy_benchmark(
    out_dir: str | Path,
    *,
    quick: bool = False,
    model: str = "default",
    data: str | Path = "data/espaloma_like_gfn2xtb.h5",
    shared: str | Path | None = "../shared/qm-reference",
    progress: bool = True,
) -> dict[str, Any]:
    """Model vs Sage vs GAFF on held-out and external QM data; write JSON, Markdown and plots.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        Created if needed. Receives ``accuracy.json``, ``accuracy.md``, ``parity_energy.png``,
        ``parity_force.png``, ``force_error_distribution.png`` and ``torsion_profiles.png``.
    quick : bool
        Smoke-test size (15-20 s on 2 busy cores): 5 held-out molecules with 20 conformations
        each, the first 4 molecules with torsion scans, 2 geometry molecules, the smallest
        molecule of each external set with 10 conformations. Default: every held-out molecule
        and conformation, every held-out molecule for geometries, every external molecule
        (about 6 minutes).
    model : str
        Shipped model name or checkpoint path.
    data : str or pathlib.Path
        SPICE-format HDF5 with GFN2-xTB labels, AM1-BCC charge labels and a ``split``, and
        ``kinds`` (conformation origins) in each record's metadata.
    shared : str, pathlib.Path or None
        Folder of external reference data (``spice_sample/``, ``grappa_tripeptides/``,
        ``rmd17_ethanol/``); section 4 is skipped, with the reason recorded, when it is None
        or absent.
    progress : bool
        Progress bars and section messages (log level INFO).

    Returns
    -------
    dict
        The content of ``accuracy.json``: ``summary`` (per method ``force_rmse``,
        ``energy_rmse``, ``torsion_profile_rmse``, ``geometry_rmsd_median``,
        ``geometry_delta_e_median``; ``ratios`` ``model/sage`` and ``model/gaff``), one key per
        section (``held_out``, ``conformation_kinds``, ``geometry``, ``external``), ``timings``
        (seconds per section) and provenance. Non-finite numbers are written as null.

    Raises
    ------
    DataFormatError
        The data file is missing or has no held-out molecules.
    CheckpointError
        The model cannot be loaded.
    """
    import torch

    from espaloma_like.api import load_model
    from espaloma_like.training.evaluate import evaluate, write_parity_plots

    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(data)
    if not data.is_file():
        raise DataFormatError(f"no such dataset file: {data}")
    size = QUICK if quick else FULL
    machine = _machine()
    commit = _git_commit()  # before this run writes its own outputs into the checkout
    network = load_model(model)
    cache: BaselineCache = {}
    timings: dict[str, float] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small molecules: one thread is fastest, and fair to the baselines
    log = logger.info if progress else logger.debug
    try:
        log("accuracy 1/4: held-out energies and forces")
        t0 = time.perf_counter()
        report = evaluate(network, [data], split="held_out", max_molecules=size.held_out_molecules,
                          max_conformations=size.held_out_conformations, baseline_cache=cache,
                          md_picoseconds=0.0, num_threads=1, progress=progress)
        timings["held_out"] = time.perf_counter() - t0

        log("accuracy 2/4: conformation origin and torsion profiles")
        t0 = time.perf_counter()
        kinds, profiles = _conformation_kinds(data, network, cache, size, progress)
        timings["conformation_kinds"] = time.perf_counter() - t0

        log("accuracy 3/4: geometries")
        t0 = time.perf_counter()
        geometry = _geometry(data, network, cache, size, progress)
        timings["geometry"] = time.perf_counter() - t0

        log("accuracy 4/4: external QM data")
        t0 = time.perf_counter()
        external = _external(None if shared is None else Path(shared), network, size, progress)
        timings["external"] = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)

    t0 = time.perf_counter()
    plots = [p.name for p in write_parity_plots(report, out)]
    for written in (_error_distribution_plot(report, out / "force_error_distribution.png"),
                    _torsion_plot(profiles, out / "torsion_profiles.png")):
        if written is not None:
            plots.append(written.name)
    timings["plots"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started

    held_out = report.to_dict()
    machine["load_average_end"] = list(os.getloadavg())
    result: dict[str, Any] = {
        "benchmark": "accuracy",
        "command": "espaloma-like benchmark accuracy" + (" --quick" if quick else ""),
        "quick": quick,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": machine,
        "git_commit": commit,
        "versions": _versions(),
        "settings": {"model": model, "model_info": held_out["settings"]["model_info"],
                     "data": str(data), "shared": None if shared is None else str(shared),
                     "size": dataclasses.asdict(size), "methods": list(METHODS),
                     "baseline_charges": "the records' AM1-BCC labels (the same for Sage and GAFF)",
                     "torch_threads": 1, "xtb_threads": 1},
        "units": UNITS,
        "summary": _summary(held_out, kinds, geometry),
        "held_out": held_out,
        "conformation_kinds": kinds,
        "geometry": geometry,
        "external": external,
        "timings": timings,
        "files": ["accuracy.json", "accuracy.md", *plots],
    }
    result = _finite_or_none(result)
    atomic_write_text(out / "accuracy.json", json.dumps(result, indent=1) + "\n")
    from espaloma_like.benchmark.accuracy_report import markdown

    atomic_write_text(out / "accuracy.md", markdown(result, report.to_markdown()))
    return result
