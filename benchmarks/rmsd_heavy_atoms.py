"""Where the conformer benchmark's RMSD comes from: all atoms against heavy atoms only.

    .venv/bin/python benchmarks/rmsd_heavy_atoms.py [--model default] [--molecules 60]

The industry benchmark scores the all-atom symmetry-aware RMSD between the QM minimum and the
MM minimum from it (as OpenFF does). Hydrogens that rotate freely at a minimum (hydroxyl,
amine, thiol hydrogens) count there like heavy atoms. This script minimizes the first
``--molecules`` validation molecules of the industry split with the model exactly as
``espaloma-like benchmark conformers`` does and reports, per conformer, the all-atom RMSD and the
heavy-atom RMSD (same symmetry-aware overlay, hydrogens removed), so one can see how much of the
median the hydrogens carry. Validation molecules only: nothing here looks at the test split.
Writes ``benchmarks/results/rmsd_heavy_atoms_<model>.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--molecules", type=int, default=60)
    parser.add_argument("--industry", default="../shared/qm-reference/openff_industry_b3lyp")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    if not Path(args.industry).is_dir():
        parser.error(f"no industry data folder {args.industry} (the OpenFF industry SDF files)")

    from rdkit import Chem
    from tqdm import tqdm

    from espaloma_like._io import atomic_write_text
    from espaloma_like.api import load_model
    from espaloma_like.benchmark.conformers import minimize
    from espaloma_like.benchmark.conformers_metrics import best_rmsd
    from espaloma_like.data.industry import industry_files, read_industry_sdf
    from espaloma_like.data.records import record_graph
    from espaloma_like.export.openmm_system import to_openmm_system
    from espaloma_like.training.evaluate import method_parameters
    from espaloma_like.units import NM_TO_ANGSTROM

    network = load_model(args.model)
    records = []
    for record in read_industry_sdf(industry_files(Path(args.industry)), []):
        if record.metadata.get("split") == "validation":
            records.append(record)
            if len(records) >= args.molecules:
                break
    rows = []
    for record in tqdm(records, desc="molecules", unit="mol"):
        graph = record_graph(record)
        system = to_openmm_system(method_parameters("model", graph, "unused", network, {}),
                                  masses=graph.masses)
        mol = graph.rdkit_mol
        heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
        heavy_mol = Chem.RemoveHs(mol)
        polar_h = sum(1 for a in mol.GetAtoms() if a.GetAtomicNum() == 1
                      and a.GetNeighbors()[0].GetAtomicNum() in (7, 8, 16))
        for xyz in record.conformations:
            minimum, _ = minimize(system, xyz)
            ref, got = xyz * NM_TO_ANGSTROM, minimum * NM_TO_ANGSTROM
            rows.append({"molecule": record.name, "heavy_atoms": len(heavy),
                         "polar_hydrogens": polar_h,
                         "rmsd_all": best_rmsd(mol, ref, got),
                         "rmsd_heavy": best_rmsd(heavy_mol, ref[heavy], got[heavy])})
    all_atoms = np.array([r["rmsd_all"] for r in rows])
    heavy_atoms = np.array([r["rmsd_heavy"] for r in rows])
    with_polar = np.array([r["polar_hydrogens"] > 0 for r in rows])
    summary = {
        "model": args.model, "molecules": len(records), "conformers": len(rows),
        "median_rmsd_all": float(np.median(all_atoms)),
        "median_rmsd_heavy": float(np.median(heavy_atoms)),
        "median_ratio_heavy_to_all": float(np.median(heavy_atoms / np.maximum(all_atoms, 1e-9))),
        "with_polar_h": {"conformers": int(with_polar.sum()),
                         "median_rmsd_all": float(np.median(all_atoms[with_polar])),
                         "median_rmsd_heavy": float(np.median(heavy_atoms[with_polar]))},
        "without_polar_h": {"conformers": int((~with_polar).sum()),
                            "median_rmsd_all": float(np.median(all_atoms[~with_polar])),
                            "median_rmsd_heavy": float(np.median(heavy_atoms[~with_polar]))},
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    out = Path(args.out)
    stem = f"rmsd_heavy_atoms_{Path(args.model).stem}"
    atomic_write_text(out / f"{stem}.json", json.dumps({"summary": summary, "rows": rows},
                                                       indent=1) + "\n")
    lines = [
        f"# All-atom against heavy-atom RMSD: `{args.model}`", "",
        f"`python benchmarks/rmsd_heavy_atoms.py --model {args.model} --molecules "
        f"{args.molecules}`, {summary['date_utc']}. The first {len(records)} validation "
        f"molecules of the industry split ({len(rows)} conformers), each DFT minimum minimized "
        "with the model as `espaloma-like benchmark conformers` does; symmetry-aware best "
        "overlay, Å.", "",
        "| conformers | n | median all-atom RMSD | median heavy-atom RMSD |", "|---|---|---|---|",
        f"| all | {len(rows)} | {summary['median_rmsd_all']:.3f} | "
        f"{summary['median_rmsd_heavy']:.3f} |",
        f"| molecules with O-H / N-H / S-H | {summary['with_polar_h']['conformers']} | "
        f"{summary['with_polar_h']['median_rmsd_all']:.3f} | "
        f"{summary['with_polar_h']['median_rmsd_heavy']:.3f} |",
        f"| molecules without | {summary['without_polar_h']['conformers']} | "
        f"{summary['without_polar_h']['median_rmsd_all']:.3f} | "
        f"{summary['without_polar_h']['median_rmsd_heavy']:.3f} |", "",
        f"Median per-conformer ratio heavy / all: {summary['median_ratio_heavy_to_all']:.2f}.",
    ]
    atomic_write_text(out / f"{stem}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
