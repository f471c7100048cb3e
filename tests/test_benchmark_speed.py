"""The speed benchmark at its quick size: output files, JSON structure, sane numbers.

One run (module fixture, about 20 s); the numbers are only checked for sanity (finite, positive,
ordered quartiles), never for speed, since CI machines vary.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import types
from pathlib import Path
from typing import Any

import pytest

METHODS = ("model", "gaff", "sage")
SUMMARY_METHODS = (*METHODS, "ani2x", "gfn2_xtb")


def _positive(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], int, int]:
    import torch

    from espaloma_like.benchmark.speed import run_speed_benchmark

    out = tmp_path_factory.mktemp("speed")
    threads = torch.get_num_threads()
    result = run_speed_benchmark(out, quick=True, progress=False)
    return out, result, threads, torch.get_num_threads()


@pytest.mark.slow
def test_files_written(run: tuple[Path, dict[str, Any], int, int]) -> None:
    out, result, _, _ = run
    for name in ("speed.json", "speed.md"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert json.loads((out / "speed.json").read_text()) == result
    markdown = (out / "speed.md").read_text()
    assert "`espaloma-like benchmark speed --quick`" in markdown
    assert "QUICK RUN" in markdown
    for heading in ("## Parametrization", "## MD throughput", "## Cost per MD step"):
        assert heading in markdown
    assert "AM1-BCC not measured" in markdown  # the quick run says it skipped AM1-BCC


@pytest.mark.slow
def test_provenance(run: tuple[Path, dict[str, Any], int, int]) -> None:
    _, result, threads_before, threads_after = run
    assert result["schema_version"] == 1 and result["quick"] is True
    assert result["command"] == "espaloma-like benchmark speed --quick"
    machine = result["machine"]
    assert machine["cpu_model"] and machine["logical_cpus"] >= 1
    for package in ("torch", "openmm", "rdkit", "espaloma_like"):
        assert machine["versions"][package]
    assert len(machine["loadavg_start"]) in (0, 3)
    assert result["settings"]["platforms"] == ["CPU"]
    assert _positive(result["wall_s"])
    assert threads_after == threads_before  # torch thread changes are undone


@pytest.mark.slow
def test_parametrization(run: tuple[Path, dict[str, Any], int, int]) -> None:
    p = run[1]["parametrization"]
    assert list(p["molecules"]) == ["paracetamol"]
    entry = p["molecules"]["paracetamol"]
    assert entry["heavy_atoms"] == 11 and entry["n_atoms"] == 20
    for method in METHODS:
        assert len(entry["ms"][method]) == p["repeats"] == 2
        assert all(_positive(t) for t in entry["ms"][method])
        assert _positive(entry["median_ms"][method])
    for baseline in ("gaff", "sage"):
        assert _positive(entry["ratio_over_model"][baseline])
    assert p["am1bcc"]["measured"] is False and p["am1bcc"]["reason"]
    assert all(_positive(t) for t in p["cold"].values())


@pytest.mark.slow
def test_md(run: tuple[Path, dict[str, Any], int, int]) -> None:
    md = run[1]["md"]
    assert md["molecule"] == "paracetamol" and md["n_atoms"] == 20
    for method in METHODS:
        assert md["torsion_terms"][method] > 0
        assert md["term_counts"][method]["bonds"] == 20
    # the default's LJ and Coulomb corrections within the molecule: pairs, not bonds
    assert md["term_counts"]["model"]["pair_corrections"] > 0
    assert md["term_counts"]["sage"]["pair_corrections"] == md["term_counts"]["gaff"][
        "pair_corrections"] == 0
    assert list(md["results"]) == ["CPU"]
    for setup, timestep in (("vacuum", 1.0), ("tip3p_pme", 2.0)):
        r = md["results"]["CPU"][setup]
        assert not r.get("skipped"), r.get("reason")
        assert r["timestep_fs"] == timestep and r["steps_per_chunk"] >= 1
        for method in METHODS:
            assert len(r["ns_per_day"][method]) == r["rounds"]
            assert all(_positive(v) for v in r["ns_per_day"][method])
            assert _positive(r["median_ns_per_day"][method])
            assert _positive(r["median_ms_per_step"][method])
            assert r["torsion_terms"][method] > 0
        for baseline in ("gaff", "sage"):
            ratio = r["paired_ratio_model_over"][baseline]
            assert all(_positive(v) for v in ratio["values"])
            assert ratio["p25"] <= ratio["median"] <= ratio["p75"]
            low, high = ratio["median_ci95"]
            assert low <= ratio["median"] <= high
    assert md["results"]["CPU"]["tip3p_pme"]["n_atoms"] > 10 * md["n_atoms"]  # solvated


@pytest.mark.slow
def test_ml_potential_and_qm(run: tuple[Path, dict[str, Any], int, int]) -> None:
    result = run[1]
    ani = result["ml_potential"]["ani2x"]
    if importlib.util.find_spec("torchani") is None:
        assert ani["available"] is False and "torchani" in ani["reason"]
    else:
        assert ani["available"] is True, ani.get("reason")
        assert _positive(ani["ms_per_step"]) and _positive(ani["ns_per_day_1fs"])
        assert "random" in ani["weights"] and ani["n_weights"] > 1_000_000
        assert all(_positive(t) for ts in ani["ms_by_torch_threads"].values() for t in ts)
        omm = ani["openmm_torch"]
        if omm["available"]:
            assert _positive(omm["ms_per_step"])
        else:
            assert "openmmtorch" in omm["reason"] or "OpenMM-Torch" in omm["reason"]
    xtb = result["qm"]["gfn2_xtb"]
    if importlib.util.find_spec("tblite") is None:
        assert xtb["available"] is False and xtb["reason"]
    else:
        assert xtb["available"] is True and xtb["n_failed"] == 0
        assert _positive(xtb["ms_per_step"])
    assert result["qm"]["dft"]["measured"] is False and result["qm"]["dft"]["reason"]


@pytest.mark.slow
def test_summary(run: tuple[Path, dict[str, Any], int, int]) -> None:
    summary = run[1]["summary"]
    assert set(summary) == set(SUMMARY_METHODS)
    for method in SUMMARY_METHODS:
        entry = summary[method]
        assert entry["molecule"] == "paracetamol"
        if method in METHODS:
            assert _positive(entry["md_ms_per_step"])
        if entry["md_ms_per_step"] is None:
            assert entry["reason"]
        else:
            assert _positive(entry["md_ms_per_step"]) and _positive(entry["ns_per_day_1fs"])
            assert entry["measured_as"]
    vacuum = run[1]["md"]["results"]["CPU"]["vacuum"]
    assert summary["model"]["md_ms_per_step"] == vacuum["median_ms_per_step"]["model"]


def test_openmm_torch_path_with_a_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TorchForce branch (openmmtorch is rarely installable) runs with a stand-in force."""
    import openmm

    from espaloma_like.benchmark.speed import SpeedSettings, _openmm_torch
    from espaloma_like.molecule import from_smiles, generate_conformers

    def torch_force(module: Any) -> openmm.Force:
        force = openmm.CustomExternalForce("50*(x^2+y^2+z^2)")
        force.addParticle(0, [])
        return force

    monkeypatch.setitem(sys.modules, "openmmtorch", types.SimpleNamespace(TorchForce=torch_force))
    graph = from_smiles("CCO")
    result = _openmm_torch(None, graph, generate_conformers(graph, 1)[0], SpeedSettings.quick())
    assert result["available"] is True, result.get("reason")
    assert _positive(result["ms_per_step"]) and _positive(result["ns_per_day_1fs"])
