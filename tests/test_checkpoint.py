"""The one safe torch-file reader: pickles never run, NaN weights and broken files are refused."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import espaloma_like
from espaloma_like.exceptions import CheckpointError
from espaloma_like.nn.checkpoint import load_checkpoint, read_torch_file, save_checkpoint
from espaloma_like.nn.model import ModelConfig, ParameterModel

TINY = ModelConfig(hidden=16, n_layers=1, readout_hidden=16)


class CodeRunner:
    """Unpickling this runs code: it writes ``marker`` (what an attacker's file would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def crafted_files(directory: Path, name: str) -> list[Path]:
    """The same malicious payload as a torch zip file and as a plain pickle."""
    marker = directory / "marker"
    model = ParameterModel(TINY)
    payload = {"format_version": 1, "config": TINY.model_dump(mode="json"),
               "state_dict": model.state_dict(), "metadata": {"x": CodeRunner(marker)},
               "step": 3, "model": model.state_dict()}
    zipped = directory / f"zip-{name}"
    torch.save(payload, zipped)
    pickled = directory / f"pickle-{name}"
    with pickled.open("wb") as handle:
        pickle.dump(payload, handle)
    return [zipped, pickled]


def test_crafted_pickle_checkpoint_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    for path in crafted_files(tmp_path, "model.pt"):
        with pytest.raises(CheckpointError, match="Python objects that could run code") as raised:
            load_checkpoint(path)
        assert "\n" not in str(raised.value)
        with pytest.raises(CheckpointError):
            espaloma_like.load_model(path)
        with pytest.raises(CheckpointError):
            espaloma_like.parametrize("CCO", model=str(path))
    assert not marker.exists()
    # the payload is live: a plain unpickler runs it (so the test above would see it run)
    with (tmp_path / "pickle-model.pt").open("rb") as handle:
        pickle.load(handle)
    assert marker.read_text() == "ran"


def test_checkpoint_with_nan_or_inf_weights_is_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ParameterModel(TINY)
    good = save_checkpoint(model, tmp_path / "good.pt")
    assert np.isfinite(espaloma_like.parametrize("CCO", model=str(good)).charges).all()
    for value, name in [(float("nan"), "nan.pt"), (float("inf"), "inf.pt")]:
        broken = ParameterModel(TINY)
        broken.load_state_dict(model.state_dict())
        with torch.no_grad():
            broken.charge_readout[0].weight[0, 0] = value
        path = save_checkpoint(broken, tmp_path / name)
        with pytest.raises(CheckpointError, match=r"NaN or infinite values in 'state_dict\.charge_"):
            load_checkpoint(path)
        with pytest.raises(CheckpointError):
            espaloma_like.parametrize("CCO", model=str(path))


def test_truncated_empty_and_mismatched_checkpoints_give_one_line(tmp_path: Path) -> None:
    path = save_checkpoint(ParameterModel(TINY), tmp_path / "m.pt")
    data = path.read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    payload = torch.load(path, weights_only=True)
    payload["config"]["hidden"] = 8  # the weights are for 16
    torch.save(payload, tmp_path / "mismatch.pt")
    for name, message in [("half.pt", "truncated"), ("empty.pt", "truncated"),
                          ("mismatch.pt", "size mismatch")]:
        with pytest.raises(CheckpointError, match=message) as raised:
            load_checkpoint(tmp_path / name)
        assert "\n" not in str(raised.value), name


def test_read_torch_file_returns_plain_payloads(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    torch.save({"rng": {"state": 2**127 + 1, "name": "PCG64"}, "best": float("inf"),
                "history": [{"step": 1, "loss": 0.5}], "w": torch.ones(2)}, path)
    payload = read_torch_file(path, "training state")
    # infinite *numbers* (an unset best loss) are fine; only tensors are checked
    assert payload["best"] == float("inf") and payload["rng"]["state"] == 2**127 + 1
    with pytest.raises(CheckpointError, match="no such training state file"):
        read_torch_file(tmp_path / "missing.pt", "training state")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not an espaloma_like checkpoint"):
        read_torch_file(tmp_path / "list.pt")
