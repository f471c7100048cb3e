"""Model soups: weight averages of checkpoints of one architecture, refused otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import espaloma_like
from espaloma_like.exceptions import CheckpointError
from espaloma_like.nn.checkpoint import load_checkpoint, save_checkpoint
from espaloma_like.nn.model import ModelConfig, ParameterModel
from espaloma_like.training.soup import average_state_dicts, make_soup

TINY = ModelConfig(hidden=16, n_layers=1, readout_hidden=16)


def _saved(path: Path, seed: int, config: ModelConfig = TINY) -> Path:
    torch.manual_seed(seed)
    model = ParameterModel(config)
    with torch.no_grad():  # zero-start heads: give every tensor seed-dependent values
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return save_checkpoint(model, path, metadata={"step": seed, "validation": {"loss": seed}})


def test_soup_is_the_weighted_mean_of_the_members(tmp_path: Path) -> None:
    a, b = _saved(tmp_path / "a.pt", 1), _saved(tmp_path / "b.pt", 2)
    out = make_soup([a, b], tmp_path / "soup.pt", weights=[3.0, 1.0])
    soup, meta = load_checkpoint(out)
    sa, sb = (load_checkpoint(p)[0].state_dict() for p in (a, b))
    for key, value in soup.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.75 * sa[key] + 0.25 * sb[key])
    moved = [k for k, v in sa.items() if v.is_floating_point() and not torch.equal(v, sb[k])]
    assert moved  # the members differ, so the test above checks a mean
    assert [m["path"] for m in meta["soup"]["members"]] == [str(a), str(b)]
    assert [m["step"] for m in meta["soup"]["members"]] == [1, 2]
    assert meta["soup"]["weights"] == [3.0, 1.0]
    assert all(len(m["sha256"]) == 64 for m in meta["soup"]["members"])


def test_soup_of_copies_parametrizes_as_the_member(tmp_path: Path) -> None:
    a = _saved(tmp_path / "a.pt", 1)
    out = make_soup([a, a, a], tmp_path / "soup.pt")
    ref = espaloma_like.parametrize("CC(=O)[O-]", model=str(a)).parameters
    got = espaloma_like.parametrize("CC(=O)[O-]", model=str(out)).parameters
    np.testing.assert_allclose(got.nonbonded.charges, ref.nonbonded.charges, atol=1e-6)
    np.testing.assert_allclose(got.bonds.k, ref.bonds.k, rtol=1e-5)
    np.testing.assert_allclose(got.propers.k, ref.propers.k, atol=1e-5)
    assert got.nonbonded.charges.sum() == pytest.approx(-1.0, abs=1e-5)


def test_soup_of_the_shipped_model_with_itself_is_that_model(tmp_path: Path) -> None:
    out = make_soup(["default", "default"], tmp_path / "soup.pt")
    ref = load_checkpoint("default")[0].state_dict()
    for key, value in load_checkpoint(out)[0].state_dict().items():
        torch.testing.assert_close(value, ref[key])


def test_soup_refuses_other_architectures_and_overwriting(tmp_path: Path) -> None:
    a = _saved(tmp_path / "a.pt", 1)
    wide = _saved(tmp_path / "wide.pt", 2, ModelConfig(hidden=24, n_layers=1, readout_hidden=16))
    with pytest.raises(CheckpointError, match="another model config"):
        make_soup([a, wide], tmp_path / "soup.pt")
    with pytest.raises(CheckpointError, match="overwrite one of its members"):
        make_soup([a, a], a)
    assert not (tmp_path / "soup.pt").exists()
    with pytest.raises(CheckpointError, match="one non-negative weight"):
        make_soup([a, a], tmp_path / "soup.pt", weights=[1.0])
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        make_soup([a, tmp_path / "missing.pt"], tmp_path / "soup.pt")


def test_average_state_dicts_refuses_mismatches() -> None:
    one = {"w": torch.ones(2), "n": torch.tensor([1, 2])}
    with pytest.raises(CheckpointError, match="other tensors"):
        average_state_dicts([one, {"w": torch.ones(2)}])
    with pytest.raises(CheckpointError, match="different shapes"):
        average_state_dicts([one, {"w": torch.ones(3), "n": torch.tensor([1, 2])}])
    with pytest.raises(CheckpointError, match="cannot be averaged"):
        average_state_dicts([one, {"w": torch.ones(2), "n": torch.tensor([1, 3])}])
    with pytest.raises(CheckpointError, match="at least one"):
        average_state_dicts([])
    mean = average_state_dicts([one, {"w": 3 * torch.ones(2), "n": torch.tensor([1, 2])}])
    torch.testing.assert_close(mean["w"], 2 * torch.ones(2))
    assert torch.equal(mean["n"], one["n"])
