"""Checkpoint metadata tells the truth about the model it holds; ``init_from`` is resolved
relative to the training config's directory (falling back to the current directory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openmm
import pytest
import torch
import yaml
from openmm import unit

from espaloma_like.nn.checkpoint import load_checkpoint, read_torch_file, save_checkpoint
from espaloma_like.nn.model import ModelConfig, ParameterModel
from espaloma_like.training.config import load_train_config, resolve_init_from

TINY_MODEL = ModelConfig(hidden=16, n_layers=1, readout_hidden=16)


@pytest.fixture(scope="module")
def qm_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three molecules with real energies and forces: the Sage-fit model's OpenMM System at
    ETKDG conformers (stand-ins for QM labels; training only has to run)."""
    import espaloma_like
    from espaloma_like.data.records import QMRecord
    from espaloma_like.data.spice import write_spice_hdf5
    from espaloma_like.molecule import from_smiles, generate_conformers

    records = []
    for name, smiles in (("ethanol", "CCO"), ("acetate", "CC(=O)[O-]"), ("phenol", "c1ccccc1O")):
        graph = from_smiles(smiles)
        result = espaloma_like.parametrize(graph, model="sage-fit")
        system = result.to_openmm_system()
        context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                                 openmm.Platform.getPlatformByName("Reference"))
        # a minimum and two small displacements: plausible energies and forces
        context.setPositions(generate_conformers(graph)[0])
        openmm.LocalEnergyMinimizer.minimize(context)
        minimum = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(
            unit.nanometer)
        noise = np.random.default_rng(0).normal(scale=0.003, size=(2, *minimum.shape))
        xyz = np.concatenate([minimum[None], minimum + noise])
        energies, forces = [], []
        for conformation in xyz:
            context.setPositions(conformation)
            state = context.getState(getEnergy=True, getForces=True)
            energies.append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
            forces.append(state.getForces(asNumpy=True).value_in_unit(
                unit.kilojoule_per_mole / unit.nanometer))
        records.append(QMRecord(
            name=name, mapped_smiles=graph.mapped_smiles, atomic_numbers=graph.atomic_numbers,
            conformations=xyz, energies=np.array(energies), forces=np.array(forces),
            level_of_theory="MM stand-in", charges=result.charges,
            total_charge=graph.total_charge, metadata={"split": "train"}))
    path = tmp_path_factory.mktemp("qm") / "mm.h5"
    write_spice_hdf5(path, records)
    return path


def _write_config(path: Path, qm_file: Path, output: Path, **changes: object) -> Path:
    config = {
        "data": {"train_files": [str(qm_file)], "validation_fraction": 0.0,
                 "conformations_per_molecule": 2, "batch_molecules": 3},
        "model": TINY_MODEL.model_dump(mode="json"),
        "max_steps": 2, "eval_every": 2, "checkpoint_every": 2, "patience": None,
        "output_dir": str(output), "tensorboard": False, **changes,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def test_fine_tuned_checkpoint_stores_the_models_own_config(tmp_path: Path, qm_file: Path) -> None:
    """A run that adds Urey-Bradley springs to a model without them (init_from, relative to the
    config file) stores urey_bradley: true wherever the checkpoint states the model config."""
    from espaloma_like.training.dataset import load_training_molecules
    from espaloma_like.training.trainer import Trainer

    torch.manual_seed(0)
    start_config = TINY_MODEL.model_copy(update={"hidden": 20})  # differs from the YAML's model
    save_checkpoint(ParameterModel(start_config), tmp_path / "configs" / "start.pt")
    config_path = _write_config(tmp_path / "configs" / "finetune.yaml", qm_file, tmp_path / "run",
                                init_from="start.pt", urey_bradley=True)
    config = load_train_config(config_path)  # run from the repository root, not configs/
    assert Path(config.init_from or "") == tmp_path / "configs" / "start.pt"
    molecules = load_training_molecules([qm_file], start_config)
    trainer = Trainer(config, train=molecules, validation=molecules, progress=False)
    result = trainer.fit(resume=False)

    payload = read_torch_file(result.best_checkpoint)
    stored = payload["metadata"]["training_config"]["model"]
    assert payload["config"]["urey_bradley"] is True
    assert stored["urey_bradley"] is True
    assert stored["hidden"] == 20  # the parent's architecture, not the YAML's model section
    assert stored == payload["config"]
    model, _ = load_checkpoint(result.best_checkpoint)
    assert model.config.model_dump(mode="json") == stored


def test_init_from_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    configs = tmp_path / "training"
    configs.mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "best.pt").write_bytes(b"cwd")
    config = configs / "train.yaml"
    # the existing recipes: a path relative to the directory they are run from
    assert resolve_init_from("runs/best.pt", config) == "runs/best.pt"
    # a file beside the config wins, also when the current directory has one of that name
    (configs / "runs").mkdir()
    (configs / "runs" / "best.pt").write_bytes(b"beside")
    assert Path(resolve_init_from("runs/best.pt", config)).read_bytes() == b"beside"
    # a config in the current directory: both readings agree, the path is kept as written
    assert resolve_init_from("runs/best.pt", tmp_path / "train.yaml") == "runs/best.pt"
    # shipped model names and absolute paths are left alone
    assert resolve_init_from("default", config) == "default"
    absolute = str(tmp_path / "runs" / "best.pt")
    assert resolve_init_from(absolute, config) == absolute
