"""The design-space benchmark: Pareto front, the solvated System of a System-only form, the MD
cost section with real OpenMM runs, and the report built from its document."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import openmm_group_energies

from espaloma_like.api import parametrize
from espaloma_like.benchmark.design_space import (
    DesignSpaceConfig,
    FormOption,
    _solvated_system,
    md_cost_section,
)
from espaloma_like.benchmark.design_space_report import (
    accuracy_points,
    cost_over_gaff,
    markdown,
    pareto_front,
    write_figure,
)
from espaloma_like.nn.checkpoint import save_checkpoint
from espaloma_like.nn.model import ModelConfig, ParameterModel

PLAIN = ModelConfig(hidden=32, n_layers=2, readout_hidden=32)


@pytest.fixture(scope="module")
def scaled_14() -> ParameterModel:
    torch.manual_seed(3)
    model = ParameterModel(PLAIN.model_copy(update={"extra_terms": ("scaled_14",)})).eval()
    with torch.no_grad():  # scales away from Sage's, so the System carries the custom force
        model.scaled_14_readout.head.weight.normal_(0.0, 0.5)
        model.scaled_14_readout.head.bias.normal_(0.0, 0.5)
    return model


def test_pareto_front_keeps_the_non_dominated_points_by_cost() -> None:
    points = {"cheap_bad": (0.5, 4.0), "a": (1.0, 3.0), "b": (2.0, 2.0), "dominated": (3.0, 2.5),
              "best": (9.0, 1.0), "same_cost_worse": (1.0, 3.5)}
    assert pareto_front(points) == ["cheap_bad", "a", "b", "best"]
    assert pareto_front({}) == []


def test_solvated_system_keeps_the_forms_system_only_terms(scaled_14: ParameterModel) -> None:
    """A form with no ffxml form still gets its exact ligand terms in the solvated System."""
    import dataclasses
    import io

    from openmm import app, unit

    from espaloma_like.molecule import generate_conformers

    molecule = parametrize("CC(=O)Nc1ccc(O)cc1", scaled_14.double())
    vacuum = molecule.to_openmm_system()
    assert "CustomBondForce" in {type(f).__name__ for f in vacuum.getForces()}
    xyz = generate_conformers(molecule.molecule, 1, seed=0)[0]
    # water placed with the ligand's core ffxml (the 1-4 corrections have no ffxml form)
    core = dataclasses.replace(molecule, parameters=dataclasses.replace(
        molecule.parameters, extra_terms={}))
    forcefield = app.ForceField("amber14/tip3p.xml", io.StringIO(core.to_forcefield_xml()))
    modeller = app.Modeller(molecule.to_openmm_topology(), xyz * unit.nanometer)
    modeller.addSolvent(forcefield, padding=1.0 * unit.nanometer, model="tip3p")
    solvated = _solvated_system(molecule, modeller.topology, modeller.positions)
    assert solvated.getNumParticles() > vacuum.getNumParticles()
    positions = np.asarray(modeller.positions.value_in_unit(unit.nanometer))
    # the 1-4 corrections (ligand atoms only) give the same energy in both Systems
    for system in (vacuum, solvated):
        for force in system.getForces():
            force.setForceGroup(5 if type(force).__name__ == "CustomBondForce" else 0)
    n = molecule.molecule.n_atoms
    in_water = openmm_group_energies(solvated, positions)[5]
    alone = openmm_group_energies(vacuum, positions[:n])[5]
    assert abs(in_water - alone) < 1e-9 and abs(alone) > 1e-3
    extra = [f for f in solvated.getForces() if type(f).__name__ == "CustomBondForce"]
    assert len(extra) == 1 and extra[0].getNumBonds() > 0


def test_md_cost_section_runs_every_form_against_gaff(tmp_path: Path,
                                                      scaled_14: ParameterModel) -> None:
    torch.manual_seed(1)
    plain_path, scaled_path = tmp_path / "plain.pt", tmp_path / "scaled.pt"
    save_checkpoint(ParameterModel(PLAIN).eval(), plain_path, metadata={})
    save_checkpoint(scaled_14.float(), scaled_path, metadata={})
    config = DesignSpaceConfig(
        out=tmp_path, options=(FormOption("plain", str(plain_path), "core terms"),
                               FormOption("scaled", str(scaled_path), "+ 1-4 scales")),
        quick=True, progress=False, platforms=("CPU",))
    section = md_cost_section(config)
    vacuum, pme = section["runs"]["CPU/vacuum"], section["runs"]["CPU/tip3p_pme"]
    for run in (vacuum, pme):
        assert not run.get("skipped"), run
        assert set(run["ns_per_day_over_gaff"]) == {"plain", "scaled", "sage", "gaff"}
        assert run["ns_per_day_over_gaff"]["gaff"] == 1.0
        assert all(v > 0 for v in run["median_ns_per_day"].values())
    assert pme["n_atoms"] > vacuum["n_atoms"] == 20
    assert section["term_counts"]["scaled"]["CustomBondForce"] > 0
    assert "CustomBondForce" not in section["term_counts"]["plain"]

    document = {
        "options": [{"name": "plain", "model": str(plain_path), "description": "core terms"},
                    {"name": "scaled", "model": str(scaled_path), "description": "+ 1-4 scales"}],
        "md_cost": section,
        "torsions": {"n_scans": 2, "mean_rmse": {
            "plain": {"all": 0.6, "anion": 0.7, "cation": 0.5, "neutral": math.nan},
            "sage_2.2.1": {"all": 1.2, "anion": 0.7, "cation": 1.7, "neutral": math.nan}}},
        "provenance": {"git_commit": "x", "date_utc": "today", "cpu": "cpu"}, "wall_s": 1.0,
    }
    cost = cost_over_gaff(document, "CPU")
    assert cost["gaff"] == 1.0 and cost["plain"] > 0
    assert cost_over_gaff(document) == {}  # no Reference run: the figure falls back to CPU
    assert accuracy_points(document, "torsions", "all") == {"plain": 0.6, "sage": 1.2}
    assert accuracy_points(document, "torsions", "neutral") == {}
    figure = write_figure(document, tmp_path / "figure.png")
    assert figure == "figure.png" and (tmp_path / "figure.png").stat().st_size > 1000
    text = markdown(document, figure)
    assert "| plain |" in text and "| scaled |" in text and "![design space](figure.png)" in text
    assert "CPU platform" in text
