"""MD throughput of the model's OpenMM systems versus GAFF-2.11's for the same molecule.

Both systems are plain OpenMM forces (HarmonicBond, HarmonicAngle, PeriodicTorsion, Nonbonded),
so the model should run at MM speed: this measures the ratio in one run, alternating the two
systems to cancel drifts in machine load. Vacuum (the exported System, no cutoff, 1 fs, no
constraints) and solvated in TIP3P with PME (the ffxml route through ``openmm.app.ForceField``,
amber14 TIP3P, 0.9 nm cutoff, H-bond constraints, 2 fs).

    .venv/bin/python benchmarks/md_speed.py [--platform CPU] [--seconds 10]
"""

from __future__ import annotations

import argparse
import io
import json
import platform as platform_module
import time
from pathlib import Path

import numpy as np


def ns_per_day(simulation, steps: int, timestep_fs: float) -> float:  # type: ignore[no-untyped-def]
    simulation.step(10)  # warm-up
    start = time.perf_counter()
    simulation.step(steps)
    simulation.context.getState(getEnergy=True)  # wait for the platform
    elapsed = time.perf_counter() - start
    return steps * timestep_fs * 1e-6 / elapsed * 86400.0


def vacuum_simulation(molecule, platform_name: str):  # type: ignore[no-untyped-def]
    import openmm
    from openmm import app, unit

    from espaloma_like.molecule import generate_conformers

    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond,
                                                 1 * unit.femtoseconds)
    sim = app.Simulation(molecule.to_openmm_topology(), molecule.to_openmm_system(), integrator,
                         openmm.Platform.getPlatformByName(platform_name))
    sim.context.setPositions(generate_conformers(molecule.molecule, 1, seed=0)[0])
    sim.minimizeEnergy()
    return sim


def solvated_simulation(molecule, platform_name: str, positions_nm: np.ndarray):  # type: ignore[no-untyped-def]
    import openmm
    from openmm import app, unit

    forcefield = app.ForceField("amber14/tip3p.xml", io.StringIO(molecule.to_forcefield_xml()))
    modeller = app.Modeller(molecule.to_openmm_topology(), positions_nm * unit.nanometer)
    modeller.addSolvent(forcefield, padding=1.0 * unit.nanometer, model="tip3p")
    system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME,
                                     nonbondedCutoff=0.9 * unit.nanometer, constraints=app.HBonds)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond,
                                                 2 * unit.femtoseconds)
    sim = app.Simulation(modeller.topology, system, integrator,
                         openmm.Platform.getPlatformByName(platform_name))
    sim.context.setPositions(modeller.positions)
    sim.minimizeEnergy(maxIterations=200)
    return sim, modeller.topology.getNumAtoms()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smiles", default="CC(=O)Nc1ccc(O)cc1")
    parser.add_argument("--platform", default="CPU")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per system")
    parser.add_argument("--vacuum-steps", type=int, default=20000)
    parser.add_argument("--solvated-steps", type=int, default=500)
    parser.add_argument("--out", default="benchmarks/results/md_speed")
    args = parser.parse_args()

    import espaloma_like
    from espaloma_like.baselines import gaff
    from espaloma_like.molecule import from_smiles, generate_conformers

    graph = from_smiles(args.smiles)
    model = espaloma_like.parametrize(graph)
    reference = gaff(graph, charges=model.charges)  # same charges: only the bonded terms differ
    results: dict[str, dict[str, list[float]]] = {}
    positions = generate_conformers(graph, 1, seed=0)[0]
    setups = {
        "vacuum": (lambda m: vacuum_simulation(m, args.platform), args.vacuum_steps, 1.0),
        "tip3p_pme": (lambda m: solvated_simulation(m, args.platform, positions)[0],
                      args.solvated_steps, 2.0),
    }
    n_torsions = {}
    for label, molecule in (("model", model), ("gaff", reference)):
        system = molecule.to_openmm_system()
        n_torsions[label] = sum(f.getNumTorsions() for f in system.getForces()
                                if hasattr(f, "getNumTorsions"))
    for setup, (build, steps, timestep) in setups.items():
        sims = {"model": build(model), "gaff": build(reference)}
        results[setup] = {"model": [], "gaff": []}
        for _ in range(args.rounds):
            for label, sim in sims.items():
                results[setup][label].append(ns_per_day(sim, steps, timestep))
    summary = {
        "command": "python benchmarks/md_speed.py", "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": platform_module.platform(), "platform": args.platform, "smiles": args.smiles,
        "torsion_terms": n_torsions,
        "ns_per_day": {s: {k: float(np.median(v)) for k, v in r.items()} for s, r in results.items()},
        "raw_ns_per_day": results,
    }
    summary["ratio_model_over_gaff"] = {
        s: v["model"] / v["gaff"] for s, v in summary["ns_per_day"].items()  # type: ignore[union-attr]
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = ["# MD throughput: model system vs GAFF-2.11 system", "",
             f"`{summary['command']}`, {summary['date']}, OpenMM platform {args.platform}, "
             f"{summary['machine']}; molecule `{args.smiles}`; medians of {args.rounds} alternating "
             f"rounds. Torsion terms: model {n_torsions['model']}, GAFF {n_torsions['gaff']}.", "",
             "| setup | model ns/day | GAFF ns/day | ratio |", "|---|---|---|---|"]
    for s, v in summary["ns_per_day"].items():  # type: ignore[union-attr]
        lines.append(f"| {s} | {v['model']:.0f} | {v['gaff']:.0f} | "
                     f"{summary['ratio_model_over_gaff'][s]:.3f} |")  # type: ignore[index]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
