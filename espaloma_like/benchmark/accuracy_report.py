"""``accuracy.md``: the tables of the accuracy benchmark, written from its JSON."""

from __future__ import annotations

from typing import Any

from espaloma_like.training.evaluate import METHODS
from espaloma_like.training.evaluate import format_number as _fmt


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or not b > 0 else a / b


def _demote(markdown: str, levels: int = 2) -> str:
    """Markdown headings ``levels`` deeper (to nest a report inside this one)."""
    return "\n".join("#" * levels + line if line.startswith("#") else line
                     for line in markdown.splitlines())


def markdown(result: dict[str, Any], held_out_md: str) -> str:
    s, t = result["summary"], result["timings"]
    m = result["machine"]
    lines = [
        "# Accuracy: espaloma_like model vs OpenFF Sage 2.2.1 vs GAFF-2.11", "",
        f"Command: `{result['command']}`; date {result['date']}; machine {m['cpu']}, "
        f"{m['cores']} cores, {m['platform']}; load average {m['load_average_start'][0]:.2f} at "
        f"start, {m['load_average_end'][0]:.2f} at end; git commit "
        f"`{result['git_commit'] or 'unknown'}`; model `{result['settings']['model']}`; data "
        f"`{result['settings']['data']}`; total {t['total']:.0f} s.", "",
        "Every section scores the three methods on the same conformations in this run; Sage and "
        "GAFF get the dataset's AM1-BCC charge labels. Reference: GFN2-xTB (sections 1-3).", "",
    ]
    if result["quick"]:
        lines += ["**Quick run (smoke test): a few molecules per section. Not for citing.**", ""]
    lines += ["## Summary", "",
              "| method | energy RMSE (kcal/mol) | force RMSE (kcal/mol/Å) | torsion profile RMSE, "
              "mean / median (kcal/mol) | geometry: median RMSD (Å) | median ΔE (kcal/mol) |",
              "|---|---|---|---|---|---|"]
    for method in (*METHODS, "model/sage", "model/gaff"):
        row = s[method] if method in METHODS else s["ratios"][method]
        lines.append(f"| {method} | {_fmt(row['energy_rmse'])} | {_fmt(row['force_rmse'])} | "
                     f"{_fmt(row['torsion_profile_rmse'])} / {_fmt(row['torsion_profile_rmse_median'])}"
                     f" | {_fmt(row['geometry_rmsd_median'])} | {_fmt(row['geometry_delta_e_median'])} |")
    n = s["n"]
    lines += ["", f"Held-out: {n['held_out_molecules']} molecules, {n['held_out_conformations']} "
              f"conformations; {n['torsion_profiles']} torsion profiles; {n['geometry_molecules']} "
              "geometry molecules. Rows model/sage and model/gaff are ratios (below 1: the model "
              "is closer to the reference).", "",
              "## 1. Held-out split: energies and forces", "",
              "Plots: `parity_energy.png`, `parity_force.png`, `force_error_distribution.png`.", "",
              _demote(held_out_md).rstrip(), ""]

    k = result["conformation_kinds"]
    lines += ["## 2. Conformation origin and torsion profiles", "",
              f"{k['n_molecules']} molecules ({k['selection']}). Force RMSE (kcal/mol/Å) by "
              "where the conformation came from:", "",
              "| origin | force components | model | Sage | GAFF | model / Sage | model / GAFF |",
              "|---|---|---|---|---|---|---|"]
    f = k["force_rmse_by_kind"]
    for kind, count in k["n_force_components_by_kind"].items():
        lines.append(f"| {kind} | {count} | {_fmt(f['model'][kind])} | {_fmt(f['sage'][kind])} | "
                     f"{_fmt(f['gaff'][kind])} | {_fmt(_ratio(f['model'][kind], f['sage'][kind]))} "
                     f"| {_fmt(_ratio(f['model'][kind], f['gaff'][kind]))} |")
    tp = k["torsion_profiles"]
    lines += ["", f"Relaxed torsion scans ({tp['model']['n']} profiles, each aligned by its mean): "
              "energy-profile RMSE (kcal/mol). Plot: `torsion_profiles.png` (the first four "
              "scans in file order).", "", "| | model | Sage | GAFF |", "|---|---|---|---|"]
    for stat in ("rmse_mean", "rmse_median"):
        lines.append(f"| {stat.split('_')[1]} | "
                     + " | ".join(_fmt(tp[m][stat]) for m in METHODS) + " |")
    if k["scans"]:
        lines += ["", "| molecule | torsion | points | model | Sage | GAFF |", "|---|---|---|---|---|---|"]
        lines += [f"| `{p['smiles']}` | {p['torsion']} | {p['n_points']} | "
                  + " | ".join(_fmt(p["rmse"][mm]) for mm in METHODS) + " |" for p in k["scans"]]
    if k["excluded"]:
        lines += ["", "Excluded (a method failed): "
                  + "; ".join(f"{e['name']}: {e['reason'][:160]}" for e in k["excluded"])]

    g = result["geometry"]
    lines += ["", "## 3. Geometries", "", f"{g['n_molecules']} molecules ({g['selection']}); "
              f"{len(g['failures'])} failed. {g['start']}.", "",
              "| method | heavy-atom RMSD (Å), median / mean | xTB energy above the xTB minimum "
              "(kcal/mol), median / mean |", "|---|---|---|"]
    for method in METHODS:
        med, mean = g["median"][method], g["mean"][method]
        lines.append(f"| {method} | {_fmt(med['rmsd'])} / {_fmt(mean['rmsd'])} | "
                     f"{_fmt(med['delta_e'])} / {_fmt(mean['delta_e'])} |")
    lines += ["", "Molecule by molecule (the medians above hide which method is closer where):", "",
              "| model vs | model closer (RMSD) | median RMSD difference (Å) | model lower (ΔE) | "
              "median ΔE difference (kcal/mol) |", "|---|---|---|---|---|"]
    for baseline, row in g["paired"].items():
        lines.append(f"| {baseline} | {_fmt(100 * row['model_closer_fraction'])} % | "
                     f"{_fmt(row['median_rmsd_difference'])} | "
                     f"{_fmt(100 * row['model_lower_fraction'])} % | "
                     f"{_fmt(row['median_delta_e_difference'])} |")
    if g["failures"]:
        lines += ["", "Failed: " + "; ".join(f"{e['name']}: {e['reason'][:160]}"
                                              for e in g["failures"])]

    x = result["external"]
    lines += ["", "## 4. External QM data (never trained on)", ""]
    if "skipped" in x:
        lines.append(f"Skipped: {x['skipped']}.")
    else:
        lines += [f"From `{x['folder']}`. Energies mean-centred per molecule (kcal/mol), forces "
                  "kcal/mol/Å; AM1-BCC charges for Sage and GAFF from a single point at the first "
                  "conformation.", "",
                  "| set | level of theory | molecules | conformations | energy RMSE model / Sage / "
                  "GAFF | force RMSE model / Sage / GAFF |", "|---|---|---|---|---|---|"]
        for name, d in x["sets"].items():
            if "error" in d:
                lines.append(f"| {name} | failed: {d['error'][:160]} | | | | |")
                continue
            o = d["overall"]
            lines.append(f"| {name} | {d['level_of_theory']} | {d['n_molecules']} | "
                         f"{o['model']['n_conformations']} | "
                         + " / ".join(_fmt(o[mm]["energy_rmse"]) for mm in METHODS) + " | "
                         + " / ".join(_fmt(o[mm]["force_rmse"]) for mm in METHODS) + " |")

    lines += ["", "## Wall time per section (s)", "", "| section | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in t.items()]
    lines += ["", "Versions: " + ", ".join(f"{name} {v}" for name, v in result["versions"].items()) + "."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
