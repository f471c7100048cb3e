"""MD stability of exported model Systems: short vacuum Langevin runs that must stay intact.

Used by :func:`espaloma_like.training.evaluate.evaluate` (``md_picoseconds``) and the
``espaloma-like evaluate --md-ps`` report: a force field that fits QM forces but lets a bond fly
apart at 300 K is not usable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from espaloma_like.molecule import MoleculeGraph
    from espaloma_like.nn.model import ParameterModel

__all__ = ["MDResult", "MDStabilityReport", "md_stability"]


@dataclass(frozen=True)
class MDResult:
    """MD stability of one molecule.

    Attributes
    ----------
    intact : bool
        Finite energy throughout, every bond shorter than ``bond_stretch_limit`` times its
        length after minimization, no non-bonded (not 1-2) pair closer than the distance limit.
    reason : str
        Why not intact (empty when intact).
    simulated_ps : float
        Time simulated before the run ended (or broke).
    max_bond_stretch : float
        Largest bond length / initial length seen at the checks.
    min_nonbonded_distance : float
        Smallest non-bonded distance at the last check, nm.
    ns_per_day : float
        Simulation speed (MD steps only).
    """

    name: str
    n_atoms: int
    intact: bool
    reason: str
    simulated_ps: float
    max_bond_stretch: float
    min_nonbonded_distance: float
    ns_per_day: float


@dataclass(frozen=True)
class MDStabilityReport:
    """What :func:`md_stability` ran, and the result per molecule."""

    picoseconds: float
    temperature: float
    timestep_fs: float
    friction_per_ps: float
    platform: str
    seed: int
    check_every_ps: float
    bond_stretch_limit: float
    min_distance_limit: float
    results: tuple[MDResult, ...]

    @property
    def n_intact(self) -> int:
        return sum(r.intact for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["results"] = [asdict(r) for r in self.results]
        out["n_molecules"] = len(self.results)
        out["n_intact"] = self.n_intact
        out["n_broken"] = len(self.results) - self.n_intact
        return out

    def to_markdown(self) -> str:
        speeds = [r.ns_per_day for r in self.results if r.ns_per_day > 0]
        lines = [
            f"MD stability: {self.picoseconds:g} ps Langevin (LangevinMiddleIntegrator) per "
            f"molecule at {self.temperature:g} K, {self.timestep_fs:g} fs step, friction "
            f"{self.friction_per_ps:g}/ps, vacuum, no constraints, minimized first, platform "
            f"{self.platform}, seed {self.seed}; intact = finite energy, bonds < "
            f"{self.bond_stretch_limit:g}x their minimized length and non-bonded pairs >= "
            f"{self.min_distance_limit:g} nm, checked every {self.check_every_ps:g} ps.",
            "",
            f"**{self.n_intact} / {len(self.results)} intact**"
            + (f"; median speed {np.median(speeds):.0f} ns/day" if speeds else ""),
        ]
        broken = [r for r in self.results if not r.intact]
        if broken:
            lines += ["", "| molecule | atoms | reason | after (ps) |", "|---|---|---|---|"]
            lines += [f"| {r.name} | {r.n_atoms} | {r.reason} | {r.simulated_ps:g} |"
                      for r in broken]
        return "\n".join(lines) + "\n"


def _geometry_check(x: np.ndarray, bonds: np.ndarray, initial: np.ndarray,
                    nonbonded: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """(largest bond stretch ratio, smallest non-bonded distance in nm) of positions (N, 3)."""
    lengths = np.linalg.norm(x[bonds[:, 0]] - x[bonds[:, 1]], axis=-1)
    stretch = float(np.max(lengths / initial, initial=0.0))
    i, j = nonbonded
    closest = float(np.min(np.linalg.norm(x[i] - x[j], axis=-1), initial=np.inf))
    return stretch, closest


def _md_one(graph: MoleculeGraph, network: ParameterModel, picoseconds: float, temperature: float,
            timestep_fs: float, friction_per_ps: float, platform: str, seed: int,
            check_every_ps: float, stretch_limit: float, distance_limit: float,
            threads: int | None) -> MDResult:
    import openmm
    from openmm import unit

    from espaloma_like.api import parametrize
    from espaloma_like.molecule import generate_conformers

    system = parametrize(graph, network).to_openmm_system()
    positions = graph.positions
    if positions is None:
        positions = generate_conformers(graph, n_conformers=1, seed=seed,
                                        allow_undefined_stereo=True)[0]
    integrator = openmm.LangevinMiddleIntegrator(
        temperature * unit.kelvin, friction_per_ps / unit.picosecond,
        timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed % (2**31 - 1) + 1)  # 0 would mean "random"
    chosen = openmm.Platform.getPlatformByName(platform)
    properties = {"Threads": str(threads)} if threads and platform == "CPU" else {}
    context = openmm.Context(system, integrator, chosen, properties)
    context.setPositions(np.asarray(positions, dtype=np.float64))
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 2000)
    state = context.getState(getPositions=True)
    x0 = np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    bonds = np.asarray(graph.bonds, dtype=np.int64).reshape(-1, 2)
    initial = np.linalg.norm(x0[bonds[:, 0]] - x0[bonds[:, 1]], axis=-1)
    is_pair = ~np.eye(graph.n_atoms, dtype=bool)
    is_pair[bonds[:, 0], bonds[:, 1]] = is_pair[bonds[:, 1], bonds[:, 0]] = False
    i, j = np.triu_indices(graph.n_atoms, 1)
    keep = is_pair[i, j]
    pairs = (i[keep], j[keep])
    context.setVelocitiesToTemperature(temperature * unit.kelvin, seed % (2**31 - 1) + 1)

    n_steps = max(1, round(picoseconds * 1000.0 / timestep_fs))
    chunk = max(1, round(check_every_ps * 1000.0 / timestep_fs))
    done, reason = 0, ""
    worst_stretch, closest = 1.0, math.inf
    started = time.perf_counter()
    while done < n_steps:
        steps = min(chunk, n_steps - done)
        try:
            integrator.step(steps)
        except Exception as err:  # OpenMM raises on NaN coordinates
            reason = f"integration failed: {err}"
            break
        done += steps
        state = context.getState(getEnergy=True, getPositions=True)
        energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        x = np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        if not (math.isfinite(energy) and np.all(np.isfinite(x))):
            reason = "non-finite energy or positions"
            break
        stretch, closest = _geometry_check(x, bonds, initial, pairs)
        worst_stretch = max(worst_stretch, stretch)
        if stretch >= stretch_limit:
            reason = f"bond stretched to {stretch:.2f}x its initial length"
            break
        if closest < distance_limit:
            reason = f"non-bonded atoms {closest:.3f} nm apart"
            break
    elapsed = time.perf_counter() - started
    simulated_ns = done * timestep_fs * 1e-6
    return MDResult(
        name=graph.name, n_atoms=graph.n_atoms, intact=not reason, reason=reason,
        simulated_ps=simulated_ns * 1000.0, max_bond_stretch=worst_stretch,
        min_nonbonded_distance=closest,
        ns_per_day=simulated_ns / elapsed * 86400.0 if elapsed > 0 else math.nan,
    )


def md_stability(
    model: ParameterModel | str | Path | None,
    graphs: Iterable[Any],
    picoseconds: float = 100.0,
    temperature: float = 300.0,
    timestep_fs: float = 1.0,
    platform: str = "CPU",
    seed: int = 0,
    *,
    friction_per_ps: float = 1.0,
    check_every_ps: float = 1.0,
    bond_stretch_limit: float = 1.5,
    min_distance: float = 0.08,
    threads: int | None = None,
    progress: bool = False,
) -> MDStabilityReport:
    """Vacuum Langevin MD of each molecule's exported model System: does it stay intact?

    Each molecule is parametrized by the model, exported with
    :meth:`~espaloma_like.parametrized.ParametrizedMolecule.to_openmm_system` (no cutoff, no
    constraints), minimized (L-BFGS, 10 kJ/mol/nm), given Maxwell-Boltzmann velocities and run
    with ``LangevinMiddleIntegrator``. Every ``check_every_ps`` the energy must be finite, every
    bond shorter than ``bond_stretch_limit`` times its length after minimization, and no two
    atoms that are not bonded closer than ``min_distance``; the run stops at the first violation.

    Parameters
    ----------
    model : ParameterModel, str, pathlib.Path or None
        A model, a shipped model name or checkpoint path (the default model if None).
    graphs : iterable
        Molecules (anything :func:`espaloma_like.molecule.as_molecule_graph` accepts). Their
        positions (nm) start the run when they have them, else one ETKDG conformer.
    picoseconds : float
        Simulated time per molecule, ps.
    temperature : float
        K.
    timestep_fs : float
        fs (no constraints: keep it at 1 fs).
    platform : str
        OpenMM platform name ("CPU", "Reference", "CUDA", ...).
    seed : int
        Seeds the velocities, the integrator and conformer generation.
    friction_per_ps, check_every_ps, bond_stretch_limit, min_distance : float
        Langevin friction (1/ps), check interval (ps), bond limit (ratio), distance limit (nm).
    threads : int, optional
        CPU platform threads (default: OpenMM's choice).
    progress : bool
        Show a progress bar.

    Returns
    -------
    MDStabilityReport
        Settings and one :class:`MDResult` per molecule; a molecule that cannot be set up is
        reported as not intact with the error as reason.
    """
    from tqdm import tqdm

    from espaloma_like.molecule import as_molecule_graph

    if model is None or isinstance(model, str | Path):
        from espaloma_like.api import load_model

        network = load_model(model)
    else:
        network = model
    results = []
    for item in tqdm(list(graphs), desc="md", unit="mol", disable=not progress):
        try:
            graph = as_molecule_graph(item)
        except Exception as err:
            results.append(MDResult(str(item), 0, False, f"bad molecule: {err}", 0.0, math.nan,
                                    math.nan, math.nan))
            continue
        try:
            results.append(_md_one(graph, network, picoseconds, temperature, timestep_fs,
                                   friction_per_ps, platform, seed, check_every_ps,
                                   bond_stretch_limit, min_distance, threads))
        except Exception as err:  # setup failed (parametrization, OpenMM): listed
            results.append(MDResult(graph.name, graph.n_atoms, False,
                                    f"setup failed: {type(err).__name__}: {err}", 0.0, math.nan,
                                    math.nan, math.nan))
    return MDStabilityReport(
        picoseconds=picoseconds, temperature=temperature, timestep_fs=timestep_fs,
        friction_per_ps=friction_per_ps, platform=platform, seed=seed,
        check_every_ps=check_every_ps, bond_stretch_limit=bond_stretch_limit,
        min_distance_limit=min_distance, results=tuple(results),
    )
