"""Condensed-phase check: densities of neat organic liquids from NPT molecular dynamics.

A model that changes Lennard-Jones parameters (``form-learned-lj``) changes every interaction,
also with solvent and protein; Sage's LJ was fitted to densities and enthalpies of vaporization of
liquids like these. This benchmark runs each method's liquid at 298.15 K and 1 bar (PME, 0.9 nm
cutoff with a switch from 0.8 nm and the dispersion correction, as Sage is parametrized; hydrogen
bonds constrained, hydrogen mass 3 Da, 4 fs steps) and compares the mean density with experiment.
Resumable: each (liquid, method) result is a line of ``liquids_results.jsonl``.

    espaloma-like benchmark liquids [--model NAME ...] [--baselines sage] [--quick]
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like._io import atomic_write_text

if TYPE_CHECKING:
    from espaloma_like.molecule import MoleculeGraph
    from espaloma_like.parametrized import ParametrizedMolecule

AVOGADRO = 6.02214076e23
_NM3_TO_ML = 1e-21


@dataclass(frozen=True)
class Liquid:
    """A neat liquid and its experimental density.

    Attributes
    ----------
    name, smiles : str
    density : float
        g/mL at 298.15 K and 1 atm (CRC Handbook of Chemistry and Physics).
    """

    name: str
    smiles: str
    density: float


#: Liquids whose atoms span the learned-LJ changes (H and O most, then C and N).
LIQUIDS: tuple[Liquid, ...] = (
    Liquid("methanol", "CO", 0.7866),
    Liquid("ethanol", "CCO", 0.7849),
    Liquid("acetone", "CC(C)=O", 0.7845),
    Liquid("ethyl acetate", "CCOC(C)=O", 0.8945),
    Liquid("acetic acid", "CC(=O)O", 1.0446),
    Liquid("benzene", "c1ccccc1", 0.8737),
)


@dataclass(frozen=True)
class LiquidRunSettings:
    """How each liquid is simulated.

    Attributes
    ----------
    n_molecules : int
        Molecules in the box (128 keeps the smallest box, methanol's, above twice the cutoff).
    equilibration_ps, production_ps : float
        NPT equilibration (discarded) and production lengths, ps.
    sample_ps : float
        Interval between density samples, ps.
    cutoff_nm, switch_nm : float
        Nonbonded cutoff and LJ switching distance, nm (PME electrostatics).
    timestep_fs : float
        Integration step, fs (hydrogen mass repartitioned to 3 Da, H bonds constrained).
    seed : int
        Seeds the placement, velocities, thermostat and barostat.
    threads : int
        CPU platform threads.
    """

    n_molecules: int = 128
    equilibration_ps: float = 50.0
    production_ps: float = 100.0
    sample_ps: float = 1.0
    cutoff_nm: float = 0.9
    switch_nm: float = 0.8
    timestep_fs: float = 4.0
    seed: int = 0
    threads: int = 2


def initial_box(graph: MoleculeGraph, n_molecules: int, density: float, seed: int = 0
                ) -> tuple[np.ndarray, float]:
    """Copies of one ETKDG conformer, randomly rotated, on a cubic grid.

    Parameters
    ----------
    graph : MoleculeGraph
    n_molecules : int
    density : float
        Starting density, g/mL (below the liquid's, so that the copies do not overlap much).
    seed : int

    Returns
    -------
    positions : np.ndarray
        (n_molecules * N, 3) nm, molecule by molecule.
    box : float
        Cubic box edge, nm.
    """
    from scipy.spatial.transform import Rotation

    from espaloma_like.molecule import generate_conformers

    conformer = generate_conformers(graph, n_conformers=1, seed=seed)[0]
    conformer = conformer - conformer.mean(axis=0)
    mass = float(np.sum(graph.masses)) / AVOGADRO  # g per molecule
    edge = (n_molecules * mass / density / _NM3_TO_ML) ** (1.0 / 3.0)
    per_side = math.ceil(n_molecules ** (1.0 / 3.0))
    spacing = edge / per_side
    grid = np.array([(i, j, k) for i in range(per_side) for j in range(per_side)
                     for k in range(per_side)][:n_molecules], dtype=np.float64)
    rotations = Rotation.random(n_molecules, random_state=seed).as_matrix()
    copies = np.einsum("mij,aj->mai", rotations, conformer) + (grid + 0.5)[:, None, :] * spacing
    return copies.reshape(-1, 3), edge


def simulate_density(parametrized: ParametrizedMolecule, settings: LiquidRunSettings,
                     start_density: float, progress: Callable[[float], None] | None = None
                     ) -> dict[str, Any]:
    """NPT run of the neat liquid of ``parametrized``; density samples and their statistics.

    Returns
    -------
    dict
        ``densities`` (g/mL, one per ``sample_ps`` of production), ``density`` (mean),
        ``density_sem`` (standard error from 5 blocks), ``density_drift`` (last block's mean
        minus the first's: not equilibrated if large against the error), ``ns_per_day``,
        ``n_atoms``.
    """
    import openmm
    from openmm import app, unit

    from espaloma_like.export.multi_molecule import multi_molecule_system

    graph = parametrized.molecule
    positions, edge = initial_box(graph, settings.n_molecules, start_density, settings.seed)
    box = [openmm.Vec3(edge, 0, 0), openmm.Vec3(0, edge, 0), openmm.Vec3(0, 0, edge)]
    system, _ = multi_molecule_system(
        [parametrized] * settings.n_molecules, box_vectors=box * unit.nanometer,
        nonbondedMethod=app.PME, nonbondedCutoff=settings.cutoff_nm * unit.nanometer,
        switchDistance=settings.switch_nm * unit.nanometer, useDispersionCorrection=True,
        constraints=app.HBonds, hydrogenMass=3.0 * unit.amu)
    temperature = 298.15 * unit.kelvin
    barostat = openmm.MonteCarloBarostat(1.0 * unit.bar, temperature, 25)
    barostat.setRandomNumberSeed(settings.seed + 1)
    system.addForce(barostat)
    integrator = openmm.LangevinMiddleIntegrator(temperature, 1.0 / unit.picosecond,
                                                 settings.timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(settings.seed + 2)
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, integrator, platform, {"Threads": str(settings.threads)})
    context.setPeriodicBoxVectors(*box)
    context.setPositions(positions * unit.nanometer)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 2000)
    context.setVelocitiesToTemperature(temperature, settings.seed + 3)

    steps_per_sample = max(1, round(settings.sample_ps * 1000.0 / settings.timestep_fs))
    n_equilibration = math.ceil(settings.equilibration_ps / settings.sample_ps)
    n_production = math.ceil(settings.production_ps / settings.sample_ps)
    total_mass = settings.n_molecules * float(np.sum(graph.masses)) / AVOGADRO
    densities: list[float] = []
    started = time.perf_counter()
    for sample in range(n_equilibration + n_production):
        integrator.step(steps_per_sample)
        if sample >= n_equilibration:
            volume = context.getState().getPeriodicBoxVolume().value_in_unit(unit.nanometer ** 3)
            densities.append(total_mass / (volume * _NM3_TO_ML))
        if progress is not None:
            progress(settings.sample_ps)
    seconds = time.perf_counter() - started
    simulated_ns = (n_equilibration + n_production) * steps_per_sample * settings.timestep_fs * 1e-6
    values = np.asarray(densities)
    blocks = np.array([b.mean() for b in np.array_split(values, 5)])
    return {"densities": values.round(5).tolist(), "density": float(values.mean()),
            "density_sem": float(blocks.std(ddof=1) / math.sqrt(len(blocks))),
            # last block minus first: a trend that the standard error does not show
            "density_drift": float(blocks[-1] - blocks[0]),
            "ns_per_day": simulated_ns / seconds * 86400.0, "n_atoms": system.getNumParticles()}


@dataclass(frozen=True)
class LiquidBenchmarkConfig:
    """What :func:`run_liquid_benchmark` runs: ``models`` (shipped names or checkpoints) and
    package ``baselines`` on ``liquids`` with ``settings``; results under ``out``."""

    out: Path
    models: tuple[str, ...] = ("default",)
    baselines: tuple[str, ...] = ("sage",)
    liquids: tuple[Liquid, ...] = LIQUIDS
    settings: LiquidRunSettings = LiquidRunSettings()


def run_liquid_benchmark(config: LiquidBenchmarkConfig, progress: bool = True) -> dict[str, Any]:
    """Simulate every (liquid, method) not yet in ``liquids_results.jsonl``; write
    ``liquids.json`` and ``liquids.md`` from all rows with the current settings."""
    from tqdm.auto import tqdm

    from espaloma_like.benchmark.conformers import (
        append_jsonl,
        method_parametrizers,
        method_specs,
    )
    from espaloma_like.benchmark.provenance import cpu_model, git_state
    from espaloma_like.domain import OutOfDomainWarning
    from espaloma_like.molecule import from_smiles

    config.out.mkdir(parents=True, exist_ok=True)
    results_path = config.out / "liquids_results.jsonl"
    settings = asdict(config.settings)
    # a row is reused only for the same settings and the same checkpoint (file hash) or baseline
    identities = {s.label: s.identity for s in method_specs(config.models, config.baselines)}
    methods = method_parametrizers(config.models, config.baselines)
    done = {}
    if results_path.is_file():
        for line in results_path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill: simulated again
                continue
            if row.get("settings") == settings and row.get("identity") == identities.get(
                    row["method"]):
                done[(row["liquid"], row["method"])] = row
    todo = [(liquid, label) for liquid in config.liquids for label in methods
            if (liquid.name, label) not in done]
    total_ps = len(todo) * (config.settings.equilibration_ps + config.settings.production_ps)
    commit, dirty = git_state()
    with tqdm(total=total_ps, unit="ps", desc="liquids", disable=not progress) as bar:
        for liquid, label in todo:
            graph = from_smiles(liquid.smiles, name=liquid.name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OutOfDomainWarning)
                parametrized = methods[label](graph)
            bar.set_postfix_str(f"{liquid.name}, {label}")
            run = simulate_density(parametrized, config.settings, 0.8 * liquid.density,
                                   progress=bar.update)
            row = {"liquid": liquid.name, "smiles": liquid.smiles, "method": label,
                   "identity": identities[label],
                   "experiment": liquid.density, "out_of_domain": bool(parametrized.domain_warnings),
                   "settings": settings, "git_commit": commit, "git_dirty": dirty, **run}
            append_jsonl(results_path, [row])  # one whole line per finished run
            done[(liquid.name, label)] = row
    rows = [done[(liquid.name, label)] for liquid in config.liquids for label in methods
            if (liquid.name, label) in done]
    result = {"settings": settings, "machine": cpu_model(), "methods": list(methods),
              "rows": [{k: v for k, v in r.items() if k != "densities"} for r in rows]}
    atomic_write_text(config.out / "liquids.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(config.out / "liquids.md", liquid_report(result))
    return result


def liquid_report(result: dict[str, Any]) -> str:
    """Markdown table of :func:`run_liquid_benchmark`'s result: density and % error per method."""
    methods = result["methods"]
    rows = {(r["liquid"], r["method"]): r for r in result["rows"]}
    liquids = list(dict.fromkeys(r["liquid"] for r in result["rows"]))
    s = result["settings"]
    lines = [
        "# Condensed-phase check: neat-liquid densities",
        "",
        f"NPT at 298.15 K and 1 bar, {s['n_molecules']} molecules, PME with a {s['cutoff_nm']} nm "
        f"cutoff (LJ switched from {s['switch_nm']} nm, dispersion correction), H bonds "
        f"constrained, H mass 3 Da, {s['timestep_fs']} fs steps, Langevin 1/ps, Monte Carlo "
        f"barostat; {s['equilibration_ps']:.0f} ps discarded, then {s['production_ps']:.0f} ps "
        "sampled. Density in g/mL (± standard error from 5 blocks) and its deviation from "
        "experiment (CRC Handbook, 298.15 K).",
        "",
        "| liquid | experiment | " + " | ".join(methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    errors: dict[str, list[float]] = {m: [] for m in methods}
    for liquid in liquids:
        cells = []
        experiment = next(r["experiment"] for (name, _), r in rows.items() if name == liquid)
        for method in methods:
            row = rows.get((liquid, method))
            if row is None:
                cells.append("-")
                continue
            error = 100.0 * (row["density"] - row["experiment"]) / row["experiment"]
            errors[method].append(error)
            cells.append(f"{row['density']:.4f} ± {row['density_sem']:.4f} ({error:+.1f} %)")
        lines.append(f"| {liquid} | {experiment:.4f} | " + " | ".join(cells) + " |")
    lines.append("| mean signed / mean abs error | | " + " | ".join(
        f"{np.mean(e):+.1f} % / {np.mean(np.abs(e)):.1f} %" if e else "-"
        for e in errors.values()) + " |")
    drift = max((abs(r["density_drift"]) for r in result["rows"]), default=0.0)
    lines += ["", f"Largest drift between the first and last fifth of a production run: "
              f"{drift:.4f} g/mL.", "", f"{result['machine']}; " + ", ".join(
        f"{m}: {np.median([r['ns_per_day'] for r in result['rows'] if r['method'] == m]):.0f} ns/day"
        for m in methods if errors[m]) + " (median over liquids, CPU platform).", ""]
    return "\n".join(lines)
