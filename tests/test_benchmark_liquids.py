"""The neat-liquid density benchmark: box building, NPT run, resumable results and report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from espaloma_like.benchmark.liquids import (
    AVOGADRO,
    LIQUIDS,
    LiquidBenchmarkConfig,
    LiquidRunSettings,
    initial_box,
    run_liquid_benchmark,
    simulate_density,
)
from espaloma_like.molecule import from_smiles

# a box too small for Sage's 0.9 nm cutoff: the tests use a shorter one and a few ps
_TINY = LiquidRunSettings(n_molecules=64, equilibration_ps=0.4, production_ps=1.0, sample_ps=0.2,
                          cutoff_nm=0.7, switch_nm=0.6, threads=1)


def test_initial_box_has_the_requested_density_and_rigid_copies() -> None:
    graph = from_smiles("CCO")
    positions, edge = initial_box(graph, 27, density=0.6, seed=3)
    assert positions.shape == (27 * graph.n_atoms, 3)
    mass_g = 27 * graph.masses.sum() / AVOGADRO
    assert mass_g / (edge ** 3 * 1e-21) == pytest.approx(0.6)
    copies = positions.reshape(27, graph.n_atoms, 3)
    distances = np.linalg.norm(copies[:, :, None] - copies[:, None], axis=-1)
    np.testing.assert_allclose(distances, np.broadcast_to(distances[0], distances.shape),
                               atol=1e-9)
    assert positions.min() > -0.5 and positions.max() < edge + 0.5
    # a fixed seed gives the same box
    np.testing.assert_array_equal(initial_box(graph, 27, 0.6, seed=3)[0], positions)


def test_simulate_density_samples_a_liquid() -> None:
    from espaloma_like.api import parametrize

    methanol = parametrize(from_smiles("CO"))
    run = simulate_density(methanol, _TINY, start_density=0.63)
    assert run["n_atoms"] == 64 * 6
    assert len(run["densities"]) == 5
    assert all(0.3 < d < 1.5 for d in run["densities"])
    assert run["density"] == pytest.approx(np.mean(run["densities"]), abs=1e-5)
    assert run["density_sem"] >= 0.0 and run["ns_per_day"] > 0.0
    # 5 samples, 5 blocks: the drift is the last sample minus the first
    assert run["density_drift"] == pytest.approx(run["densities"][-1] - run["densities"][0],
                                                 abs=1e-4)


def test_benchmark_resumes_and_reports(tmp_path: Path) -> None:
    config = LiquidBenchmarkConfig(out=tmp_path, models=("default",), baselines=(),
                                   liquids=LIQUIDS[:1], settings=_TINY)
    first = run_liquid_benchmark(config, progress=False)
    lines = (tmp_path / "liquids_results.jsonl").read_text().splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert row["method"] == "model" and row["identity"].startswith("sha256:")
    with (tmp_path / "liquids_results.jsonl").open("a") as handle:
        handle.write(lines[0][: len(lines[0]) // 2])  # a line cut short by a kill
    second = run_liquid_benchmark(config, progress=False)  # nothing left to run
    assert (tmp_path / "liquids_results.jsonl").read_text().splitlines()[:1] == lines
    assert first == second
    report = (tmp_path / "liquids.md").read_text()
    error = 100.0 * (row["density"] - LIQUIDS[0].density) / LIQUIDS[0].density
    assert f"| methanol | {LIQUIDS[0].density:.4f} | {row['density']:.4f}" in report
    assert f"({error:+.1f} %)" in report
