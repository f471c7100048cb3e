"""Evaluation against QM data: report contents, independent recomputation, the CLI, MD stability.

The data are real: a tiny SPICE-format file built by :func:`espaloma_like.data.build.build_dataset`
(GFN2-xTB labels, AM1-BCC charges) for four small molecules, all in the held-out split.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from espaloma_like.training.evaluate import EvaluationReport, evaluate, md_stability
from espaloma_like.units import KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A, KJ_TO_KCAL

SMILES = ["CCO", "CC(=O)[O-]", "c1ccccc1O", "CCl"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from espaloma_like.data.build import BuildConfig, SourcesConfig, SplitConfig, build_dataset
    from espaloma_like.data.sampling import SamplingConfig

    out = tmp_path_factory.mktemp("evaluate_data") / "tiny.h5"
    config = BuildConfig(
        output=str(out),
        sources=SourcesConfig(builtin=False, smiles=tuple(SMILES), charged_variants=False),
        sampling=SamplingConfig(n_etkdg=2, n_md_per_conformer=1, md_interval_steps=50,
                                torsion_scan=False),
        scan_every=0, am1bcc=True, split=SplitConfig(held_out_fraction=0.99), workers=1,
    )
    build_dataset(config, progress=False)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from espaloma_like.nn.checkpoint import save_checkpoint
    from espaloma_like.nn.model import ModelConfig, ParameterModel

    torch.manual_seed(0)
    model = ParameterModel(ModelConfig(hidden=16, n_layers=2, readout_hidden=16))
    return save_checkpoint(model, tmp_path_factory.mktemp("evaluate_model") / "tiny.pt",
                           {"name": "tiny"})


@pytest.fixture(scope="module")
def report(dataset: Path, checkpoint: Path) -> EvaluationReport:
    return evaluate(checkpoint, [dataset], split="held_out", num_threads=1)


def _records(path: Path) -> list[Any]:
    from espaloma_like.data.spice import read_spice_hdf5

    return list(read_spice_hdf5(path))


def test_dataset_is_held_out(dataset: Path) -> None:
    records = _records(dataset)
    assert len(records) == len(SMILES)
    assert all(r.metadata["split"] == "held_out" and r.charges is not None for r in records)


def test_report_has_every_method_with_finite_metrics(report: EvaluationReport) -> None:
    assert report.methods == ("model", "sage", "gaff")
    assert set(report.overall) == {"model", "sage", "gaff"}
    assert not report.excluded and not report.skipped
    n_conf = sum(m.n_conformations for m in report.molecules)
    for method, metrics in report.overall.items():
        assert metrics.n_molecules == len(SMILES), method
        assert metrics.n_conformations == n_conf
        assert math.isfinite(metrics.energy_rmse) and metrics.energy_rmse > 0
        assert math.isfinite(metrics.force_rmse) and metrics.force_rmse > 0
        assert metrics.charge_rmse is not None and math.isfinite(metrics.charge_rmse)
        assert math.isfinite(metrics.energy_rmse_median) and metrics.energy_rmse_median > 0
        assert math.isfinite(metrics.force_rmse_median) and metrics.force_rmse_median > 0
    # the baselines use the AM1-BCC labels themselves
    assert report.overall["sage"].charge_rmse == 0.0
    assert report.overall["gaff"].charge_rmse == 0.0
    assert report.overall["model"].charge_rmse > 0.0  # type: ignore[operator]
    for baseline in ("sage", "gaff"):
        ratio = report.ratios["overall"][baseline]
        assert ratio["energy"] == pytest.approx(
            report.overall["model"].energy_rmse / report.overall[baseline].energy_rmse)
        assert ratio["force"] == pytest.approx(
            report.overall["model"].force_rmse / report.overall[baseline].force_rmse)
    assert set(report.by_subset) == {"user"}
    assert report.by_subset["user"]["gaff"] == report.overall["gaff"]
    assert set(report.timings) == {"model", "sage", "gaff"}

    data = json.loads(report.to_json())
    assert data["overall"]["sage"]["charge_rmse"] == 0.0
    assert data["n_molecules_compared"] == len(SMILES)
    markdown = report.to_markdown()
    assert "| model / sage |" in markdown and "0 (labels)" in markdown


def test_model_metrics_match_an_independent_computation(
    report: EvaluationReport, dataset: Path, checkpoint: Path
) -> None:
    from espaloma_like.api import load_model, parametrize
    from espaloma_like.mm.energy import energy_and_forces
    from espaloma_like.molecule import from_smiles

    model = load_model(checkpoint)
    by_name = {m.name: m for m in report.molecules}
    sums = np.zeros(3)  # energy SSE, force SSE, force components
    n_conf = 0
    for record in _records(dataset):
        parameters = parametrize(from_smiles(record.mapped_smiles), model).parameters
        energy, forces = energy_and_forces(parameters, torch.tensor(record.conformations))
        energy = energy.numpy() - energy.numpy().mean()
        reference = record.energies - record.energies.mean()
        energy_sse = float(np.sum(((energy - reference) * KJ_TO_KCAL) ** 2))
        force_error = (forces.numpy() - record.forces) * KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A
        charge_rmse = float(np.sqrt(np.mean(
            (parameters.nonbonded.charges.numpy() - record.charges) ** 2)))
        errors = by_name[record.name].errors["model"]
        # the network runs in float32: a molecule's parameters depend on its batch (the
        # evaluation parametrizes in batches) at ~1e-8 relative
        assert errors.energy_rmse == pytest.approx(math.sqrt(energy_sse / len(energy)), rel=1e-6)
        assert errors.force_rmse == pytest.approx(
            float(np.sqrt(np.mean(force_error**2))), rel=1e-6)
        assert errors.charge_rmse == pytest.approx(charge_rmse, rel=1e-6)
        sums += [energy_sse, float(np.sum(force_error**2)), force_error.size]
        n_conf += len(energy)
    # pooled over molecules, not averaged per molecule
    assert report.overall["model"].energy_rmse == pytest.approx(math.sqrt(sums[0] / n_conf))
    assert report.overall["model"].force_rmse == pytest.approx(math.sqrt(sums[1] / sums[2]))


def test_failing_baseline_excludes_the_molecule_and_unsupported_is_skipped(
    dataset: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from espaloma_like.baselines import gaff_amber
    from espaloma_like.baselines.sage_labels import sage_parameters
    from espaloma_like.data.records import QMRecord
    from espaloma_like.data.spice import write_spice_hdf5
    from espaloma_like.exceptions import ExternalToolError

    records = _records(dataset)
    victim = records[0]

    def fake_gaff(graph: Any, charges: Any) -> Any:
        if graph.mapped_smiles == victim.mapped_smiles:
            raise ExternalToolError("antechamber failed (test)")
        return sage_parameters(graph, charges)

    monkeypatch.setattr(gaff_amber, "gaff_parameters", fake_gaff)
    silane = tmp_path / "silane.h5"
    write_spice_hdf5(silane, [QMRecord(
        name="silane", mapped_smiles="[Si:1]([H:2])([H:3])([H:4])[H:5]",
        atomic_numbers=np.array([14, 1, 1, 1, 1]), conformations=np.zeros((1, 5, 3)),
        energies=np.zeros(1), forces=np.zeros((1, 5, 3)), level_of_theory="test",
        metadata={"split": "held_out"})])
    result = evaluate(checkpoint, [dataset, silane], methods=["model", "gaff"])
    assert [name for name, _ in result.skipped] == ["silane"]
    assert [m.name for m in result.excluded] == [victim.name]
    assert "antechamber failed" in result.excluded[0].failures["gaff"]
    assert "model" in result.excluded[0].errors  # computed, but not compared
    assert result.overall["model"].n_molecules == len(SMILES) - 1
    assert result.model_all_molecules is not None
    assert result.model_all_molecules.n_molecules == len(SMILES)
    assert victim.name in result.to_markdown()


def test_cli_writes_report_and_plots(
    dataset: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    from espaloma_like.cli.main import main

    out = tmp_path / "eval"
    code = main(["evaluate", str(checkpoint), str(dataset), "--out", str(out),
                 "--methods", "model", "sage", "--max-conformations", "2"])
    assert code == 0
    for name in ("report.json", "report.md", "parity_energy.png", "parity_force.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    data = json.loads((out / "report.json").read_text())
    assert data["settings"]["methods"] == ["model", "sage"]
    assert data["settings"]["model"] == "tiny"
    assert all(m["n_conformations"] <= 2 for m in data["molecules"])
    assert "| model / sage |" in capsys.readouterr().out


def test_cli_missing_data_file_is_a_clear_error(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from espaloma_like.cli.main import main

    missing = tmp_path / "nowhere.h5"
    code = main(["evaluate", str(checkpoint), str(missing), "--out", str(tmp_path / "o")])
    assert code == 1
    err = capsys.readouterr().err
    assert "no such dataset file" in err and str(missing) in err
    assert not (tmp_path / "o").exists()


def test_md_stability_of_one_small_molecule(checkpoint: Path) -> None:
    from espaloma_like.molecule import from_smiles

    result = md_stability(checkpoint, [from_smiles("CCO")], picoseconds=0.2, seed=1,
                          check_every_ps=0.1)
    assert (result.picoseconds, result.temperature, result.timestep_fs) == (0.2, 300.0, 1.0)
    assert result.platform == "CPU"
    (one,) = result.results
    assert one.intact, one.reason
    assert one.simulated_ps == pytest.approx(0.2)
    assert 1.0 <= one.max_bond_stretch < 1.5 and one.min_nonbonded_distance >= 0.08
    assert one.ns_per_day > 0
    summary = result.to_dict()
    assert summary["n_intact"] == 1 and summary["n_broken"] == 0
    assert "0.2 ps" in result.to_markdown()


def test_empty_split_and_bad_arguments_are_clear_errors(dataset: Path, checkpoint: Path) -> None:
    from espaloma_like.exceptions import DataFormatError

    with pytest.raises(DataFormatError, match="held_out: 4"):
        evaluate(checkpoint, [dataset], split="train", methods=["sage"])
    with pytest.raises(ValueError, match="unknown methods"):
        evaluate(checkpoint, [dataset], methods=["amber"])
    with pytest.raises(ValueError, match="unknown split"):
        evaluate(checkpoint, [dataset], split="validation")
