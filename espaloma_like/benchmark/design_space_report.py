"""Markdown tables and the Pareto figure of the design-space benchmark.

Reads only the JSON document of :func:`espaloma_like.benchmark.design_space.run_design_space`,
so the report can be rebuilt from committed results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from espaloma_like._io import atomic_open

#: The accuracy panels of the figure: (section, metric path, axis label).
PANELS = (
    ("conformers", "mean_abs_ddE", "DFT conformers: mean |ddE| (kcal/mol)"),
    ("conformers", "median_rmsd", "DFT conformers: median RMSD (Å)"),
    ("torsions", "all", "DFT torsion scans: mean profile RMSE (kcal/mol)"),
)
#: Peers drawn beside the options: colour, marker, label.
PEERS = {
    "sage": ("tab:blue", "o", "OpenFF Sage"),
    "gaff": ("tab:green", "s", "GAFF-2.11"),
    "ani2x": ("tab:purple", "D", "ANI-2x architecture (cost only)"),
    "gfn2_xtb": ("black", "^", "GFN2-xTB"),
}


def cost_over_gaff(document: Mapping[str, Any], platform: str = "Reference") -> dict[str, float]:
    """MD cost per step relative to GAFF's (paracetamol in vacuum) per method.

    ``platform="Reference"`` (default): the raw, single-threaded cost of the force terms, where a
    20-atom step is cheap enough that every term counts; ANI-2x and GFN2-xTB (their own
    single-process timings) are divided by GAFF's Reference step. ``"CPU"``: the optimized
    platform, 1 / the paired ns-per-day ratio; there the step overhead hides the terms of a small
    molecule.
    """
    md = document.get("md_cost", {})
    run = md.get("runs", {}).get(f"{platform}/vacuum", {})
    cost: dict[str, float] = {}
    if platform == "CPU":
        for name, ratio in (run.get("ns_per_day_over_gaff") or {}).items():
            cost[name] = 1.0 / ratio
    else:
        ms = run.get("median_ms_per_step") or {}
        for name, value in ms.items():
            if ms.get("gaff"):
                cost[name] = value / ms["gaff"]
    gaff_ms = (run.get("median_ms_per_step") or {}).get("gaff")
    for name, entry in md.get("ml_and_qm", {}).items():
        if entry.get("ms_per_step") is not None and gaff_ms:
            cost[name] = float(entry["ms_per_step"]) / gaff_ms
    return cost


def cost_platform(document: Mapping[str, Any]) -> str:
    """The platform of the cost axis: Reference where it was run (raw cost), else CPU."""
    runs = document.get("md_cost", {}).get("runs", {})
    reference = runs.get("Reference/vacuum", {})
    return "Reference" if reference and not reference.get("skipped") else "CPU"


def accuracy_points(document: Mapping[str, Any], section: str, metric: str) -> dict[str, float]:
    """Per method, the value of ``metric`` in ``section`` (``sage`` / ``gaff`` for the peers)."""
    values: dict[str, float] = {}
    if section == "conformers":
        overall = document.get("conformers", {}).get("overall", {})
        for name, entry in overall.items():
            peer = {"sage_2.0.0": "sage", "gaff_2.11": "gaff"}.get(name, name)
            values[peer] = float(entry[metric])
    else:
        for name, entry in document.get("torsions", {}).get("mean_rmse", {}).items():
            peer = {"sage_2.2.1": "sage"}.get(name, name)
            peer = "gaff" if peer == "gaff_2.11" else peer
            values[peer] = float(entry[metric])
    return {k: v for k, v in values.items() if not math.isnan(v)}


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """Names of the non-dominated points (lower cost and lower error are better), by cost."""
    front = []
    best = math.inf
    for name, (_, error) in sorted(points.items(), key=lambda kv: (kv[1][0], kv[1][1])):
        if error < best:
            front.append(name)
            best = error
    return front


def write_figure(document: Mapping[str, Any], path: Path) -> str | None:
    """Three panels of accuracy against MD cost relative to GAFF; returns the file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    platform = cost_platform(document)
    cost = cost_over_gaff(document, platform)
    options = [o["name"] for o in document.get("options", [])]
    if not cost:
        return None
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(PANELS), figsize=(15, 4.8))
    for ax, (section, metric, label) in zip(axes, PANELS, strict=True):
        values = accuracy_points(document, section, metric)
        points = {n: (cost[n], v) for n, v in values.items() if n in cost}
        front = pareto_front(points)
        if len(front) > 1:
            ax.step([points[n][0] for n in front], [points[n][1] for n in front], where="post",
                    color="grey", alpha=0.6, linestyle=":", label="Pareto front")
        for index, name in enumerate(options):
            if name in points:
                ax.scatter(*points[name], color=colours(index % 10), marker="*", s=160,
                           edgecolor="black", linewidth=0.5, zorder=3, label=name)
                ax.annotate(name, points[name], textcoords="offset points", xytext=(6, 3),
                            fontsize=7)
        for name, (colour, marker, peer_label) in PEERS.items():
            if name not in cost:
                continue
            if name in points:
                ax.scatter(*points[name], color=colour, marker=marker, s=90, zorder=3,
                           label=peer_label)
            else:
                ax.axvline(cost[name], color=colour, linestyle="--", label=f"{peer_label}, no value")
        ax.set_xscale("log")
        ax.set_xlabel("raw MD cost per step / GAFF's (paracetamol, vacuum, 1 thread)"
                      if platform == "Reference" else
                      "MD cost per step / GAFF's (paracetamol, vacuum, CPU platform)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        top = max((p[1] for p in points.values()), default=1.0)
        ax.set_ylim(0, top * 1.2)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Functional-form design space: accuracy against DFT vs MD cost (lower left is "
                 "better)")
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, dpi=110, format="png")
    plt.close(fig)
    return path.name


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(document: Mapping[str, Any], figure: str | None) -> str:
    """The report: one table per axis, then the figure."""
    options = [o["name"] for o in document.get("options", [])]
    lines = ["# Functional-form design space", "",
             "`espaloma-like benchmark design-space`: every option is a model trained with the same "
             "recipe and data (`training/train_form_*.yaml`: the shipped DFT-tuned model, the "
             "option's terms switched on or off, 1500 steps of the same fine-tuning), measured on "
             "the same inputs in one run.", ""]
    lines += _table(["option", "model", "terms"],
                    [[o["name"], f"`{o['model']}`", o["description"]] for o in document["options"]])
    md = document.get("md_cost", {})
    platform = cost_platform(document)
    cost = cost_over_gaff(document, platform)
    if md.get("runs"):
        lines += ["", f"## MD cost ({md['molecule']}, {md['n_atoms']} atoms)", "",
                  "Median over paired rounds of ns/day relative to GAFF-2.11 (higher is faster); "
                  "Reference: ms per step.", ""]
        runs = md["runs"]
        names = [*options, "sage", "gaff"]
        header = ["method", *(f"{k} ns/day / GAFF" for k in runs if not k.startswith("Reference")),
                  "Reference ms/step"]
        rows = []
        for name in names:
            row = [name]
            for key, run in runs.items():
                if key.startswith("Reference"):
                    continue
                row.append(_f((run.get("ns_per_day_over_gaff") or {}).get(name), 3))
            ref = runs.get("Reference/vacuum", {})
            row.append(_f((ref.get("median_ms_per_step") or {}).get(name), 3))
            rows.append(row)
        lines += _table(header, rows)
        cpu_cost = cost_over_gaff(document, "CPU")
        for name, entry in md.get("ml_and_qm", {}).items():
            lines.append("")
            lines.append(f"{name}: " + (f"{entry['ms_per_step']:.2f} ms per step: "
                                        f"{cpu_cost[name]:.0f}x GAFF's CPU-platform step, "
                                        f"{cost[name]:.0f}x its {platform} step"
                                        if name in cost and name in cpu_cost
                                        else entry.get("reason", "not measured")))
        lines += ["", "Terms per force: " + "; ".join(
            f"{n}: " + ", ".join(f"{k} {v}" for k, v in c.items())
            for n, c in md.get("term_counts", {}).items())]
    conf = document.get("conformers", {})
    if "overall" in conf:
        lines += ["", f"## DFT conformers ({conf['n_molecules']} validation molecules, "
                  f"{conf['n_records']} conformers)", "",
                  "Mean |ddE| (kcal/mol) / median RMSD (Å) / median TFD after minimization; "
                  "Sage 2.0.0 and GAFF-2.11 are OpenFF's published results on the same records.", ""]
        names = [n for n in [*options, "sage_2.0.0", "gaff_2.11"] if n in conf["overall"]]
        classes = list(conf.get("by_charge", {}))
        header = ["method", "all", *(f"{c} ({conf['by_charge'][c]['n_records']})" for c in classes)]
        rows = []
        for name in names:
            row = [name]
            for block in (conf["overall"], *(conf["by_charge"][c] for c in classes)):
                e = block.get(name)
                row.append("-" if e is None else f"{_f(e['mean_abs_ddE'])} / "
                           f"{_f(e['median_rmsd'], 3)} / {_f(e['median_tfd'], 3)}")
            rows.append(row)
        lines += _table(header, rows)
    elif conf.get("skipped"):
        lines += ["", f"DFT conformers skipped: {conf['skipped']}"]
    tors = document.get("torsions", {})
    if "mean_rmse" in tors:
        lines += ["", f"## DFT torsion scans ({tors['n_scans']} scans)", "",
                  "Mean over scans of the mean-aligned profile RMSE, kcal/mol (GFN2-xTB: single "
                  "points on the same geometries).", ""]
        keys = ["all", "anion", "cation", "neutral"]
        lines += _table(["method", *keys], [[n, *(_f(v.get(k)) for k in keys)]
                                            for n, v in tors["mean_rmse"].items()])
    forces = document.get("forces", {})
    if forces.get("sets"):
        lines += ["", "## Energies and forces on external DFT sets", "",
                  "Energy RMSE (kcal/mol, mean-aligned per molecule) / force RMSE (kcal/mol/Å).", ""]
        sets = list(forces["sets"])
        rows = [[name, *(f"{_f(forces['sets'][s]['options'][name]['energy_rmse'])} / "
                         f"{_f(forces['sets'][s]['options'][name]['force_rmse'])}" for s in sets)]
                for name in options]
        lines += _table(["option", *sets], rows)
    if figure:
        lines += ["", f"![design space]({figure})"]
    if cost:
        lines += ["", f"Cost per step relative to GAFF ({platform} platform, vacuum; ANI-2x and "
                  f"GFN2-xTB: their own step time over GAFF's {platform} step), the figure's "
                  "x-axis: " + ", ".join(f"{n} {v:.2f}" for n, v in cost.items())]
    lines += ["", f"Run: commit {document['provenance']['git_commit']}, "
              f"{document['provenance']['date_utc']}, {document['provenance']['cpu']}, "
              f"{document.get('wall_s', 0):.0f} s."]
    return "\n".join(lines) + "\n"


def rebuild_report(out: Path) -> None:
    """Redraw ``design_space.md`` and ``design_space.png`` in ``out`` from its JSON."""
    import json

    from espaloma_like._io import atomic_write_text

    document = json.loads((out / "design_space.json").read_text())
    figure = write_figure(document, out / "design_space.png")
    atomic_write_text(out / "design_space.md", markdown(document, figure))
