"""Accuracy on external QM data that the model never saw: model vs Sage vs GAFF.

Reads the public reference sets in ``../shared/qm-reference`` (SPICE 1.1.4 sample,
wB97M-D3BJ/def2-TZVPPD; grappa capped tripeptides; rMD17 ethanol, PBE/def2-SVP), attaches
AM1-BCC charges (antechamber/sqm, single point at the first conformation: the baselines' charges
and the model's charge reference), and runs :func:`espaloma_like.training.evaluate.evaluate` on
each set, all three methods on the same conformations in the same run. Note the model was
trained on GFN2-xTB, not on these levels of theory.

    .venv/bin/python benchmarks/external_accuracy.py [--shared ../shared] \
        [--out benchmarks/results/external_accuracy]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path


def _with_charges(record):  # type: ignore[no-untyped-def]
    from espaloma_like.baselines.am1bcc import compute_am1bcc
    from espaloma_like.molecule import from_smiles

    graph = from_smiles(record.mapped_smiles)
    charges = compute_am1bcc(graph, positions=record.conformations[0], optimize=False)
    metadata = dict(record.metadata)
    metadata["split"] = "held_out"
    metadata["charges"] = "AM1-BCC single point at conformation 0 (sqm maxcyc=0)"
    return dataclasses.replace(record, charges=charges, metadata=metadata)


def collect(shared: Path) -> dict[str, list]:  # type: ignore[type-arg]
    from espaloma_like.data.formats import read_extxyz, read_grappa_npz
    from espaloma_like.data.spice import is_supported, read_spice_hdf5

    sets: dict[str, list] = {}  # type: ignore[type-arg]
    reference = shared / "qm-reference"
    spice = sorted((reference / "spice_sample").glob("*.hdf5"))
    if spice:
        sets["spice_sample"] = [r for r in read_spice_hdf5(spice[0]) if is_supported(r) is None]
    tripeptides = sorted((reference / "grappa_tripeptides").glob("*.npz"))
    if tripeptides:
        level = "not stated by the source (grappa's paper: B3LYP-D3BJ/DZVP)"
        sets["grappa_tripeptides"] = [
            r for r in (read_grappa_npz(p, level_of_theory=level) for p in tripeptides)
            if r.mapped_smiles]
    ethanol = sorted((reference / "rmd17_ethanol").glob("*.xyz"))
    if ethanol:
        sets["rmd17_ethanol"] = [
            r for r in (read_extxyz(p, name="ethanol", level_of_theory="PBE/def2-SVP (rMD17)")
                        for p in ethanol)
            if r.mapped_smiles]
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", default="benchmarks/results/external_accuracy")
    args = parser.parse_args()

    from espaloma_like.data.spice import write_spice_hdf5
    from espaloma_like.training.evaluate import evaluate

    shared = Path(args.shared)
    if not (shared / "qm-reference").is_dir():
        raise SystemExit(f"no shared reference data at {shared}/qm-reference: nothing to measure")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, object] = {
        "command": "python benchmarks/external_accuracy.py", "date": time.strftime("%Y-%m-%d"),
        "machine": platform.platform(), "model": args.model, "sets": {},
    }
    lines = ["# Accuracy on external QM data (never trained on)", "",
             f"Command: `python benchmarks/external_accuracy.py`; date {summary['date']}; model "
             f"`{args.model}` (trained on GFN2-xTB). Energies per-molecule mean-centred (kcal/mol), "
             "forces kcal/mol/A; Sage and GAFF get AM1-BCC charges (single point at the first "
             "conformation); the same conformations for every method.", "",
             "| set | level of theory | molecules | conformations | energy RMSE model / Sage / GAFF "
             "| force RMSE model / Sage / GAFF |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as scratch:
        for name, records in collect(shared).items():
            if not records:
                continue
            records = [_with_charges(r) for r in records]
            path = Path(scratch) / f"{name}.h5"
            write_spice_hdf5(path, records)
            report = evaluate(args.model, [path], split="all", max_relative_energy_kcal=None,
                              max_force_kcal_per_a=None)
            report.write(out / name)
            overall = json.loads(report.to_json())["overall"]
            summary["sets"][name] = {"level_of_theory": records[0].level_of_theory,  # type: ignore[index]
                                     "overall": overall}
            e = " / ".join(f"{overall[m]['energy_rmse']:.2f}" for m in ("model", "sage", "gaff"))
            f = " / ".join(f"{overall[m]['force_rmse']:.2f}" for m in ("model", "sage", "gaff"))
            n_conf = overall["model"]["n_conformations"]
            lines.append(f"| {name} | {records[0].level_of_theory} | {len(records)} | {n_conf} "
                         f"| {e} | {f} |")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
