"""Held-out errors by kind of conformation, and torsion-profile errors, model vs Sage vs GAFF.

The shipped dataset records where every conformation came from (raw ETKDG embedding, Sage
minimum, 500 K MD snapshot, relaxed torsion-scan point). This splits the held-out force RMSE by
that origin and computes, for every held-out relaxed torsion scan, the RMSE of the energy profile
(each profile aligned by its mean) against GFN2-xTB. Same conformations and the same AM1-BCC
charges (the dataset's labels) for Sage and GAFF; the same conformation limits as `evaluate`.

    .venv/bin/python benchmarks/conformation_kinds.py [--out benchmarks/results/conformation_kinds]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/espaloma_like_gfn2xtb.h5")
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", default="benchmarks/results/conformation_kinds")
    args = parser.parse_args()

    import torch

    from espaloma_like.api import load_model, parametrize
    from espaloma_like.baselines.gaff_amber import gaff_parameters
    from espaloma_like.baselines.sage_labels import sage_parameters
    from espaloma_like.data.spice import read_spice_hdf5
    from espaloma_like.mm import energy_terms
    from espaloma_like.molecule import from_smiles
    from espaloma_like.training.dataset import lennard_jones_clashes, plausible_conformations
    from espaloma_like.units import KCAL_TO_KJ, KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A

    model = load_model(args.model)
    methods = ("model", "sage", "gaff")
    force_sq: dict[str, dict[str, list[np.ndarray]]] = {m: defaultdict(list) for m in methods}
    profile_rmse: dict[str, list[float]] = {m: [] for m in methods}
    n_scans = 0
    for record in read_spice_hdf5(args.data):
        if record.metadata.get("split") != "held_out":
            continue
        graph = from_smiles(record.mapped_smiles)
        keep = plausible_conformations(record.energies, record.forces)
        keep &= ~lennard_jones_clashes(graph, record.conformations)
        kinds = np.array(json.loads(record.metadata["kinds"]))[keep]
        xyz = torch.tensor(record.conformations[keep], requires_grad=True)
        reference_forces = record.forces[keep]
        reference_energies = record.energies[keep]
        charges = np.array(record.charges)
        parameters = {
            "model": parametrize(graph, model).parameters,
            "sage": sage_parameters(graph, charges),
            "gaff": gaff_parameters(graph, charges),
        }
        scans = sorted({k.rsplit(":", 1)[0] for k in kinds if k.startswith("scan:")})
        n_scans += len(scans)
        for method, p in parameters.items():
            energy = energy_terms(p, xyz).total
            (gradient,) = torch.autograd.grad(energy.sum(), xyz)
            error = (-gradient.numpy() - reference_forces) * KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A
            for kind in {k.split(":")[0] for k in kinds}:
                mask = np.array([k.split(":")[0] == kind for k in kinds])
                force_sq[method][kind].append((error[mask] ** 2).ravel())
            e = energy.detach().numpy()
            for scan in scans:
                mask = np.array([k.startswith(scan + ":") for k in kinds])
                if mask.sum() < 3:
                    continue
                mm = e[mask] - e[mask].mean()
                qm = reference_energies[mask] - reference_energies[mask].mean()
                profile_rmse[method].append(float(np.sqrt(np.mean((mm - qm) ** 2)) / KCAL_TO_KJ))

    kinds_all = sorted({k for m in methods for k in force_sq[m]})
    result = {
        "command": "python benchmarks/conformation_kinds.py", "date": time.strftime("%Y-%m-%d"),
        "data": args.data, "model": args.model,
        "force_rmse_by_kind": {m: {k: float(np.sqrt(np.concatenate(force_sq[m][k]).mean()))
                                   for k in kinds_all} for m in methods},
        "n_force_components_by_kind": {k: int(sum(len(a) for a in force_sq["model"][k]))
                                       for k in kinds_all},
        "torsion_profiles": {m: {"n": len(v), "rmse_mean": float(np.mean(v)),
                                 "rmse_median": float(np.median(v))}
                             for m, v in profile_rmse.items()},
        "n_scans": n_scans,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Held-out errors by conformation origin, and torsion profiles", "",
             f"`{result['command']}`, {result['date']}, model `{args.model}`, reference GFN2-xTB.",
             "", "Force RMSE (kcal/mol/A) by where the conformation came from:", "",
             "| origin | model | Sage | GAFF | model / GAFF |", "|---|---|---|---|---|"]
    for k in kinds_all:
        f = result["force_rmse_by_kind"]
        lines.append(f"| {k} | {f['model'][k]:.2f} | {f['sage'][k]:.2f} | {f['gaff'][k]:.2f} | "
                     f"{f['model'][k] / f['gaff'][k]:.2f} |")
    t = result["torsion_profiles"]
    lines += ["", f"Relaxed torsion scans of held-out molecules ({t['model']['n']} profiles, "
              "24 points, each aligned by its mean): energy-profile RMSE (kcal/mol)", "",
              "| | model | Sage | GAFF |", "|---|---|---|---|",
              f"| mean | {t['model']['rmse_mean']:.2f} | {t['sage']['rmse_mean']:.2f} | "
              f"{t['gaff']['rmse_mean']:.2f} |",
              f"| median | {t['model']['rmse_median']:.2f} | {t['sage']['rmse_median']:.2f} | "
              f"{t['gaff']['rmse_median']:.2f} |"]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
