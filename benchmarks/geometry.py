"""MM-minimized versus QM-minimized geometries on held-out molecules: model vs Sage vs GAFF.

For each held-out molecule (the dataset's scaffold split): minimize its first Sage-minimized
conformation with GFN2-xTB (tblite gradients, SciPy L-BFGS in atomic units), then minimize that
xTB minimum with each force field (OpenMM), as OpenFF's geometry benchmarks do; report the
heavy-atom RMSD between the MM and xTB minima after optimal superposition, and the xTB energy
of each MM minimum above the xTB minimum (kcal/mol). Sage and GAFF get the
dataset's AM1-BCC labels.

    .venv/bin/python benchmarks/geometry.py [--n 20] [--out benchmarks/results/geometry]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def kabsch_rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """RMSD (same units as input) between (N, 3) point sets after optimal superposition."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1.0, 1.0, d]) @ vt
    return float(np.sqrt(((a @ rotation - b) ** 2).sum(1).mean()))


def xtb_minimize(engine, numbers: np.ndarray, xyz_nm: np.ndarray, charge: int) -> tuple[np.ndarray, float]:  # type: ignore[no-untyped-def]
    """GFN2-xTB minimum (nm) and its energy (kJ/mol), L-BFGS in atomic units (bohr, hartree)."""
    from scipy.optimize import minimize

    from espaloma_like.units import (
        BOHR_TO_NM,
        HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM,
        HARTREE_TO_KJ_PER_MOL,
        NM_TO_BOHR,
    )

    def fun(flat_bohr: np.ndarray) -> tuple[float, np.ndarray]:
        xyz = flat_bohr.reshape(1, -1, 3) * BOHR_TO_NM
        result = engine.compute(numbers, xyz, total_charge=charge)
        if result.errors[0] is not None:
            raise RuntimeError(result.errors[0])
        gradient = -result.forces[0].ravel() / HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM
        return float(result.energies[0]) / HARTREE_TO_KJ_PER_MOL, gradient

    done = minimize(fun, xyz_nm.ravel() * NM_TO_BOHR, jac=True, method="L-BFGS-B",
                    options={"maxiter": 1000, "gtol": 1e-4})
    return done.x.reshape(-1, 3) * BOHR_TO_NM, float(done.fun) * HARTREE_TO_KJ_PER_MOL


def mm_minimize(parameters, xyz_nm: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    import openmm
    from openmm import unit

    from espaloma_like.export.openmm_system import to_openmm_system

    context = openmm.Context(to_openmm_system(parameters), openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(xyz_nm)
    openmm.LocalEnergyMinimizer.minimize(context, 0.1, 0)
    state = context.getState(getPositions=True)
    return np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))


def _metric_keys(rows: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return [k for k in (rows[0] if rows else {}) if k.endswith(("_A", "_kcal"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/espaloma_like_gfn2xtb.h5")
    parser.add_argument("--model", default="default")
    parser.add_argument("--n", type=int, default=20, help="held-out molecules (file order)")
    parser.add_argument("--out", default="benchmarks/results/geometry")
    args = parser.parse_args()

    from espaloma_like.api import load_model, parametrize
    from espaloma_like.baselines.gaff_amber import gaff_parameters
    from espaloma_like.baselines.sage_labels import sage_parameters
    from espaloma_like.data.engines import XTBEngine
    from espaloma_like.data.records import record_graph
    from espaloma_like.data.spice import read_spice_hdf5
    from espaloma_like.units import KCAL_TO_KJ, NM_TO_ANGSTROM

    model = load_model(args.model)
    engine = XTBEngine(n_threads=1)
    rows = []
    started = time.perf_counter()
    for record in read_spice_hdf5(args.data):
        if record.metadata.get("split") != "held_out" or len(rows) >= args.n:
            continue
        kinds = json.loads(record.metadata.get("kinds", "[]"))
        start_index = kinds.index("minimized") if "minimized" in kinds else 0
        start = record.conformations[start_index]
        try:
            graph = record_graph(record)
            qm_xyz, qm_energy = xtb_minimize(engine, record.atomic_numbers, start, record.total_charge)
        except Exception as err:  # reported, not hidden
            rows.append({"name": record.name, "error": f"{type(err).__name__}: {err}"})
            continue
        heavy = record.atomic_numbers > 1
        charges = np.array(record.charges)
        row = {"name": record.name, "smiles": record.metadata.get("smiles", ""),
               "heavy_atoms": int(heavy.sum())}
        for method, parameters in (
            ("model", parametrize(graph, model).parameters),
            ("sage", sage_parameters(graph, charges)),
            ("gaff", gaff_parameters(graph, charges)),
        ):
            # from the QM minimum: how far does each force field move away from it?
            mm_xyz = mm_minimize(parameters, qm_xyz)
            energy = engine.compute(record.atomic_numbers, mm_xyz[None],
                                    total_charge=record.total_charge).energies[0]
            row[f"{method}_rmsd_A"] = kabsch_rmsd(mm_xyz[heavy], qm_xyz[heavy]) * NM_TO_ANGSTROM
            row[f"{method}_dE_kcal"] = float((energy - qm_energy) / KCAL_TO_KJ)
        rows.append(row)
    ok = [r for r in rows if "error" not in r]
    summary = {
        "command": "python benchmarks/geometry.py", "date": time.strftime("%Y-%m-%d"),
        "n_molecules": len(ok), "failures": [r for r in rows if "error" in r],
        "seconds": time.perf_counter() - started,
        "median": {k: float(np.median([r[k] for r in ok])) for k in _metric_keys(ok)},
        "mean": {k: float(np.mean([r[k] for r in ok])) for k in _metric_keys(ok)},
        "molecules": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    med, mean = summary["median"], summary["mean"]
    lines = ["# MM-minimized vs GFN2-xTB-minimized geometries (held-out molecules)", "",
             f"`{summary['command']}`, {summary['date']}, {len(ok)} molecules "
             f"({len(summary['failures'])} failed in xTB), the same starting "
             "geometry (the xTB minimum) for every method.", "",
             "| method | heavy-atom RMSD (A), median / mean "
             "| xTB energy above the xTB minimum (kcal/mol), median / mean |",
             "|---|---|---|"]
    for method in ("model", "sage", "gaff"):
        lines.append(f"| {method} | {med[method + '_rmsd_A']:.3f} / {mean[method + '_rmsd_A']:.3f} | "
                     f"{med[method + '_dE_kcal']:.2f} / {mean[method + '_dE_kcal']:.2f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
