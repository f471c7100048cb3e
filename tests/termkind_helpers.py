"""Shared steps of the optional term kinds' tests: a training loss through a kind's readout,
and a fine-tuning start that switches a kind on."""

from __future__ import annotations

import copy
from pathlib import Path

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
    """(the float32 start, the model ``build_model`` makes of it with ``extra_terms=(kind,)``)."""
    from espaloma_like.nn.checkpoint import save_checkpoint
    from espaloma_like.training.config import DataConfig, TrainConfig
    from espaloma_like.training.trainer import build_model

    start = copy.deepcopy(plain).float()
    path = save_checkpoint(start, tmp_path / "start.pt")
    config = TrainConfig(data=DataConfig(train_files=("unused.h5",)), init_from=str(path),
                         extra_terms=(kind,))
    return start, build_model(config)
