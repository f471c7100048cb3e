"""A training run on disk: safe resume files, config checks, restart, metrics, lock, no fake validation."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import pytest
import torch
from qm_data_helpers import build_tiny_qm_file

from espaloma_like._io import DirectoryLock
from espaloma_like.exceptions import CheckpointError, OutputLockedError, TrainingSetupError
from espaloma_like.nn.model import ModelConfig
from espaloma_like.training.config import DataConfig, OptimizerConfig, TrainConfig
from espaloma_like.training.dataset import TrainingMolecule, load_training_molecules
from espaloma_like.training.trainer import Trainer

TINY_MODEL = ModelConfig(hidden=16, n_layers=1, readout_hidden=16)
SMILES = ["CCO", "CC(=O)[O-]", "C[NH3+]", "CC#N"]


@pytest.fixture(scope="module")
def qm_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real GFN2-xTB dataset with AM1-BCC labels, built by the package itself."""
    return build_tiny_qm_file(tmp_path_factory.mktemp("qm"), SMILES, n_md_per_conformer=1)


@pytest.fixture(scope="module")
def molecules(qm_file: Path) -> list[TrainingMolecule]:
    loaded = load_training_molecules([qm_file], TINY_MODEL)
    assert len(loaded) == len(SMILES)
    return loaded


def _config(output: Path, qm_file: Path, **changes) -> TrainConfig:  # type: ignore[no-untyped-def]
    base = dict(
        data=DataConfig(train_files=(str(qm_file),), validation_fraction=0.0,
                        conformations_per_molecule=2, batch_molecules=2),
        model=TINY_MODEL, max_steps=15, eval_every=3, checkpoint_every=5, patience=None,
        output_dir=str(output), tensorboard=False, device="cpu",
        optimizer=OptimizerConfig(learning_rate=3e-3, warmup_steps=2),
    )
    base.update(changes)
    return TrainConfig(**base)


def _trainer(config: TrainConfig, molecules: list[TrainingMolecule]) -> Trainer:
    return Trainer(config, train=molecules, validation=molecules, progress=False)


def _rows(path: Path) -> list[tuple[int, str]]:
    with path.open() as handle:
        return [(int(r["step"]), r["split"]) for r in csv.DictReader(handle)]


class CodeRunner:
    """Unpickling this runs code: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_crafted_last_pt_never_runs(tmp_path: Path, qm_file: Path,
                                    molecules: list[TrainingMolecule]) -> None:
    marker = tmp_path / "marker"
    config = _config(tmp_path / "run", qm_file)
    real = _trainer(config, molecules).state_dict()
    real["history"] = [{"step": 1, "note": CodeRunner(marker)}]
    (tmp_path / "run").mkdir()
    last = tmp_path / "run" / "last.pt"
    for save in (lambda: torch.save(real, last),
                 lambda: last.write_bytes(pickle.dumps(real))):
        save()
        with pytest.raises(CheckpointError, match="Python objects that could run code"):
            _trainer(config, molecules).fit()
        assert not marker.exists()


def test_resume_with_a_changed_config_is_refused_unless_restarted(
        tmp_path: Path, qm_file: Path, molecules: list[TrainingMolecule]) -> None:
    run = tmp_path / "run"
    first = _trainer(_config(run, qm_file), molecules)
    first.fit(stop_after_steps=4)
    changed = _config(run, qm_file, seed=7,
                      optimizer=OptimizerConfig(learning_rate=1e-3, warmup_steps=2))
    with pytest.raises(CheckpointError, match="different config") as raised:
        _trainer(changed, molecules).fit()
    message = str(raised.value)
    assert "optimizer.learning_rate: 0.003 -> 0.001" in message and "seed: 0 -> 7" in message
    assert "--restart" in message and "\n" not in message
    # a directory holding a run is not silently overwritten either
    with pytest.raises(CheckpointError, match="holds a training run"):
        _trainer(changed, molecules).fit(resume=False)
    # where and how fast it runs may change
    same = _config(run, qm_file, tensorboard=False, num_threads=1, max_seconds=600.0)
    resumed = _trainer(same, molecules)
    resumed.fit(stop_after_steps=1)
    assert resumed.step == 5

    restarted = _trainer(changed, molecules)
    result = restarted.fit(restart=True)
    assert result.steps == 15 and restarted.history[0]["step"] == 3  # from scratch
    (aside,) = run.glob("replaced-*")
    assert sorted(p.name for p in aside.iterdir()) == ["best.pt", "last.pt", "metrics.csv"]
    assert torch.load(aside / "last.pt", weights_only=True)["step"] == 5
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["config"]["seed"] == 7 and state["step"] == 15


def test_truncated_incomplete_mismatched_or_nan_resume_files_are_refused(
        tmp_path: Path, qm_file: Path, molecules: list[TrainingMolecule]) -> None:
    run = tmp_path / "run"
    config = _config(run, qm_file)
    _trainer(config, molecules).fit(stop_after_steps=2)
    last = run / "last.pt"
    good = torch.load(last, weights_only=True)
    data = last.read_bytes()

    def refused(match: str) -> None:
        with pytest.raises(CheckpointError, match=match) as raised:
            _trainer(config, molecules).fit()
        assert "\n" not in str(raised.value)

    last.write_bytes(data[: len(data) // 3])
    refused("truncated")
    last.write_bytes(b"")
    refused("truncated")
    torch.save({k: v for k, v in good.items() if k != "step"}, last)
    refused(r"incomplete \(no step\)")
    other = _trainer(_config(run, qm_file, model=ModelConfig(hidden=8, n_layers=1,
                                                             readout_hidden=8)), molecules)
    torch.save({**good, "model": other.model.state_dict()}, last)
    refused("does not match this run: .*size mismatch")
    nan_model = {k: v.clone() for k, v in good["model"].items()}
    next(v for v in nan_model.values() if v.is_floating_point()).view(-1)[0] = float("nan")
    torch.save({**good, "model": nan_model}, last)
    refused("NaN or infinite values in 'model.")
    torch.save(good, last)  # the intact file still resumes
    resumed = _trainer(config, molecules)
    resumed.fit(stop_after_steps=1)
    assert resumed.step == 3


class Killed(Exception):
    """Stands for a kill between two checkpoints (the final save does not happen)."""


def test_metrics_have_no_duplicate_rows_and_temporaries_go_after_a_killed_run(
        tmp_path: Path, qm_file: Path, molecules: list[TrainingMolecule]) -> None:
    straight = _trainer(_config(tmp_path / "a", qm_file), molecules)
    straight.fit()
    expected = _rows(tmp_path / "a" / "metrics.csv")

    run = tmp_path / "b"

    def kill_at_12(record: dict) -> None:  # type: ignore[type-arg]
        if record["step"] == 12:
            raise Killed

    with pytest.raises(Killed):
        _trainer(_config(run, qm_file), molecules).fit(callback=kill_at_12)
    assert (12, "validation") in _rows(run / "metrics.csv")  # logged after last.pt (step 10)
    stale = [run / "last.pt.tmp", run / ".best.pt.x1y2z3.tmp"]
    for path in stale:
        path.write_bytes(b"partial")

    resumed = _trainer(_config(run, qm_file), molecules)
    resumed.fit()
    rows = _rows(run / "metrics.csv")
    assert len(rows) == len(set(rows))
    assert rows == expected
    assert [(r["step"], r["split"]) for r in resumed.history] == rows
    assert not any(path.exists() for path in stale)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)


def test_a_second_run_into_a_busy_directory_is_refused(
        tmp_path: Path, qm_file: Path, molecules: list[TrainingMolecule]) -> None:
    run = tmp_path / "run"
    config = _config(run, qm_file, max_steps=3)
    with DirectoryLock(run, "training run"):  # the first run, still training
        with pytest.raises(OutputLockedError, match="in use by another training run"):
            _trainer(config, molecules).fit()
        assert not (run / "last.pt").exists()
    assert _trainer(config, molecules).fit().steps == 3


def test_an_empty_validation_split_is_refused_and_fraction_zero_means_no_validation(
        tmp_path: Path, qm_file: Path, molecules: list[TrainingMolecule]) -> None:
    data = DataConfig(train_files=(str(qm_file),), validation_fraction=0.2,
                      conformations_per_molecule=2, batch_molecules=2)
    with pytest.raises(TrainingSetupError, match="no validation molecule"):
        Trainer(_config(tmp_path / "a", qm_file, data=data), train=molecules, validation=[],
                progress=False)

    trainer = Trainer(_config(tmp_path / "b", qm_file, max_steps=10), train=molecules,
                      progress=False)
    result = trainer.fit()
    assert {r["split"] for r in trainer.history} == {"train"}
    assert {split for _, split in _rows(tmp_path / "b" / "metrics.csv")} == {"train"}
    # best.pt is the final model, not an earlier one picked on training data
    best = torch.load(result.best_checkpoint, weights_only=True)
    assert best["metadata"]["step"] == 10
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(best["state_dict"][key], value), key


def test_cli_train_refuses_a_changed_config_in_one_line_and_restarts_on_request(
        tmp_path: Path, qm_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from espaloma_like.cli.main import main

    config = _config(tmp_path / "run", qm_file, max_steps=2).model_dump(mode="json")
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path)]) == 0
    config["seed"] = 3
    path.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["train", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("espaloma-like train: error:") and "seed: 0 -> 3" in err
    assert "\n" not in err and "Traceback" not in err
    assert main(["train", str(path), "--restart"]) == 0
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["config"]["seed"] == 3
