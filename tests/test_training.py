"""Training on QM data: loss goes down, exact resume, DDP gradients, trained == simulated."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from qm_data_helpers import build_tiny_qm_file

from espaloma_like.nn.model import ModelConfig
from espaloma_like.training.config import DataConfig, LossConfig, OptimizerConfig, TrainConfig
from espaloma_like.training.dataset import TrainingMolecule, load_training_molecules
from espaloma_like.training.trainer import Trainer

TINY_MODEL = ModelConfig(hidden=24, n_layers=2, readout_hidden=24)
SMILES = ["CCO", "CC(=O)[O-]", "C[NH3+]", "CC(=O)NC", "c1ccccc1O", "ClCC#N"]


@pytest.fixture(scope="module")
def qm_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real GFN2-xTB dataset with AM1-BCC labels, built by the package itself."""
    return build_tiny_qm_file(tmp_path_factory.mktemp("qm"), SMILES, n_md_per_conformer=2)


@pytest.fixture(scope="module")
def molecules(qm_file: Path) -> list[TrainingMolecule]:
    loaded = load_training_molecules([qm_file], TINY_MODEL)
    assert len(loaded) == len(SMILES)
    return loaded


def _config(tmp_path: Path, qm_file: Path, **changes) -> TrainConfig:  # type: ignore[no-untyped-def]
    base = dict(
        data=DataConfig(train_files=(str(qm_file),), validation_fraction=0.0,
                        conformations_per_molecule=4, batch_molecules=4),
        model=TINY_MODEL, max_steps=40, eval_every=20, checkpoint_every=5, patience=None,
        output_dir=str(tmp_path / "run"), tensorboard=False,
        optimizer=OptimizerConfig(learning_rate=3e-3, warmup_steps=5),
    )
    base.update(changes)
    return TrainConfig(**base)


def test_tiny_training_run_lowers_the_loss(tmp_path: Path, qm_file: Path,
                                           molecules: list[TrainingMolecule]) -> None:
    trainer = Trainer(_config(tmp_path, qm_file), train=molecules, validation=molecules,
                      progress=False)
    before = trainer.evaluate(molecules)
    result = trainer.fit(resume=False)
    after = trainer.evaluate(molecules)
    assert after["loss"] < 0.5 * before["loss"]
    assert after["force_rmse"] < before["force_rmse"]
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") > 3
    assert result.best_checkpoint.is_file()


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path: Path, qm_file: Path,
                                                         molecules: list[TrainingMolecule]) -> None:
    straight = Trainer(_config(tmp_path / "a", qm_file, max_steps=8), train=molecules,
                       validation=molecules, progress=False)
    straight.fit(resume=False)

    interrupted = Trainer(_config(tmp_path / "b", qm_file, max_steps=8), train=molecules,
                          validation=molecules, progress=False)
    interrupted.fit(resume=False, stop_after_steps=3)
    assert interrupted.step == 3
    resumed = Trainer(_config(tmp_path / "b", qm_file, max_steps=8), train=molecules,
                      validation=molecules, progress=False)
    resumed.fit(resume=True)
    assert resumed.step == 8
    for (name, a), b in zip(straight.model.state_dict().items(),
                            resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_checkpoint_from_training_loads_and_parametrizes(tmp_path: Path, qm_file: Path,
                                                         molecules: list[TrainingMolecule]) -> None:
    import espaloma_like

    trainer = Trainer(_config(tmp_path, qm_file, max_steps=5, eval_every=5), train=molecules,
                      validation=molecules, progress=False)
    result = trainer.fit(resume=False)
    model = espaloma_like.load_model(result.best_checkpoint)
    molecule = espaloma_like.parametrize("CC(=O)Nc1ccc(O)cc1", model=model)
    assert abs(molecule.charges.sum()) < 1e-12
    assert molecule.to_openmm_system().getNumParticles() == 20


def test_fine_tuning_with_frozen_charges(tmp_path: Path, qm_file: Path,
                                         molecules: list[TrainingMolecule]) -> None:
    from espaloma_like.nn.checkpoint import save_checkpoint
    from espaloma_like.nn.model import ParameterModel

    torch.manual_seed(0)
    start = save_checkpoint(ParameterModel(TINY_MODEL), tmp_path / "start.pt")
    trainer = Trainer(_config(tmp_path, qm_file, max_steps=5, init_from=str(start),
                              freeze=("charges",)), train=molecules, validation=molecules,
                      progress=False)
    before = {k: v.clone() for k, v in trainer.model.charge_readout.state_dict().items()}
    trainer.fit(resume=False)
    after = trainer.model.charge_readout.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(ParameterModel(TINY_MODEL).bond_readout.head.weight,
                           trainer.model.bond_readout.head.weight)


def test_sparse_torsion_fine_tuning_is_stored_in_the_checkpoint(tmp_path: Path, qm_file: Path,
                                                               molecules: list[TrainingMolecule]) -> None:
    import espaloma_like
    from espaloma_like.nn.checkpoint import save_checkpoint
    from espaloma_like.nn.model import ParameterModel

    torch.manual_seed(0)
    start = save_checkpoint(ParameterModel(TINY_MODEL), tmp_path / "start.pt")
    config = _config(tmp_path, qm_file, max_steps=5, eval_every=5, init_from=str(start),
                     proper_k_threshold=0.05, loss=LossConfig(torsion_l1=0.1))
    result = Trainer(config, train=molecules, validation=molecules, progress=False).fit(resume=False)
    model = espaloma_like.load_model(result.best_checkpoint)
    assert model.config.heads.proper_k_threshold == 0.05
    k = espaloma_like.parametrize("CCCC", model=model).parameters.propers.k
    assert bool((k == 0).any())


def test_urey_bradley_can_be_added_when_fine_tuning(tmp_path: Path, qm_file: Path,
                                                    molecules: list[TrainingMolecule]) -> None:
    import espaloma_like
    from espaloma_like.nn.checkpoint import save_checkpoint
    from espaloma_like.nn.model import ParameterModel

    torch.manual_seed(0)
    plain = ParameterModel(TINY_MODEL)
    start = save_checkpoint(plain, tmp_path / "start.pt")
    trainer = Trainer(_config(tmp_path, qm_file, max_steps=5, eval_every=5, init_from=str(start),
                              urey_bradley=True), train=molecules, validation=molecules, progress=False)
    # the graft keeps every existing weight
    for key, value in plain.state_dict().items():
        assert torch.equal(value, trainer.model.state_dict()[key]), key
    result = trainer.fit(resume=False)
    model = espaloma_like.load_model(result.best_checkpoint)
    assert model.config.urey_bradley
    angles = espaloma_like.parametrize("CCO", model=model).parameters.angles
    assert angles.urey_bradley_k is not None and bool((angles.urey_bradley_k > 0).all())


def test_bf16_mixed_precision_trains_with_float64_energies(
        tmp_path: Path, qm_file: Path, molecules: list[TrainingMolecule]) -> None:
    """bf16 autocast covers the network only: its loss matches fp32's, and it still trains."""
    from espaloma_like.training.loss import compute_loss, make_batch

    trainer = Trainer(_config(tmp_path, qm_file, precision="bf16-mixed"), train=molecules,
                      validation=molecules, progress=False)
    batch = make_batch(molecules, 4, np.random.default_rng(0))
    _, full = compute_loss(trainer.model, batch, trainer.config.loss, None, create_graph=False)
    _, mixed = compute_loss(trainer.model, batch, trainer.config.loss, torch.bfloat16,
                            create_graph=False)
    assert mixed["force_rmse"] == pytest.approx(full["force_rmse"], rel=0.05)
    assert mixed["energy_rmse"] == pytest.approx(full["energy_rmse"], rel=0.05)
    before = trainer.evaluate(molecules)
    trainer.fit(resume=False)
    after = trainer.evaluate(molecules)
    assert np.isfinite(after["loss"]) and after["loss"] < 0.5 * before["loss"]


def test_trained_energy_equals_openmm_energy(molecules: list[TrainingMolecule]) -> None:
    """What is trained is what is simulated: the loss's energies equal the exported System's."""
    from conftest import openmm_energy_forces

    from espaloma_like.api import parametrize
    from espaloma_like.mm import energy_terms
    from espaloma_like.nn.assemble import batch_parameter_set
    from espaloma_like.nn.model import ParameterModel
    from espaloma_like.training.loss import make_batch

    torch.manual_seed(2)
    model = ParameterModel(TINY_MODEL).double().eval()
    batch = make_batch(molecules[:3], 3, np.random.default_rng(0))
    graph = batch.graph.to(dtype=torch.float64)
    with torch.no_grad():
        parameters = batch_parameter_set(graph, model(graph)).to(dtype=torch.float64)
        trained = energy_terms(parameters, batch.xyz, graph.atom_molecule, graph.n_molecules).total
    for index, molecule in enumerate(molecules[:3]):
        system = parametrize(molecule.prepared.graph, model=model).to_openmm_system()
        start, stop = graph.atom_offsets[index], graph.atom_offsets[index + 1]
        for c in range(3):
            canonical = batch.xyz[c, start:stop].numpy()
            positions = np.empty_like(canonical)
            positions[molecule.prepared.to_input] = canonical  # back to the input atom order
            reference, _ = openmm_energy_forces(system, positions)
            assert float(trained[c, index]) == pytest.approx(reference, abs=1e-3)


def _ddp_worker(rank: int, world_size: int, init_file: str, config_json: str,
                molecules: list[TrainingMolecule], out_dir: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank)})
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world_size)
    torch.set_num_threads(1)
    config = TrainConfig.model_validate_json(config_json)
    trainer = Trainer(config, train=molecules, validation=[], progress=False)
    trainer.train_step()
    if rank == 0:
        torch.save({k: p.grad for k, p in trainer.model.named_parameters()},
                   os.path.join(out_dir, "ddp_grads.pt"))
    # no rank tears gloo down while the other is still in a collective: that raced into an
    # abort ("terminate called without an active exception") in about one run in three
    dist.barrier()
    dist.destroy_process_group()


def test_ddp_two_processes_give_the_same_gradients_as_one(tmp_path: Path, qm_file: Path,
                                                          molecules: list[TrainingMolecule]) -> None:
    import torch.multiprocessing as mp

    config = _config(tmp_path, qm_file, max_steps=1, device="cpu")
    single = Trainer(config, train=molecules, validation=[], progress=False)
    single.train_step()
    reference = {k: p.grad for k, p in single.model.named_parameters()}

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), config.model_dump_json(),
                                molecules, str(tmp_path)), nprocs=2, join=True)
    distributed = torch.load(tmp_path / "ddp_grads.pt", weights_only=True)
    for name, grad in reference.items():
        assert torch.allclose(grad, distributed[name], rtol=1e-4, atol=1e-6), name


def test_unknown_config_keys_are_refused(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from espaloma_like.training.config import load_train_config

    path = tmp_path / "bad.yaml"
    path.write_text("data: {train_files: [x.h5]}\nlearning_rat: 0.1\n")
    with pytest.raises(ValidationError):
        load_train_config(path)
    path.write_text("data: {train_files: [x.h5]}\nloss: {energy_weight: 2.0}\n")
    assert load_train_config(path).loss == LossConfig(energy_weight=2.0)


def test_charged_sampling_weight_oversamples_only_charged_molecules(qm_file: Path) -> None:
    from espaloma_like.training.config import DataFile

    source = DataFile(path=str(qm_file), sampling_weight=2.0, charged_sampling_weight=3.0)
    loaded = load_training_molecules([source], TINY_MODEL)
    weights = {m.prepared.graph.smiles: m.sampling_weight for m in loaded}
    charged = {s for s in weights if "+" in s or "-]" in s}
    assert charged and len(charged) < len(weights)
    assert all(weights[s] == (6.0 if s in charged else 2.0) for s in weights)
