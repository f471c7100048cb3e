"""Tables, JSON and distribution plots of the industry conformer benchmark.

Methods are compared on exactly the same records: every comparison (all molecules; the records
OpenFF published rows for; the baseline subset) keeps only the records that every method of it
scored. Statistics per method: mean |ddE| (kcal/mol, reference conformers excluded), median
RMSD (Å), median TFD and median internal-coordinate RMSDs; the same by heavy-atom count
(<= 20, 21-30, > 30), by net charge (neutral, cations, anions) and by charged functional group
(ammonium, carboxylate, ...: where fixed-charge force fields differ most).
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like.benchmark.conformers_metrics import METRIC_NAMES

if TYPE_CHECKING:
    from espaloma_like.benchmark.conformers import MethodSpec
    from espaloma_like.data.records import QMRecord

__all__ = ["SIZE_BINS", "build_report", "markdown", "summarize", "write_plots"]

#: heavy-atom count bins: label -> (lowest, highest) inclusive
SIZE_BINS = {"<= 20 heavy atoms": (0, 20), "21-30 heavy atoms": (21, 30),
             "> 30 heavy atoms": (31, 10**9)}
CHARGE_CLASSES = ("neutral", "cations", "anions")
#: charged functional groups (SMARTS); a molecule can hold several
CHARGED_GROUPS = {
    "ammonium": "[NX4+]",
    "amidinium / guanidinium": "[NX3+;!$(N~[O-])]=[CX3]~[NX3]",
    "aromatic N+": "[n+;!$(n~[O-])]",
    "carboxylate": "[CX3](=O)[O-]",
    "sulfonate / sulfate": "[SX4](=O)(=O)[O-]",
    "phosphate / phosphonate": "[PX4][O-]",
    "anionic N": "[N-,n-]",
}
STATISTICS = (
    ("mean_abs_ddE", "mean abs ddE (kcal/mol)"),
    ("median_rmsd", "median RMSD (Å)"),
    ("median_tfd", "median TFD"),
    ("median_bond_rmsd", "median bond RMSD (Å)"),
    ("median_angle_rmsd", "median angle RMSD (°)"),
    ("median_dihedral_rmsd", "median dihedral RMSD (°)"),
    ("median_improper_rmsd", "median improper RMSD (°)"),
)
PLOTTED = (("ddE", "|ddE| (kcal/mol)", 10.0), ("rmsd", "RMSD (Å)", 2.0), ("tfd", "TFD", 0.3))


def charge_class(charge: int) -> str:
    """``neutral``, ``cations`` or ``anions``."""
    return "neutral" if charge == 0 else ("cations" if charge > 0 else "anions")


def _values(rows: Sequence[Mapping[str, Any]], method: str, metric: str) -> np.ndarray:
    found = [row["methods"][method].get(metric) for row in rows]
    return np.asarray([v for v in found if v is not None], dtype=np.float64)


def _stat(values: np.ndarray, kind: str) -> float | None:
    if values.size == 0:
        return None
    return float(np.mean(values) if kind == "mean" else np.median(values))


def summarize(rows: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> dict[str, Any]:
    """Statistics per method over ``rows`` (each with ``methods[m]`` metric dicts).

    Returns
    -------
    dict
        ``n_records``, ``n_molecules`` and per method ``n_ddE``, ``mean_abs_ddE``,
        ``median_abs_ddE``, ``mean_rmsd``, ``median_rmsd``, ``median_tfd``, ``median_<ic>_rmsd``.
    """
    out: dict[str, Any] = {"n_records": len(rows),
                           "n_molecules": len({row["molecule"] for row in rows}), "methods": {}}
    for method in methods:
        dde = np.abs(_values(rows, method, "ddE"))
        rmsd = _values(rows, method, "rmsd")
        stats: dict[str, Any] = {"n_ddE": int(dde.size), "mean_abs_ddE": _stat(dde, "mean"),
                                 "median_abs_ddE": _stat(dde, "median"),
                                 "mean_rmsd": _stat(rmsd, "mean"), "median_rmsd": _stat(rmsd, "median")}
        for metric in METRIC_NAMES[2:]:
            stats[f"median_{metric}"] = _stat(_values(rows, method, metric), "median")
        out["methods"][method] = stats
    return out


@functools.lru_cache(maxsize=16384)  # one entry per molecule, its conformers share it
def charged_groups(smiles: str) -> tuple[str, ...]:
    """The :data:`CHARGED_GROUPS` present in the molecule ``smiles`` (none for a neutral one)."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles) if smiles else None
    if mol is None or not any(a.GetFormalCharge() for a in mol.GetAtoms()):
        return ()
    return tuple(label for label, pattern in _group_patterns().items()
                 if mol.HasSubstructMatch(pattern))


@functools.lru_cache(maxsize=1)
def _group_patterns() -> dict[str, Any]:
    from rdkit import Chem

    return {label: Chem.MolFromSmarts(smarts) for label, smarts in CHARGED_GROUPS.items()}


def _breakdowns(rows: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> dict[str, Any]:
    by_size = {label: summarize([r for r in rows if lo <= r["heavy_atoms"] <= hi], methods)
               for label, (lo, hi) in SIZE_BINS.items()}
    by_charge = {label: summarize([r for r in rows if charge_class(r["charge"]) == label], methods)
                 for label in CHARGE_CLASSES}
    by_group = {label: summarize([r for r in rows if label in charged_groups(r["smiles"])],
                                 methods)
                for label in CHARGED_GROUPS}
    return {"overall": summarize(rows, methods), "by_size": by_size, "by_charge": by_charge,
            "by_group": by_group}


def _common(rows: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> list[Mapping[str, Any]]:
    """Rows every method scored."""
    return [row for row in rows if all(m in row["methods"] for m in methods)]


def build_report(records: Sequence[QMRecord], specs: Sequence[MethodSpec],
                 done: Mapping[tuple[str, str], Mapping[str, Any]],
                 published: Mapping[str, Mapping[str, Mapping[str, float | None]]],
                 subset: set[str], settings: dict[str, Any],
                 provenance: dict[str, Any]) -> dict[str, Any]:
    """The JSON document: settings, headline ``summary``, per-record rows, comparisons, timing.

    ``summary[comparison]`` holds the overall statistics per method of each comparison
    (``all``, ``published``, ``baseline_subset``); ``comparisons`` adds the breakdowns by size
    and charge; ``records`` has one row per QM conformer with its QCArchive record id and
    every method's metrics.
    """
    from espaloma_like.benchmark.conformers import heavy_atom_count
    from espaloma_like.units import KJ_TO_KCAL

    models = [s.label for s in specs if s.kind == "model"]
    baselines = [s.label for s in specs if s.kind != "model"]
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    seconds: dict[str, list[float]] = {s.label: [] for s in specs}
    conformers: dict[str, int] = {s.label: 0 for s in specs}
    for record in records:
        ids = json.loads(record.metadata["record_ids"])
        per_record: dict[str, dict[str, Any]] = {i: {} for i in ids}
        for spec in specs:
            entry = done.get((record.name, spec.label))
            if entry is None:
                continue
            if entry.get("error"):
                failures.append({"molecule": record.name, "method": spec.label,
                                 "error": str(entry["error"])})
                continue
            seconds[spec.label].append(float(entry.get("seconds", 0.0)))
            conformers[spec.label] += len(entry["records"])
            for score in entry["records"]:
                per_record[score["record_id"]][spec.label] = {
                    k: score[k] for k in (*METRIC_NAMES, "mm_energy")}
        for label, table in published.items():
            for record_id in ids:
                if record_id in table:
                    per_record[record_id][label] = dict(table[record_id])
        for index, record_id in enumerate(ids):
            rows.append({"record_id": record_id, "molecule": record.name, "conformer": index,
                         "smiles": record.metadata.get("smiles", ""),
                         "source": record.metadata.get("source", ""),
                         "heavy_atoms": heavy_atom_count(record),
                         "charge": int(record.total_charge),
                         "qm_energy": float(record.energies[index]) * KJ_TO_KCAL,
                         "baseline_subset": record.name in subset,
                         "methods": per_record[record_id]})
    pub = list(published)
    comparisons: dict[str, Any] = {
        "all": {"methods": models, **_breakdowns(_common(rows, models), models)}}
    with_pub = [*models, *pub]
    comparisons["published"] = {"methods": with_pub,
                                **_breakdowns(_common(rows, with_pub), with_pub)}
    if baselines:
        in_subset = [r for r in rows if r["baseline_subset"]]
        everything = [*models, *baselines, *pub]
        comparisons["baseline_subset"] = {
            "methods": everything, **_breakdowns(_common(in_subset, everything), everything)}
    timing = {label: {"molecules": len(values), "conformers": conformers[label],
                      "seconds_total": float(sum(values)),
                      "seconds_per_conformer": (float(sum(values)) / conformers[label]
                                                if conformers[label] else None)}
              for label, values in seconds.items()}
    return {"benchmark": "conformers", "provenance": provenance, "settings": settings,
            "units": {"ddE": "kcal/mol", "rmsd": "Å (all atoms, symmetry-aware, overlaid)",
                      "tfd": "torsion fingerprint deviation", "bond_rmsd": "Å",
                      "angle_rmsd": "degrees", "dihedral_rmsd": "degrees",
                      "improper_rmsd": "degrees", "mm_energy": "kcal/mol",
                      "qm_energy": "kcal/mol"},
            "n_molecules": len(records),
            "summary": {key: {"n_records": block["overall"]["n_records"],
                              "n_molecules": block["overall"]["n_molecules"],
                              **block["overall"]["methods"]}
                        for key, block in comparisons.items()},
            "comparisons": comparisons, "timing": timing,
            "failures": failures, "records": rows}


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _overall_table(block: Mapping[str, Any]) -> list[str]:
    overall = block["overall"]
    lines = ["| method | " + " | ".join(title for _, title in STATISTICS) + " |",
             "|---|" + "---|" * len(STATISTICS)]
    for method in block["methods"]:
        stats = overall["methods"][method]
        lines.append(f"| {method} | " + " | ".join(_fmt(stats[key]) for key, _ in STATISTICS) + " |")
    return lines


def _breakdown_table(block: Mapping[str, Any], which: str, labels: Sequence[str]) -> list[str]:
    groups = block[which]
    header = "| method | " + " | ".join(
        f"{label} (n={groups[label]['n_records']})" for label in labels) + " |"
    lines = ["mean abs ddE (kcal/mol) / median RMSD (Å):", "", header,
             "|---|" + "---|" * len(labels)]
    for method in block["methods"]:
        cells = []
        for label in labels:
            stats = groups[label]["methods"][method]
            cells.append(f"{_fmt(stats['mean_abs_ddE'], 2)} / {_fmt(stats['median_rmsd'], 2)}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


TITLES = {
    "all": "Model(s) on every molecule of the split",
    "published": "Model(s) vs OpenFF's published Sage 2.0.0 and GAFF-2.11 rows (same records)",
    "baseline_subset": "Model(s) vs the package's Sage 2.2.1 and GAFF-2.11 (baseline subset)",
}


def markdown(document: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    """The Markdown report of a :func:`build_report` document; ``plots`` maps comparison -> file."""
    s = document["settings"]
    p = document["provenance"]
    lines = ["# Industry conformer benchmark (OpenFF Industry Benchmark Season 1, B3LYP-D3BJ/DZVP)",
             "",
             f"Split **{s['split']}**, {document['n_molecules']} molecules"
             + {"charged": " with a net charge", "neutral": " without a net charge"}.get(
                 s.get("charge", "all"), "")
             + (" (quick smoke test: numbers not for citing)" if s["quick"] else "")
             + f". git {p['git_commit']}, {p['date']}, {p['machine']['cpu']} "
               f"({p['machine']['cores']} cores), {s['workers']} worker(s).",
             "",
             "Each QM-optimized conformer is minimized with each method (OpenMM L-BFGS, Reference "
             f"platform, vacuum, no constraints, tolerance {s['minimizer']['tolerance_kj_per_mol_nm']}"
             f" kJ/mol/nm, at most {s['minimizer']['max_iterations']} iterations, as OpenFF did) "
             "and scored as OpenFF scores force fields: ddE = (E_MM(i) - E_MM(ref)) - "
             "(E_QM(i) - E_QM(ref)), ref the lowest-QM-energy conformer of the molecule; all-atom "
             "symmetry-aware RMSD after overlay; TFD; geomeTRIC internal-coordinate RMSDs. The "
             "metric code reproduces OpenFF's published rows from their own Sage 2.0.0 minima "
             "(tests/test_benchmark_conformers.py).", ""]
    for key, block in document["comparisons"].items():
        lines += [f"## {TITLES.get(key, key)}", ""]
        overall = block["overall"]
        lines.append(f"{overall['n_records']} conformers of {overall['n_molecules']} molecules "
                     "scored by every method below.")
        if key == "baseline_subset":
            lines.append(f"The package's baselines (AM1-BCC charges, minutes per large molecule) "
                         f"cover a subset: {s['baseline_molecules']} molecules chosen by "
                         f"{s['subset_rule']}; the model is compared with them on that subset "
                         "only.")
        if key == "published":
            lines.append("Published rows: OpenFF's own minimizations (OpenEye AM1-BCC), joined "
                         "by QCArchive record id; OpenFF computed ddE within each of its chunk "
                         "files.")
        lines += ["", *_overall_table(block), "", "By size:", "",
                  *_breakdown_table(block, "by_size", list(SIZE_BINS)), "", "By net charge:", "",
                  *_breakdown_table(block, "by_charge", list(CHARGE_CLASSES)), ""]
        groups = [g for g in CHARGED_GROUPS if block.get("by_group", {}).get(g, {}).get("n_records")]
        if groups:
            lines += ["By charged group (molecules holding it; a molecule can hold several):", "",
                      *_breakdown_table(block, "by_group", groups), ""]
        if key in plots:
            lines += [f"![cumulative distributions]({plots[key]})", ""]
    lines += ["## Cost and failures", "", "| method | molecules | conformers | s per conformer |",
              "|---|---|---|---|"]
    for label, t in document["timing"].items():
        lines.append(f"| {label} | {t['molecules']} | {t['conformers']} | "
                     f"{_fmt(t['seconds_per_conformer'], 2)} |")
    lines.append("")
    lines.append("Seconds per conformer: parametrization plus minimization of one molecule divided "
                 "by its conformers (baselines include AM1-BCC when not cached).")
    failures = document["failures"]
    lines += ["", f"{len(failures)} (molecule, method) failures"
              + (":" if failures else "."), ""]
    lines += [f"- {f['molecule']} / {f['method']}: {f['error'][:200]}" for f in failures[:50]]
    skipped = s.get("records_skipped_by_reader", [])
    if skipped:
        lines += ["", f"{len(skipped)} industry records skipped by the reader (first 10):", ""]
        lines += [f"- {line}" for line in skipped[:10]]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _cumulative_figure(rows: Sequence[Mapping[str, Any]], methods: Sequence[str],
                       title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(4.2 * len(PLOTTED), 3.6))
    for ax, (metric, label, x_max) in zip(axes, PLOTTED, strict=True):
        for method in methods:
            values = np.sort(np.abs(_values(rows, method, metric)))
            if values.size == 0:
                continue
            ax.step(values, np.arange(1, values.size + 1) / values.size, where="post", label=method)
        ax.set_xlim(0.0, x_max)
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel(label)
        ax.set_ylabel("fraction of conformers")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def write_plots(document: Mapping[str, Any], out: Path,
                write: Callable[[Path, bytes], Any] | None = None) -> dict[str, str]:
    """Cumulative |ddE|, RMSD and TFD curves per comparison: ``conformers_<name>.png``.

    Returns
    -------
    dict
        Comparison name -> file name (relative to ``out``).
    """
    from espaloma_like._io import atomic_write_bytes

    writer = write or atomic_write_bytes
    written = {}
    for key, block in document["comparisons"].items():
        rows = _common(document["records"], block["methods"])
        if not rows:
            continue
        name = f"conformers_{key}.png"
        title = f"{TITLES.get(key, key)}: {len(rows)} conformers"
        writer(Path(out) / name, _cumulative_figure(rows, block["methods"], title))
        written[key] = name
    return written
