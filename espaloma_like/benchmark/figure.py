"""The speed-accuracy picture: MD cost per step against force and torsion errors.

Reads the ``summary`` blocks of the accuracy and speed benchmarks (``accuracy.json`` and
``speed.json``) and draws, on a log cost axis, the model and the classical force fields (cost
and error both measured), the ML potential (cost only: its weights cannot be downloaded here)
and the GFN2-xTB reference (cost of one QM step; zero error by definition, drawn on the axis).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from espaloma_like._io import atomic_open, atomic_write_text

#: how each method is drawn: label, colour, marker
STYLE = {
    "model": ("espaloma_like (this package)", "tab:red", "*"),
    "sage": ("OpenFF Sage 2.2.1 + AM1-BCC", "tab:blue", "o"),
    "gaff": ("GAFF-2.11 + AM1-BCC", "tab:green", "s"),
    "ani2x": ("ANI-2x architecture (cost only)", "tab:purple", "D"),
    "gfn2_xtb": ("GFN2-xTB (the reference)", "black", "^"),
}

#: the error axes of the figure: accuracy-summary key and axis label
PANELS = (
    ("force_rmse", "held-out force RMSE vs GFN2-xTB (kcal/mol/Å)"),
    ("torsion_profile_rmse", "torsion-profile RMSE vs GFN2-xTB (kcal/mol)"),
)


def figure_points(accuracy: dict[str, Any], speed: dict[str, Any]) -> list[dict[str, Any]]:
    """One point per method: MD cost (ms/step) and, where measured, its errors.

    Parameters
    ----------
    accuracy, speed
        The JSON written by the accuracy and speed benchmarks; only their ``summary`` is read.

    Returns
    -------
    list of dict
        ``method``, ``md_ms_per_step`` and one key per error axis (``None`` where the method has
        no measured error; 0.0 for the reference itself).
    """
    cost = speed["summary"]
    errors = accuracy["summary"]
    points = []
    for method in STYLE:
        ms = (cost.get(method) or {}).get("md_ms_per_step")
        if ms is None:
            continue
        point: dict[str, Any] = {"method": method, "md_ms_per_step": float(ms)}
        for key, _ in PANELS:
            if method == "gfn2_xtb":
                point[key] = 0.0
            else:
                value = (errors.get(method) or {}).get(key)
                point[key] = None if value is None else float(value)
        points.append(point)
    return points


def speed_accuracy_figure(accuracy_json: str | Path, speed_json: str | Path,
                          output_png: str | Path) -> list[dict[str, Any]]:
    """Draw the speed-accuracy figure; return the plotted points (also written as JSON).

    Parameters
    ----------
    accuracy_json, speed_json
        Outputs of ``espaloma-like benchmark accuracy`` and ``... speed``.
    output_png
        The figure; ``<output_png>.json`` beside it holds the plotted numbers.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    accuracy = json.loads(Path(accuracy_json).read_text())
    speed = json.loads(Path(speed_json).read_text())
    points = figure_points(accuracy, speed)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(11, 4.5))
    for ax, (key, ylabel) in zip(axes, PANELS, strict=True):
        top = max((p[key] for p in points if p[key] is not None), default=1.0) * 1.25
        for p in points:
            label, colour, marker = STYLE[p["method"]]
            if p[key] is None:  # cost only: a dashed line across the error axis
                ax.axvline(p["md_ms_per_step"], color=colour, linestyle="--", label=label)
                continue
            ax.scatter(p["md_ms_per_step"], p[key], color=colour, marker=marker, s=110,
                       label=label, zorder=3, clip_on=False)
        ax.set_xscale("log")
        ax.set_ylim(0, top)
        ax.set_xlabel("MD cost, ms per step (paracetamol, vacuum, CPU)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper right")
    fig.suptitle("Accuracy against cost: lower left is better")
    fig.tight_layout()
    output_png = Path(output_png)
    output_png.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(output_png, "wb") as handle:
        fig.savefig(handle, dpi=120, format="png")
    plt.close(fig)
    atomic_write_text(output_png.with_suffix(".json"), json.dumps(points, indent=2) + "\n")
    return points
