"""Shared steps of the optional term kinds' tests: a training loss through a kind's readout,
a fine-tuning start that switches a kind on, and batched against one-by-one parametrization."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from espaloma_like.nn.model import ParameterModel


def readout_gradient(model: ParameterModel, readout: str, smiles: str) -> torch.Tensor | None:
    """Gradient of a training loss (energies, zero forces, prior) on the head weights of
    ``model.<readout>``, for three perturbed conformations of ``smiles`` (float32 copy)."""
    from espaloma_like.molecule import from_smiles, generate_conformers
    from espaloma_like.nn.batch import prepare_molecule
    from espaloma_like.training.config import LossConfig
    from espaloma_like.training.dataset import TrainingMolecule
    from espaloma_like.training.loss import compute_loss, make_batch

    model = copy.deepcopy(model).float()
    graph = from_smiles(smiles)
    prepared = prepare_molecule(graph, model.config.atom_features, model.config.bond_features)
    rng = np.random.default_rng(0)
    xyz = generate_conformers(graph, 1, seed=0)[[0, 0, 0]] + rng.normal(0, 0.01, (3, graph.n_atoms, 3))
    molecule = TrainingMolecule(prepared, xyz, rng.normal(size=3), np.zeros_like(xyz), None,
                                smiles, "", "train")
    batch = make_batch([molecule], 3, rng)
    model.zero_grad()
    loss, _ = compute_loss(model, batch, LossConfig(prior_weight=1.0), reference_model=model)
    loss.backward()
    return getattr(model, readout).head.weight.grad


def fine_tuning_start(plain: ParameterModel, kind: str, tmp_path: Path
                      ) -> tuple[ParameterModel, ParameterModel]:
    """(the float32 start, the model ``build_model`` makes of it with ``extra_terms=(kind,)``),
    checked to have the kind switched on and every weight of the start unchanged."""
    from espaloma_like.nn.checkpoint import save_checkpoint
    from espaloma_like.training.config import DataConfig, TrainConfig
    from espaloma_like.training.trainer import build_model

    start = copy.deepcopy(plain).float()
    path = save_checkpoint(start, tmp_path / "start.pt")
    config = TrainConfig(data=DataConfig(train_files=("unused.h5",)), init_from=str(path),
                         extra_terms=(kind,))
    model = build_model(config)
    assert model.config.extra_terms == (kind,)
    for key, value in start.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    return start, model


def assert_batched_equals_alone(model: ParameterModel, kind: str, molecules: list[str],
                                tolerances: dict[str, tuple[float, float]]) -> list[Any]:
    """Parametrize ``molecules`` in batches of 3 and one by one: the kind's block has the same
    terms, and each field of ``tolerances`` agrees within its ``(rtol, atol)``. Returns the
    batched results."""
    from espaloma_like.api import parametrize, parametrize_many

    many = parametrize_many(molecules, model=model, batch_size=3)
    for smiles, result in zip(molecules, many, strict=True):
        alone = parametrize(smiles, model).parameters.extra_terms[kind]
        batched = result.parameters.extra_terms[kind]
        assert torch.equal(batched.indices, alone.indices)
        for name, (rtol, atol) in tolerances.items():
            assert torch.allclose(getattr(batched, name), getattr(alone, name), rtol=rtol,
                                  atol=atol), name
    return list(many)
