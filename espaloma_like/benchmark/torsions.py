"""``espaloma-like benchmark torsions``: torsion-profile RMSE on the package's own DFT scans.

The scans come from ``training/data_build_dft_scans.yaml`` (B3LYP-D3BJ/DZVP single points on
MM-relaxed 12-point scans of small fragments around charged groups, every molecule held out).
Each profile is aligned by its mean; its RMSE against QM is reported per method (one or more
models, OpenFF Sage 2.2.1 and GAFF-2.11, all with the dataset's AM1-BCC labels for the
baselines) and averaged per charge class (anions, cations, neutral), so the anion gap is measured
directly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from espaloma_like._io import atomic_write_text

CHARGE_CLASSES = ("anion", "cation", "neutral")


def charge_class(smiles: str) -> str:
    """``anion``, ``cation`` or ``neutral`` from the net formal charge of ``smiles``."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    charge = 0 if mol is None else Chem.GetFormalCharge(mol)
    return "anion" if charge < 0 else "cation" if charge > 0 else "neutral"


@dataclass(frozen=True)
class TorsionBenchmark:
    """Mean profile RMSEs (kcal/mol) per method, overall and per charge class.

    Attributes
    ----------
    methods : tuple of str
        Method labels: each model's name or path, then ``sage`` and ``gaff``.
    scans : list of dict
        One row per scan: name, smiles, torsion, charge class, RMSE per method.
    excluded : list of dict
        Molecules left out (a method failed, no charge labels), with the reason.
    """

    methods: tuple[str, ...]
    scans: list[dict[str, Any]]
    excluded: list[dict[str, str]]

    def mean_rmse(self, method: str, charge: str | None = None) -> float:
        """Mean over scans (of one charge class) of the profile RMSE, kcal/mol."""
        values = [s["rmse"][method] for s in self.scans if charge in (None, s["charge_class"])]
        return float(np.mean(values)) if values else math.nan

    def summary(self) -> dict[str, Any]:
        classes = {c: sum(s["charge_class"] == c for s in self.scans) for c in CHARGE_CLASSES}
        return {
            "units": "kcal/mol, mean over scans of the RMSE of mean-aligned profiles",
            "n_scans": len(self.scans), "scans_by_charge_class": classes,
            "mean_profile_rmse": {m: {"all": self.mean_rmse(m),
                                      **{c: self.mean_rmse(m, c) for c in CHARGE_CLASSES}}
                                  for m in self.methods},
        }

    def to_markdown(self) -> str:
        summary = self.summary()
        lines = ["# Torsion profiles against the package's own DFT scans", "",
                 "B3LYP-D3BJ/DZVP (PySCF) single points on MM-relaxed 12-point scans "
                 "(`training/data_build_dft_scans.yaml`, every molecule held out from training). "
                 "Mean over scans of the RMSE of mean-aligned profiles, kcal/mol.", "",
                 "| method | all | " + " | ".join(CHARGE_CLASSES) + " |",
                 "|---|---|" + "---|" * len(CHARGE_CLASSES)]
        counts = summary["scans_by_charge_class"]
        lines.append("| (scans) | " + str(len(self.scans)) + " | "
                     + " | ".join(str(counts[c]) for c in CHARGE_CLASSES) + " |")
        for method, row in summary["mean_profile_rmse"].items():
            lines.append(f"| {method} | " + " | ".join(
                "-" if math.isnan(row[k]) else f"{row[k]:.2f}" for k in ("all", *CHARGE_CLASSES))
                + " |")
        lines += ["", "| molecule | torsion | class | " + " | ".join(self.methods) + " |",
                  "|---|---|---|" + "---|" * len(self.methods)]
        for s in self.scans:
            lines.append(f"| `{s['smiles']}` | {s['torsion']} | {s['charge_class']} | "
                         + " | ".join(f"{s['rmse'][m]:.2f}" for m in self.methods) + " |")
        if self.excluded:
            lines += ["", "Excluded: " + "; ".join(f"{e['name']} ({e['reason']})"
                                                   for e in self.excluded)]
        return "\n".join(lines) + "\n"


def run_torsion_benchmark(data: Path, models: Sequence[str], out: Path | None = None,
                          progress: bool = True, max_molecules: int | None = None,
                          ) -> TorsionBenchmark:
    """Profile RMSE of each model, Sage 2.2.1 and GAFF-2.11 on the held-out scans of ``data``.

    Parameters
    ----------
    data : Path
        SPICE-format HDF5 with relaxed torsion scans (``scan:`` conformation kinds).
    models : sequence of str
        Shipped model names or checkpoint paths.
    out : Path, optional
        Folder for ``torsions.json`` and ``torsions.md`` (written atomically).
    max_molecules : int, optional
        Only the first molecules with scans (file order); default all.
    """
    from espaloma_like.api import load_model
    from espaloma_like.benchmark.accuracy import BenchmarkSize, _conformation_kinds
    from espaloma_like.benchmark.provenance import cpu_model, git_state
    from espaloma_like.training.evaluate import BaselineCache

    commit, dirty = git_state()  # before this run writes its outputs into the checkout
    every_scan = BenchmarkSize(None, None, max_molecules, True, None, None, None)
    cache: BaselineCache = {}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    excluded: list[dict[str, str]] = []
    methods: list[str] = []
    for index, model in enumerate(models):
        network = load_model(model)
        result, _ = _conformation_kinds(data, network, cache, every_scan, progress)
        methods.append(model)
        for scan in result["scans"]:
            row = rows.setdefault((scan["name"], scan["torsion"]), {
                "name": scan["name"], "smiles": scan["smiles"], "torsion": scan["torsion"],
                "charge_class": charge_class(scan["smiles"]), "rmse": {}})
            row["rmse"][model] = scan["rmse"]["model"]
            if index == 0:
                row["rmse"]["sage"] = scan["rmse"]["sage"]
                row["rmse"]["gaff"] = scan["rmse"]["gaff"]
        if index == 0:
            excluded = list(result["excluded"])
    methods += ["sage", "gaff"]
    complete = [r for r in rows.values() if all(m in r["rmse"] for m in methods)]
    benchmark = TorsionBenchmark(tuple(methods), complete, excluded)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        payload = {"provenance": {"git_commit": commit, "git_dirty": dirty, "cpu": cpu_model()},
                   "data": str(data), **benchmark.summary(),
                   "scans": benchmark.scans, "excluded": benchmark.excluded}
        atomic_write_text(out / "torsions.json", json.dumps(payload, indent=1) + "\n")
        atomic_write_text(out / "torsions.md", benchmark.to_markdown())
    return benchmark
