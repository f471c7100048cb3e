"""``speed.md``: the tables of the speed benchmark, written from its JSON."""

from __future__ import annotations

from typing import Any

import numpy as np


def _fmt_ms(ms: float | None) -> str:
    if ms is None or not np.isfinite(ms):
        return "n/a"
    return f"{ms / 1e3:.2f} s" if ms >= 1e3 else (f"{ms:.1f} ms" if ms >= 1 else f"{ms:.3f} ms")


def _fmt_ratio(spread: dict[str, Any]) -> str:
    low, high = spread["median_ci95"]
    return f"{spread['median']:.3f} ({low:.3f}-{high:.3f})"


def markdown(result: dict[str, Any]) -> str:
    """The tables of ``speed.md`` from the JSON of :func:`run_speed_benchmark`."""
    m = result["machine"]
    v = m["versions"]
    lines: list[str] = []
    add = lines.append
    add("# Speed: espaloma_like model vs Sage 2.2.1, GAFF-2.11, ANI-2x and GFN2-xTB\n")
    if result["quick"]:
        add("> **QUICK RUN** (CI smoke test: few repeats and rounds). Do not cite these numbers.\n")
    add(f"- Command: `{result['command']}`")
    add(f"- Date (UTC): {result['date_utc']}; whole run {result['wall_s']:.0f} s")
    add(f"- Machine: {m['cpu_model']}; {m['logical_cpus']} logical CPUs ({m['cpus_available']} "
        f"available); {m['platform']}; torch threads {m['torch_threads']}")
    add(f"- Load average at start / end: {m['loadavg_start']} / {m.get('loadavg_end')}")
    add(f"- Versions: Python {m['python']}, espaloma_like {v['espaloma_like']}, torch {v['torch']}, "
        f"OpenMM {v['openmm']}, RDKit {v['rdkit']}, openff-toolkit {v['openff-toolkit']}, "
        f"AmberTools {v['ambertools']}, torchani {v['torchani']}, tblite {v['tblite']}")
    git = m.get("git") or {}
    if git:
        add(f"- Git: {git.get('commit', '?')}" + (" (uncommitted changes)" if git.get("dirty") else ""))
    add(f"- Model: {result['model']['name']} ({result['model']['n_weights']} weights)")
    # the 1-minute load when the run started: at its end it mostly measures the run itself
    busy = (m["loadavg_start"] or [0.0])[0]
    if busy > 0.5 * (m["cpus_available"] or 1):
        add(f"\n> **Warning:** the machine was busy (load average {busy:.2f} at the start, on "
            f"{m['cpus_available']} CPUs): absolute timings are inflated; the interleaved ratios "
            "are less affected.")

    p = result["parametrization"]
    add("\n## Parametrization, SMILES -> openmm.System\n")
    n_proc = p["process_torch_threads"]
    add(f"Median of {p['repeats']} calls per molecule after one warm-up, methods interleaved. "
        "**Model**: `parametrize(smiles, model=m).to_openmm_system()`, model loaded once, one torch "
        f"thread (the process's {n_proc} threads in the extra column). **Sage / "
        "GAFF**: `from_smiles` -> `sage_parameters` / `gaff_parameters` with given (zero) charges -> "
        "`openmm.System`, the parameter cost alone. A new molecule also needs AM1-BCC charges "
        "(`compute_am1bcc`, uncached) for both baselines. Ratios are baseline time / model time.\n")
    add(f"| molecule | heavy atoms | model | model, {n_proc} threads | Sage | GAFF | Sage / model | "
        "GAFF / model | (Sage + AM1-BCC) / model | (GAFF + AM1-BCC) / model |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, e in p["molecules"].items():
        t, r = e["median_ms"], e["ratio_over_model"]
        with_charges = e.get("ratio_with_am1bcc_over_model")
        extra = (f"{with_charges['sage']:.0f}x | {with_charges['gaff']:.0f}x" if with_charges
                 else "n/a | n/a")
        add(f"| {name} | {e['heavy_atoms']} | {_fmt_ms(t['model'])} | "
            f"{_fmt_ms(t.get('model_process_threads', t['model']))} | {_fmt_ms(t['sage'])} | "
            f"{_fmt_ms(t['gaff'])} | {r['sage']:.3g}x | {r['gaff']:.3g}x | {extra} |")
    a = p["am1bcc"]
    if a["measured"]:
        add("\nAM1-BCC (antechamber + sqm, AM1 geometry optimization, not cached): "
            + ", ".join(f"{n} {_fmt_ms(t)}" for n, t in a["ms"].items()) + ".")
    else:
        add(f"\nAM1-BCC not measured: {a['reason']}.")
    add("First calls in the process (lazy imports, force-field loading): "
        + ", ".join(f"{k.removeprefix('first_').removesuffix('_call_ms')} {_fmt_ms(t)}"
                    for k, t in p["cold"].items()) + f"; `load_model` {result['model']['load_s']:.2f} s.")

    md = result["md"]
    tc = md["term_counts"]
    add(f"\n## MD throughput, {md['molecule']} (`{md['smiles']}`, {md['n_atoms']} atoms)\n")
    add("The model's System against GAFF's and Sage's for the same molecule with the **model's "
        "charges** in all three: the bonded terms differ (and GAFF's LJ values, at the same cost). "
        "Bonded terms: " + "; ".join(
            f"{n} {c['bonds']} bonds, {c['angles']} angles"
            + (f" + {c['urey_bradley']} Urey-Bradley springs" if c.get("urey_bradley") else "")
            + f", {c['torsions']} torsions"
            + (f", {c['pair_corrections']} intramolecular pair corrections"
               if c.get("pair_corrections") else "")
            for n, c in tc.items()) + ".")
    add(f"Vacuum: {md['setups']['vacuum']}. TIP3P/PME: {md['setups']['tip3p_pme']}. "
        f"{md['integrator']}.")
    add("Each round runs one chunk of steps per system, the order rotated every round; "
        "ns/day are medians over rounds, ratios are the median of the per-round paired ratios "
        "model ns/day / baseline ns/day (>1: model faster) with a 95 % bootstrap interval of "
        "that median (the 25-75 % range of single rounds is in `speed.json`).\n")
    add("| platform | setup | atoms | rounds x steps | threads | model ns/day | GAFF ns/day | "
        "Sage ns/day | model / GAFF | model / Sage |")
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    skipped = []
    for platform_name, setups in md["results"].items():
        for setup, run in setups.items():
            if run.get("skipped"):
                skipped.append(f"{platform_name} {setup}: {run['reason']}")
                continue
            ns, ratio = run["median_ns_per_day"], run["paired_ratio_model_over"]
            add(f"| {platform_name} | {setup} | {run['n_atoms']} | {run['rounds']} x "
                f"{run['steps_per_chunk']} | {run['threads'] or '-'} | {ns['model']:.0f} | "
                f"{ns['gaff']:.0f} | {ns['sage']:.0f} | {_fmt_ratio(ratio['gaff'])} | "
                f"{_fmt_ratio(ratio['sage'])} |")
    if skipped:
        add("\nNot run: " + "; ".join(skipped) + ".")
    add("\nA 20-atom vacuum step on the CPU platform is mostly fixed per-step overhead (threads, "
        "integrator), so its ratios understate differences in the force terms; the single-threaded "
        "Reference platform shows their raw cost.")

    add(f"\n## Cost per MD step: {result['md']['molecule']} in vacuum (the speed-accuracy x-axis)\n")
    add("| method | ms per step | ns/day at 1 fs | measured as |")
    add("|---|---:|---:|---|")
    for name, e in result["summary"].items():
        if e["md_ms_per_step"] is None:
            add(f"| {name} | n/a | n/a | {e['reason']} |")
        else:
            add(f"| {name} | {_fmt_ms(e['md_ms_per_step'])} | {e['ns_per_day_1fs']:.3g} | "
                f"{e['measured_as']} |")
    ani = result["ml_potential"]["ani2x"]
    if ani.get("available"):
        add(f"\nANI-2x: {ani['model']}, {ani['n_weights']} weights, torchani {ani['torchani']}, "
            "median ms per step by torch threads: " + ", ".join(
                f"{n}: {_fmt_ms(t)}" for n, t in ani["median_ms_by_torch_threads"].items())
            + f" (the summary takes {ani['torch_threads']}). Weights: {ani['weights']}. OpenMM-Torch: "
            + (f"{_fmt_ms(ani['openmm_torch']['ms_per_step'])} per MD step through `TorchForce` "
               "on the CPU platform." if ani["openmm_torch"].get("available")
               else ani["openmm_torch"]["reason"] + "."))
    else:
        add(f"\nANI-2x not measured: {ani['reason']}.")
    x = result["qm"]["gfn2_xtb"]
    if x.get("available"):
        add(f"\nGFN2-xTB: tblite {x['tblite']}, {x['omp_threads']} OpenMP thread, "
            f"{x['n_evaluations']} evaluations ({x['n_failed']} failed); {x['measured_as']}.")
    add(f"DFT: {result['qm']['dft']['reason']}.")
    add("\nMM costs include the integrator; the ANI-2x and xTB costs are one energy + force "
        "evaluation (no integrator), so they are lower bounds of an MD step. All raw timings are in "
        "`speed.json`.\n")
    return "\n".join(lines)
