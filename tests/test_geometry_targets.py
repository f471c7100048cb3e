"""Geometry targets: linearized MM minima of DFT minima, and the loss built on them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_script

from espaloma_like.data.records import QMRecord
from espaloma_like.exceptions import DataFormatError, TrainingSetupError
from espaloma_like.molecule import from_smiles
from espaloma_like.training import geometry_targets as gt

SMILES = "CC(=O)NCCO"


def _record(smiles: str = SMILES, name: str = "mol", n: int = 2, seed: int = 0) -> QMRecord:
    """ETKDG conformations standing in for DFT minima (what matters here is the MM side)."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    graph = from_smiles(smiles)
    mol = Chem.Mol(graph.rdkit_mol)
    ids = AllChem.EmbedMultipleConfs(mol, n, randomSeed=seed)
    xyz = np.stack([mol.GetConformer(i).GetPositions() for i in ids]) / 10.0
    return QMRecord(name, graph.mapped_smiles, graph.atomic_numbers, xyz, np.zeros(len(ids)),
                    np.zeros_like(xyz), "test", subset="openff_industry",
                    metadata={"split": "train", "force_label": "zero_at_minimum"})


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    from espaloma_like.api import load_model

    return load_model("default")


@pytest.fixture(scope="module")
def target(model):  # type: ignore[no-untyped-def]
    return gt.build_target(model, _record(), range(2))


def _minimize_with_extra_gradient(model, record: QMRecord, start: np.ndarray,  # type: ignore[no-untyped-def]
                                  extra: np.ndarray) -> np.ndarray:
    """OpenMM minimum, from ``start``, of the model's System plus the linear energy
    ``extra . x`` (input atom order)."""
    import openmm

    from espaloma_like.benchmark.conformers import minimize
    from espaloma_like.data.records import record_graph
    from espaloma_like.export.openmm_system import to_openmm_system
    from espaloma_like.methods import get_method

    graph = record_graph(record)
    system = to_openmm_system(get_method("model").parameters(graph, model=model), masses=graph.masses)
    force = openmm.CustomExternalForce("gx*x + gy*y + gz*z")
    for name in ("gx", "gy", "gz"):
        force.addPerParticleParameter(name)
    for i, g in enumerate(extra):
        force.addParticle(i, [float(v) for v in g])
    system.addForce(force)
    return minimize(system, start)[0]


def test_hessian_by_differences_matches_autograd(model) -> None:  # type: ignore[no-untyped-def]
    from espaloma_like.data.records import record_graph
    from espaloma_like.nn.batch import prepare_molecule

    record = _record()
    prepared = prepare_molecule(record_graph(record), model.config.atom_features,
                                model.config.bond_features)
    gradient = gt._gradient_function(model, prepared)
    x = record.conformations[0][prepared.to_input]

    def energy_of(flat: torch.Tensor) -> torch.Tensor:
        # the energy whose gradient ``gradient`` returns: integrate it back via autograd
        from espaloma_like.mm.energy import energy_terms
        from espaloma_like.nn.assemble import batch_parameter_set
        from espaloma_like.nn.batch import collate

        graph = collate([prepared])
        with torch.no_grad():
            parameters = batch_parameter_set(graph, model(graph)).to(dtype=torch.float64)
        return energy_terms(parameters, flat.view(1, -1, 3), graph.atom_molecule, 1).total.sum()

    exact = torch.autograd.functional.hessian(energy_of, torch.tensor(x.ravel())).numpy()
    approx = gt.hessian_by_differences(gradient, x)
    assert np.abs(approx - exact).max() < 1e-5 * np.abs(exact).max()


def test_soft_modes_leave_out_rigid_motions_and_sort_by_curvature() -> None:
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(6, 3))
    rigid = gt.rigid_body_basis(xyz)
    assert rigid.shape == (18, 6)
    # a Hessian with known internal curvatures 1..12 and nothing along rigid motions
    internal = np.linalg.qr(np.concatenate([rigid, rng.normal(size=(18, 12))], axis=1))[0][:, 6:]
    curvatures = np.arange(1.0, 13.0) * 10.0
    hessian = internal @ np.diag(curvatures) @ internal.T
    modes, inverse = gt.soft_modes(hessian, xyz, max_modes=5, curvature_floor=15.0)
    assert modes.shape == (5, 18)
    np.testing.assert_allclose(modes @ modes.T, np.eye(5), atol=1e-10)
    assert np.abs(modes @ rigid).max() < 1e-8
    np.testing.assert_allclose(inverse, 1.0 / np.array([15.0, 20.0, 30.0, 40.0, 50.0]))


def test_superposed_deviation_is_the_symmetry_aware_rmsd() -> None:
    from espaloma_like.benchmark.conformers_metrics import best_rmsd

    record = _record("CC(C)(C)O", n=2)  # three equivalent methyls: matching by symmetry matters
    mol = from_smiles("CC(C)(C)O").rdkit_mol
    reference = record.conformations[0]
    moved = record.conformations[1] + np.random.default_rng(1).normal(0.0, 0.01, reference.shape)
    deviation, rmsd = gt.superposed_deviation(mol, reference, moved)
    assert rmsd > 0.005
    assert rmsd == pytest.approx(best_rmsd(mol, reference * 10, moved * 10) / 10, rel=1e-9)
    assert np.sqrt((deviation**2).sum(-1).mean()) == pytest.approx(rmsd, rel=1e-6)
    # rigid motion of the probe changes nothing but the frame
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                         [0, 0, 1]])
    _, turned = gt.superposed_deviation(mol, reference, moved @ rotation.T + 0.3)
    assert turned == pytest.approx(rmsd, rel=1e-6)


def test_target_reproduces_the_minimum_and_predicts_how_it_moves(model, target) -> None:  # type: ignore[no-untyped-def]
    """At the starting parameters the prediction is the minimization's deviation; under a
    small extra gradient the minimum moves where a real OpenMM minimization takes it."""
    from espaloma_like.data.records import record_graph
    from espaloma_like.nn.batch import prepare_molecule
    from espaloma_like.training.loss import GeometryItem, predicted_minimum_rmsd

    record = _record()
    graph = record_graph(record)
    prepared = prepare_molecule(graph, model.config.atom_features, model.config.bond_features)
    gradient = gt._gradient_function(model, prepared)
    order = prepared.to_input
    c = 0
    item = GeometryItem(0, torch.as_tensor(target.offsets[c]),
                        torch.as_tensor(target.modes[c], dtype=torch.float64),
                        torch.as_tensor(target.inverse_curvatures[c]))
    g0 = torch.as_tensor(gradient(target.minima[c][None])[0])
    assert float(predicted_minimum_rmsd(g0, [item])[0]) == pytest.approx(target.rmsd[c] * 10,
                                                                        rel=1e-3)
    # an extra gradient along the softest internal mode, sized to move the minimum 0.02 A
    soft = target.modes[c][0].astype(np.float64)
    push = soft * 0.002 / target.inverse_curvatures[c][0]  # kJ/mol/nm, canonical order
    extra = np.empty((len(order), 3))
    extra[order] = push.reshape(-1, 3)
    start = np.empty_like(extra)
    start[order] = target.minima[c]
    moved = _minimize_with_extra_gradient(model, record, start, extra)
    actual = (moved - start)[order].ravel()
    modes = target.modes[c].astype(np.float64)
    predicted = -modes.T @ (target.inverse_curvatures[c] * (modes @ push))
    assert np.linalg.norm(predicted) == pytest.approx(0.002, rel=1e-6)
    assert np.linalg.norm(actual - predicted) < 0.2 * np.linalg.norm(predicted)


def test_predicted_rmsds_reproduce_the_start_model(model, target) -> None:  # type: ignore[no-untyped-def]
    np.testing.assert_allclose(gt.predicted_rmsds(model, [target]), target.rmsd * 10, rtol=1e-3)


def test_targets_round_trip_and_resume(tmp_path: Path, target) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "targets.h5"
    assert gt.target_names(path) == set()
    assert gt.write_targets(path, [target]) == 1
    second = replace(target, name="other")
    gt.write_targets(path, [second])
    assert gt.target_names(path) == {"mol", "other"}
    back, other = sorted(gt.read_targets(path), key=lambda t: t.name)
    assert other.name == "other"
    assert back.mapped_smiles == target.mapped_smiles
    assert back.split == target.split == "train"
    for field in ("minima", "offsets", "modes", "inverse_curvatures", "rmsd"):
        np.testing.assert_array_equal(getattr(back, field), getattr(target, field))


def test_read_targets_refuses_other_files(tmp_path: Path, target) -> None:  # type: ignore[no-untyped-def]
    import h5py

    not_hdf5 = tmp_path / "x.h5"
    not_hdf5.write_text("no")
    with pytest.raises(DataFormatError, match="not a geometry-targets"):
        list(gt.read_targets(not_hdf5))
    bad = tmp_path / "bad.h5"
    gt.write_targets(bad, [target])
    with h5py.File(bad, "a") as h5:
        del h5["mol/rmsd"]
        h5["mol"].create_dataset("rmsd", data=np.zeros(5))
    with pytest.raises(DataFormatError, match="inconsistent shapes"):
        list(gt.read_targets(bad))


def _training_molecule(model, record: QMRecord):  # type: ignore[no-untyped-def]
    from espaloma_like.training.dataset import load_training_molecules

    return load_training_molecules([_write(record)], model.config)[0]


def _write(record: QMRecord) -> str:
    import tempfile

    from espaloma_like.data.spice import write_spice_hdf5

    path = Path(tempfile.mkdtemp()) / "minima.h5"
    write_spice_hdf5(path, [record])
    return str(path)


def test_attach_refuses_targets_of_other_molecules(model, target) -> None:  # type: ignore[no-untyped-def]
    from espaloma_like.training.dataset import attach_geometry_targets

    molecule = _training_molecule(model, _record())
    (attached,) = attach_geometry_targets([molecule], [target])
    assert attached.geometry is target
    with pytest.raises(TrainingSetupError, match="no molecule of that name"):
        attach_geometry_targets([molecule], [replace(target, name="elsewhere")])
    other = _training_molecule(model, _record("CC(=O)NCCN", name="mol"))
    with pytest.raises(TrainingSetupError, match="does not match"):
        attach_geometry_targets([other], [target])


def test_geometry_loss_trains_through_the_targets(tmp_path: Path, model, target) -> None:  # type: ignore[no-untyped-def]
    from espaloma_like.training.config import DataConfig, LossConfig, TrainConfig
    from espaloma_like.training.dataset import attach_geometry_targets
    from espaloma_like.training.loss import compute_loss, make_batch
    from espaloma_like.training.trainer import Trainer

    molecule = _training_molecule(model, _record())
    (attached,) = attach_geometry_targets([molecule], [target])
    rng = np.random.default_rng(0)
    plain = LossConfig()
    with_geometry = LossConfig(geometry_weight=1.0)
    batch = make_batch([attached], 2, rng)
    assert batch.geometry_xyz is not None and len(batch.geometry) == 1
    loss_plain, _ = compute_loss(model, make_batch([molecule], 2, np.random.default_rng(0)), plain)
    loss, metrics = compute_loss(model, batch, with_geometry)
    assert 0.0 < metrics["geometry_rmsd"] < 5.0
    assert float(loss.detach()) > float(loss_plain.detach())
    model.zero_grad()
    loss.backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.parameters())
    model.zero_grad()

    path = tmp_path / "targets.h5"
    gt.write_targets(path, [target])
    files = (_write(_record()),)
    for data, loss_config in ((DataConfig(train_files=files, geometry_targets=str(path),
                                          validation_fraction=0.0), LossConfig()),
                              (DataConfig(train_files=files, validation_fraction=0.0),
                               LossConfig(geometry_weight=1.0))):
        config = TrainConfig(data=data, loss=loss_config, init_from="default",
                             output_dir=str(tmp_path / "run"), tensorboard=False)
        with pytest.raises(TrainingSetupError, match="go together"):
            Trainer(config, progress=False)
    config = TrainConfig(data=DataConfig(train_files=files, geometry_targets=str(path),
                                         validation_fraction=0.0, batch_molecules=1,
                                         conformations_per_molecule=2),
                         loss=with_geometry, init_from="default", max_steps=2,
                         output_dir=str(tmp_path / "run"), tensorboard=False)
    trainer = Trainer(config, progress=False)
    assert trainer.train_set[0].geometry is not None
    assert "geometry_rmsd" in trainer.train_step()


def test_validation_targets_enter_the_validation_metrics(tmp_path: Path, model, target) -> None:  # type: ignore[no-untyped-def]
    from espaloma_like.training.config import DataConfig, LossConfig, TrainConfig
    from espaloma_like.training.trainer import Trainer

    validation_record = _record("OCCNC(=O)C", name="val", n=1, seed=3)
    path = tmp_path / "targets.h5"
    gt.write_targets(path, [target, gt.build_target(model, validation_record, [0])])
    config = TrainConfig(data=DataConfig(train_files=("unused.h5",), geometry_targets=str(path),
                                         batch_molecules=1, conformations_per_molecule=2),
                         loss=LossConfig(geometry_weight=1.0), init_from="default",
                         output_dir=str(tmp_path / "run"), tensorboard=False)
    trainer = Trainer(config, train=[_training_molecule(model, _record())],
                      validation=[_training_molecule(model, validation_record)], progress=False)
    assert trainer.validation_set[0].geometry is not None
    metrics = trainer.evaluate(trainer.validation_set, n_conformations=2)
    assert 0.0 < metrics["geometry_rmsd"] < 5.0


def test_score_script_reports_each_split(tmp_path: Path, model, target) -> None:  # type: ignore[no-untyped-def]
    import json

    module = load_script(Path(__file__).parents[1] / "training" / "score_geometry_targets.py")
    path = tmp_path / "targets.h5"
    gt.write_targets(path, [target, replace(target, name="v", split="validation")])
    out = tmp_path / "scores.json"
    assert module.main([str(path), "default", "--out", str(out)]) == 0
    scores = json.loads(out.read_text())["models"]["default"]
    for split in ("train", "validation"):
        assert scores[split]["n_conformations"] == 2
        assert scores[split]["median"] == pytest.approx(float(np.median(target.rmsd)) * 10, rel=1e-3)
    assert "| default |" in out.with_suffix(".md").read_text()
