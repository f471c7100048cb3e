"""``espaloma-like benchmark design-space``: what each functional-form option buys, and costs.

Every option is a model trained with the same recipe and data (``training/train_form_*.yaml``);
each is measured on the same inputs in one run:

* **DFT conformers**: mean |ddE|, median RMSD and TFD after minimizing the first validation
  molecules of the OpenFF Industry Benchmark split (:mod:`espaloma_like.benchmark.conformers`),
  overall and per charge class, beside OpenFF's published Sage 2.0.0 / GAFF-2.11 numbers on the
  same records;
* **DFT torsion profiles**: the package's own B3LYP-D3BJ/DZVP scans
  (:mod:`espaloma_like.benchmark.torsions`), per charge class, with Sage 2.2.1, GAFF-2.11 and
  GFN2-xTB (single points on the same geometries) beside them;
* **energy and force RMSE** against the external DFT sets found in ``../shared`` (model only:
  the classical baselines need AM1-BCC on every record, which the accuracy benchmark does);
* **MD cost**: ns/day of paracetamol with each option's System against GAFF's in paired rounds
  on OpenMM's CPU platform (vacuum, and TIP3P/PME where the platform allows), and the raw cost on
  the Reference platform; ANI-2x's architecture and GFN2-xTB on the same molecule.

The figure puts accuracy against cost relative to GAFF, with the Pareto front.
"""

from __future__ import annotations

import datetime
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from espaloma_like._io import atomic_write_text


@dataclass(frozen=True)
class FormOption:
    """One functional-form option: a model and what it adds.

    Attributes
    ----------
    name : str
        Short label (``classical``, ``urey_bradley``, ``morse`` ...).
    model : str
        Shipped model name or checkpoint path.
    description : str
        The terms it has, in words.
    """

    name: str
    model: str
    description: str = ""


#: The options of issue 13, each the shipped ``form-*`` model of its training recipe.
DEFAULT_OPTIONS: tuple[FormOption, ...] = (
    FormOption("portable", "portable",
               "the portable model (classical + Urey-Bradley; the default until the "
               "intramolecular forms): the start of every option's run"),
    FormOption("classical", "form-classical",
               "harmonic bonds and angles, cosine torsions, trefoil impropers, charges, Sage LJ"),
    FormOption("urey_bradley", "form-urey-bradley", "classical + Urey-Bradley springs"),
    FormOption("class2", "form-class2", "+ class-II bond-bond / bond-angle cross terms"),
    FormOption("morse", "form-morse", "+ Morse bonds (anharmonic)"),
    FormOption("scaled_14", "form-scaled-14", "+ learned 1-4 Coulomb / LJ scales per pair"),
    FormOption("torsion_coupling", "form-torsion-coupling",
               "+ torsion-torsion coupling of consecutive torsions"),
    FormOption("learned_lj", "form-learned-lj", "+ learned LJ sigma / epsilon per atom (Sage prior)"),
    FormOption("charged", "form-charged",
               "the portable model's terms, charged molecules drawn 4x as often in training"),
)


@dataclass(frozen=True)
class DesignSpaceConfig:
    """Inputs and sizes of one run.

    Attributes
    ----------
    out : Path
        Output folder: ``design_space.{json,md,png}`` and the ``conformers/`` and ``torsions/``
        sub-benchmarks (resumable: the conformer results are cached there).
    options : tuple of FormOption
    industry : Path
        OpenFF Industry Benchmark folder (skipped with a reason if absent).
    scans : Path
        HDF5 of the package's DFT torsion scans.
    shared : Path
        Folder of external QM sets (``spice_sample``, ``grappa_tripeptides``, ...).
    max_molecules : int
        First validation molecules of the industry split.
    workers : int
        Processes of the conformer benchmark.
    quick : bool
        CI size: 3 molecules, 1 scan, tiny MD rounds; numbers not for citing.
    platforms : tuple of str
        OpenMM platforms of the MD section.
    """

    out: Path
    options: tuple[FormOption, ...] = DEFAULT_OPTIONS
    industry: Path = Path("../shared/qm-reference/openff_industry_b3lyp")
    scans: Path = Path("data/espaloma_like_b3lyp_scans.h5")
    shared: Path = Path("../shared/qm-reference")
    max_molecules: int = 100
    workers: int = 2
    quick: bool = False
    progress: bool = True
    platforms: tuple[str, ...] = ("CPU", "Reference")
    md_rounds: dict[str, int] = field(default_factory=lambda: {"vacuum": 15, "tip3p_pme": 7,
                                                               "Reference": 7})


def _log(progress: bool, message: str) -> None:
    if progress:
        import sys

        print(f"[design-space] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------- accuracy


def conformer_section(config: DesignSpaceConfig) -> dict[str, Any]:
    """ddE / RMSD / TFD per option, overall and per charge class, with the published baselines."""
    from espaloma_like.benchmark.conformers import (
        ConformerBenchmarkConfig,
        method_specs,
        run_conformer_benchmark,
    )

    if not config.industry.is_dir():
        return {"skipped": f"no industry benchmark data at {config.industry}"}
    document = run_conformer_benchmark(ConformerBenchmarkConfig(
        out=config.out / "conformers", industry=config.industry, split="validation",
        models=tuple(o.model for o in config.options), baselines=(), baseline_molecules=0,
        max_molecules=3 if config.quick else config.max_molecules, workers=config.workers,
        quick=config.quick, progress=config.progress))
    block = document["comparisons"]["published"]
    specs = method_specs([o.model for o in config.options], ())
    labels = {spec.label: o.name for spec, o in zip(specs, config.options, strict=True)}
    labels.update({"openff-2.0.0 (published)": "sage_2.0.0", "gaff-2.11 (published)": "gaff_2.11"})

    def metrics(summary: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for label, name in labels.items():
            entry = summary["methods"].get(label)
            if entry is not None:
                out[name] = {"mean_abs_ddE": entry["mean_abs_ddE"], "median_rmsd": entry["median_rmsd"],
                             "median_tfd": entry["median_tfd"]}
        return out

    return {
        "split": "validation (scaffold split; never the test part)",
        "n_molecules": block["overall"]["n_molecules"], "n_records": block["overall"]["n_records"],
        "units": {"mean_abs_ddE": "kcal/mol", "median_rmsd": "Å", "median_tfd": "1"},
        "overall": metrics(block["overall"]),
        "by_charge": {c: {"n_records": b["n_records"], **metrics(b)}
                      for c, b in block["by_charge"].items()},
    }


def xtb_scan_rmse(scans: Path) -> dict[str, Any]:
    """GFN2-xTB single points on the DFT scans' geometries: profile RMSE against DFT (kcal/mol)."""
    from espaloma_like.benchmark.torsions import charge_class
    from espaloma_like.data.engines import XTBEngine
    from espaloma_like.data.spice import read_spice_hdf5
    from espaloma_like.units import KJ_TO_KCAL

    engine = XTBEngine(n_threads=1)
    rows = []
    for record in read_spice_hdf5(scans):
        if record.metadata.get("split") != "held_out":
            continue
        kinds = np.array(json.loads(record.metadata.get("kinds", "[]")))
        if len(kinds) != record.n_conformations:
            continue
        for scan in sorted({k.rsplit(":", 1)[0] for k in kinds if k.startswith("scan:")}):
            mask = np.array([k.rsplit(":", 1)[0] == scan for k in kinds])
            out = engine.compute(record.atomic_numbers, record.conformations[mask],
                                 total_charge=record.total_charge)
            if out.n_failed:
                continue
            qm = record.energies[mask] * KJ_TO_KCAL
            xtb = np.asarray(out.energies) * KJ_TO_KCAL
            error = (xtb - xtb.mean()) - (qm - qm.mean())
            smiles = record.metadata.get("smiles", "")
            rows.append({"smiles": smiles, "torsion": scan.split(":", 1)[1],
                         "charge_class": charge_class(smiles),
                         "rmse": float(np.sqrt(np.mean(error**2)))})
    return {"scans": rows, **_class_means(rows, lambda r: r["rmse"])}


def _class_means(rows: Sequence[dict[str, Any]], value: Any) -> dict[str, float]:
    from espaloma_like.benchmark.torsions import CHARGE_CLASSES

    means = {"all": float(np.mean([value(r) for r in rows])) if rows else math.nan}
    for c in CHARGE_CLASSES:
        picked = [value(r) for r in rows if r["charge_class"] == c]
        means[c] = float(np.mean(picked)) if picked else math.nan
    return means


def torsion_section(config: DesignSpaceConfig) -> dict[str, Any]:
    """Mean torsion-profile RMSE per option, Sage, GAFF and GFN2-xTB, per charge class."""
    from espaloma_like.benchmark.torsions import run_torsion_benchmark

    if not config.scans.is_file():
        return {"skipped": f"no DFT torsion scans at {config.scans}"}
    benchmark = run_torsion_benchmark(config.scans, [o.model for o in config.options],
                                      out=config.out / "torsions", progress=config.progress,
                                      max_molecules=1 if config.quick else None)
    summary = benchmark.summary()["mean_profile_rmse"]
    names = {o.model: o.name for o in config.options} | {"sage": "sage_2.2.1", "gaff": "gaff_2.11"}
    result: dict[str, Any] = {"units": "kcal/mol, mean over scans of mean-aligned profile RMSE",
                              "n_scans": len(benchmark.scans),
                              "mean_rmse": {names[m]: v for m, v in summary.items()}}
    try:
        xtb = xtb_scan_rmse(config.scans)
        if config.quick:
            xtb = {"scans": xtb["scans"][:1], **_class_means(xtb["scans"][:1], lambda r: r["rmse"])}
        result["mean_rmse"]["gfn2_xtb"] = {k: v for k, v in xtb.items() if k != "scans"}
        result["gfn2_xtb_scans"] = xtb["scans"]
    except ImportError as err:
        result["gfn2_xtb"] = {"skipped": str(err)}
    return result


def dft_force_errors(model: str, records: Sequence[Any]) -> dict[str, Any]:
    """Energy (per molecule, mean-aligned) and force RMSE of ``model`` against QM records.

    Returns
    -------
    dict
        ``energy_rmse`` (kcal/mol), ``force_rmse`` (kcal/mol/Å), counts and skipped molecules.
    """
    import torch

    from espaloma_like.api import load_model, parametrize
    from espaloma_like.data.records import record_graph
    from espaloma_like.mm import energy_and_forces
    from espaloma_like.units import KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A, KJ_TO_KCAL

    network = load_model(model)
    energy_sq, force_sq, n_energy, n_force, skipped = 0.0, 0.0, 0, 0, []
    for record in records:
        try:
            molecule = parametrize(record_graph(record), model=network)
        except Exception as err:  # outside the domain, unparsable: counted, not fatal
            skipped.append({"name": record.name, "reason": f"{type(err).__name__}: {err}"})
            continue
        parameters = molecule.parameters.to(dtype=torch.float64)
        xyz = torch.as_tensor(record.conformations, dtype=torch.float64)
        energy, forces = energy_and_forces(parameters, xyz)
        e = energy.numpy() * KJ_TO_KCAL
        q = record.energies * KJ_TO_KCAL
        energy_sq += float((((e - e.mean()) - (q - q.mean())) ** 2).sum())
        n_energy += len(e)
        error = (forces.numpy() - record.forces) * KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A
        force_sq += float((error**2).sum())
        n_force += error.size
    return {"energy_rmse": math.sqrt(energy_sq / n_energy) if n_energy else math.nan,
            "force_rmse": math.sqrt(force_sq / n_force) if n_force else math.nan,
            "n_conformations": n_energy, "n_molecules": len(records) - len(skipped),
            "skipped": skipped}


def force_section(config: DesignSpaceConfig) -> dict[str, Any]:
    """Energy and force RMSE of every option on each external DFT set under ``shared``."""
    from espaloma_like.benchmark.accuracy import _external_sets

    if not config.shared.is_dir():
        return {"skipped": f"no external reference data at {config.shared}"}
    sets = _external_sets(config.shared)
    out: dict[str, Any] = {"units": {"energy_rmse": "kcal/mol (mean-aligned per molecule)",
                                     "force_rmse": "kcal/mol/Å"}, "sets": {}}
    for name, records in sets.items():
        if config.quick:
            records = sorted(records, key=lambda r: r.n_atoms)[:1]
        out["sets"][name] = {"level_of_theory": records[0].level_of_theory,
                             "options": {o.name: dft_force_errors(o.model, records)
                                         for o in config.options}}
        _log(config.progress, f"forces {name}: " + ", ".join(
            f"{k} {v['force_rmse']:.2f}" for k, v in out["sets"][name]["options"].items()))
    return out


# --------------------------------------------------------------------------------- cost


def _solvated_system(molecule: Any, topology: Any, positions: Any) -> Any:
    """A TIP3P/PME System of ``topology`` (ligand first) with ``molecule``'s parameters.

    The ligand goes through the template generator's template: its ffxml, and for term kinds
    with no ffxml form their forces added afterwards with the ligand's atom indices (the
    ligand comes first in ``topology``), exactly as in its own System.
    """
    import io

    import openmm
    from openmm import app, unit

    from espaloma_like.export.template_generator import molecule_template

    template = molecule_template(molecule)
    forcefield = app.ForceField("amber14/tip3p.xml", io.StringIO(template.ffxml))
    system = forcefield.createSystem(topology, nonbondedMethod=app.PME,
                                     nonbondedCutoff=0.9 * unit.nanometer, constraints=app.HBonds)
    for _, serialized in template.system_forces:
        system.addForce(openmm.XmlSerializer.deserialize(serialized))
    return system


def md_cost_section(config: DesignSpaceConfig) -> dict[str, Any]:
    """Paired MD rounds of every option, Sage 2.2.1 and GAFF-2.11 on paracetamol; ML/QM costs."""
    import io

    import openmm
    from openmm import app, unit

    from espaloma_like.api import load_model, parametrize
    from espaloma_like.benchmark.speed import (
        MD_MOLECULE,
        MOLECULES,
        SpeedSettings,
        ani2x_benchmark,
        xtb_benchmark,
    )
    from espaloma_like.methods import get_method
    from espaloma_like.molecule import generate_conformers

    rounds = {k: (2 if config.quick else v) for k, v in config.md_rounds.items()}
    smiles = MOLECULES[MD_MOLECULE]
    molecules = {o.name: parametrize(smiles, model=load_model(o.model)) for o in config.options}
    first = next(iter(molecules.values()))
    graph = first.molecule
    for name in ("sage", "gaff"):  # the first option's charges: only the bonded terms differ
        molecules[name] = get_method(name).parametrize(graph, charges=first.charges)
    systems = {name: m.to_openmm_system() for name, m in molecules.items()}
    minimizer = openmm.Context(systems["gaff"], openmm.VerletIntegrator(0.001),
                               openmm.Platform.getPlatformByName("Reference"))
    minimizer.setPositions(generate_conformers(graph, 1, seed=0)[0] * unit.nanometer)
    openmm.LocalEnergyMinimizer.minimize(minimizer, 1.0, 500)
    positions = np.asarray(minimizer.getState(getPositions=True).getPositions(asNumpy=True)
                           .value_in_unit(unit.nanometer))
    result: dict[str, Any] = {"molecule": MD_MOLECULE, "smiles": smiles, "n_atoms": graph.n_atoms,
                              "runs": {}}

    for platform in config.platforms:
        key = "Reference" if platform == "Reference" else "vacuum"
        run = _measure(systems, platform, 1.0, positions, rounds[key], 0.3)
        result["runs"][f"{platform}/vacuum"] = run
        _log(config.progress, f"MD {platform} vacuum done")
        if platform == "CPU":
            # GAFF's ffxml places the water (addSolvent needs the solute's radii); the same box
            # and minimized positions serve every method
            gaff_ff = app.ForceField("amber14/tip3p.xml",
                                     io.StringIO(molecules["gaff"].to_forcefield_xml()))
            modeller = app.Modeller(first.to_openmm_topology(), positions * unit.nanometer)
            modeller.addSolvent(gaff_ff, padding=1.0 * unit.nanometer, model="tip3p")
            solvated = {name: _solvated_system(m, modeller.topology, modeller.positions)
                        for name, m in molecules.items()}
            context = openmm.Context(solvated["gaff"], openmm.VerletIntegrator(0.001),
                                     openmm.Platform.getPlatformByName("CPU"))
            context.setPositions(modeller.positions)
            openmm.LocalEnergyMinimizer.minimize(context, 10.0, 20 if config.quick else 200)
            start = np.asarray(context.getState(getPositions=True).getPositions(asNumpy=True)
                               .value_in_unit(unit.nanometer))
            run = _measure(solvated, platform, 2.0, start, rounds["tip3p_pme"], 1.0)
            result["runs"][f"{platform}/tip3p_pme"] = run
            _log(config.progress, "MD CPU TIP3P/PME done")
    settings = SpeedSettings.quick() if config.quick else SpeedSettings()
    ani = ani2x_benchmark(graph, positions, settings)
    xtb = xtb_benchmark(graph, positions, settings)
    # their step time only: the report divides it by GAFF's step on the platform it plots
    result["ml_and_qm"] = {}
    for name, entry in (("ani2x", ani["openmm_torch"] if ani.get("openmm_torch", {})
                         .get("available") else ani), ("gfn2_xtb", xtb)):
        result["ml_and_qm"][name] = (
            {"ms_per_step": entry["ms_per_step"]} if entry.get("available")
            else {"available": False, "reason": entry.get("reason", "not measured")})
    result["term_counts"] = {name: _force_counts(s) for name, s in systems.items()}
    return result


def _measure(systems: dict[str, Any], platform: str, timestep_fs: float, positions_nm: np.ndarray,
             rounds: int, chunk_s: float) -> dict[str, Any]:
    """Paired rounds of ``systems`` (see :func:`espaloma_like.benchmark.speed._paired_rounds`)
    with each method's per-round ns/day over GAFF's, or ``{"skipped": ...}``."""
    from espaloma_like.benchmark.speed import _context, _paired_rounds

    try:
        contexts = {name: _context(system, platform, timestep_fs, positions_nm)
                    for name, system in systems.items()}
        run = _paired_rounds(contexts, timestep_fs, rounds, chunk_s, 5)
    except Exception as err:  # a platform that fails to run is a result, not a crash
        return {"skipped": True, "reason": f"{type(err).__name__}: {err}"}
    ns = run["ns_per_day"]
    run["n_atoms"] = next(iter(systems.values())).getNumParticles()
    run["ns_per_day_over_gaff"] = {
        name: float(np.median([a / g for a, g in zip(values, ns["gaff"], strict=True)]))
        for name, values in ns.items()}
    return run


def _force_counts(system: Any) -> dict[str, int]:
    """Number of terms per OpenMM force class of ``system``."""
    counts: dict[str, int] = {}
    for force in system.getForces():
        name = type(force).__name__
        for getter in ("getNumBonds", "getNumAngles", "getNumTorsions", "getNumExceptions"):
            if hasattr(force, getter):
                counts[name] = counts.get(name, 0) + int(getattr(force, getter)())
                break
    return counts


# --------------------------------------------------------------------------------- the run


def run_design_space(config: DesignSpaceConfig) -> dict[str, Any]:
    """Measure every option; write ``design_space.json``, ``design_space.md`` and the figure."""
    from espaloma_like.benchmark.design_space_report import markdown, write_figure
    from espaloma_like.benchmark.provenance import cpu_model, git_state

    started = time.perf_counter()
    commit, dirty = git_state()
    config.out.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "benchmark": "design-space",
        "provenance": {"git_commit": commit, "git_dirty": dirty, "cpu": cpu_model(),
                       "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()
                     if k != "options"},
        "options": [asdict(o) for o in config.options],
    }
    for name, section in (("md_cost", md_cost_section), ("torsions", torsion_section),
                          ("forces", force_section), ("conformers", conformer_section)):
        _log(config.progress, f"section {name}")
        document[name] = section(config)
    document["wall_s"] = time.perf_counter() - started
    atomic_write_text(config.out / "design_space.json", json.dumps(document, indent=1) + "\n")
    figure = write_figure(document, config.out / "design_space.png")
    atomic_write_text(config.out / "design_space.md", markdown(document, figure))
    return document
