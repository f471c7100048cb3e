"""The prior that anchors force constants and unlabelled charges to the starting model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from espaloma_like.molecule import from_smiles
from espaloma_like.nn.batch import collate, prepare_molecule
from espaloma_like.nn.model import ModelConfig, ParameterModel
from espaloma_like.training.loss import prior_deviation

CONFIG = ModelConfig(hidden=16, n_layers=1, readout_hidden=16, urey_bradley=True)


def _turn_side(xyz: np.ndarray, j: int, k: int, side: np.ndarray, angle: float) -> np.ndarray:
    """``xyz`` (N, 3) with the atoms ``side`` turned rigidly by ``angle`` (rad) about bond j-k."""
    u = (xyz[k] - xyz[j]) / np.linalg.norm(xyz[k] - xyz[j])
    c, s = np.cos(angle), np.sin(angle)
    r = xyz[side] - xyz[k]
    moved = xyz.copy()
    moved[side] = xyz[k] + r * c + np.cross(u, r) * s + np.outer(r @ u, u) * (1 - c)
    return moved


def _predicted() -> tuple[ParameterModel, object]:
    torch.manual_seed(0)
    model = ParameterModel(CONFIG)
    graph = collate([prepare_molecule(from_smiles("CC(=O)Nc1ccc(O)cc1"), CONFIG.atom_features,
                                      CONFIG.bond_features)])
    with torch.no_grad():
        return model, model(graph)


def test_prior_is_zero_at_the_reference_and_counts_each_deviation() -> None:
    model, predicted = _predicted()
    stats = model.config.heads
    n = predicted.charges.shape[0]
    labelled = torch.ones(n, dtype=torch.bool)
    assert float(prior_deviation(predicted, predicted, stats, labelled)) == 0.0
    softer = predicted.replace_block("bonds", k=predicted.bonds.k * 0.5)  # every bond 50 % softer
    assert float(prior_deviation(softer, predicted, stats, labelled)) == pytest.approx(0.25)
    # equilibrium values are free
    moved = (predicted.replace_block("bonds", length=predicted.bonds.length * 1.05)
             .replace_block("angles", angle=predicted.angles.angle * 0.9))
    assert float(prior_deviation(moved, predicted, stats, labelled)) == 0.0
    # charges count only where there is no charge label
    shifted = replace(predicted, charges=predicted.charges + 0.05)
    assert float(prior_deviation(shifted, predicted, stats, labelled)) == 0.0
    assert float(prior_deviation(shifted, predicted, stats, ~labelled)) == pytest.approx(1.0)


def test_prior_leaves_excluded_kinds_free() -> None:
    model, predicted = _predicted()
    stats = model.config.heads
    labelled = torch.ones(predicted.charges.shape[0], dtype=torch.bool)
    doubled = predicted.replace_block("propers", k=predicted.propers.k * 2.0 + 0.1)
    assert float(prior_deviation(doubled, predicted, stats, labelled)) > 0.0
    assert float(prior_deviation(doubled, predicted, stats, labelled, exclude=("propers",))) == 0.0
    softer = doubled.replace_block("bonds", k=predicted.bonds.k * 0.5)  # the others still count
    assert float(prior_deviation(softer, predicted, stats, labelled,
                                 exclude=("propers",))) == pytest.approx(0.25)


def test_prior_exclude_refuses_unknown_kinds(tmp_path: object) -> None:
    from espaloma_like.exceptions import TrainingSetupError
    from espaloma_like.training.config import DataConfig, LossConfig, TrainConfig
    from espaloma_like.training.trainer import Trainer

    config = TrainConfig(data=DataConfig(train_files=("unused.h5",)), model=CONFIG,
                         loss=LossConfig(prior_weight=1.0, prior_exclude=("proper",)),
                         output_dir=str(tmp_path), tensorboard=False)
    with pytest.raises(TrainingSetupError, match=r"prior_exclude.*'proper'.*propers"):
        Trainer(config, train=[], validation=[], progress=False)


def test_prior_weight_needs_the_reference_model() -> None:
    from espaloma_like.training.config import LossConfig
    from espaloma_like.training.dataset import TrainingMolecule
    from espaloma_like.training.loss import compute_loss, make_batch

    graph = from_smiles("CCO")
    prepared = prepare_molecule(graph, CONFIG.atom_features, CONFIG.bond_features)
    rng = np.random.default_rng(0)
    xyz = rng.normal(scale=0.1, size=(3, graph.n_atoms, 3))
    molecule = TrainingMolecule(prepared, xyz, rng.normal(size=3), np.zeros_like(xyz), None,
                                "ethanol", "", "train")
    batch = make_batch([molecule], 3, rng)
    torch.manual_seed(0)
    model = ParameterModel(CONFIG)
    with pytest.raises(ValueError, match="reference"):
        compute_loss(model, batch, LossConfig(prior_weight=1.0), create_graph=False)
    _, metrics = compute_loss(model, batch, LossConfig(prior_weight=1.0), create_graph=False,
                              reference_model=model)
    assert metrics["prior"] == 0.0


@pytest.mark.parametrize("terminal", [False, True])
def test_rotor_torque_is_minus_the_energy_derivative_along_the_rotation(terminal: bool) -> None:
    from espaloma_like.api import parametrize
    from espaloma_like.molecule import generate_conformers
    from espaloma_like.training.dataset import rotors
    from espaloma_like.training.evaluate import mm_energies_forces
    from espaloma_like.training.loss import rotor_torques

    graph = from_smiles("C[C@@H](O)CC(=O)[O-]")
    prepared = prepare_molecule(graph, CONFIG.atom_features, CONFIG.bond_features)
    axes, members = rotors(prepared, terminal=terminal)
    # C-C-C-C and C-C-C(=O)O; the terminal methyl and hydroxyl rotors only when asked for
    assert len(axes) == (4 if terminal else 2)
    if terminal:  # a terminal rotor turns its axis atom and the terminal atoms alone
        sizes = sorted(int((members[:, 0] == t).sum()) for t in (2, 3))  # after the others
        assert sizes == [2, 4]  # O + H, C + 3 H
    # canonical order throughout
    xyz = generate_conformers(graph, 1)[0][prepared.to_input]
    parameters = parametrize(graph).parameters
    order = prepared.to_input

    def energy(x: np.ndarray) -> float:
        back = np.empty_like(x)
        back[order] = x
        return float(mm_energies_forces(parameters, back[None])[0][0])

    back = np.empty_like(xyz)
    back[order] = xyz
    forces = mm_energies_forces(parameters, back[None])[1][0][order]
    torques = rotor_torques(torch.as_tensor(xyz[None]), torch.as_tensor(forces[None]),
                            torch.as_tensor(axes), torch.as_tensor(members))[0].numpy()
    for t, (j, k) in enumerate(axes):
        side = members[members[:, 0] == t, 1]
        h = 1e-4
        derivative = (energy(_turn_side(xyz, j, k, side, h))
                      - energy(_turn_side(xyz, j, k, side, -h))) / (2 * h)
        assert torques[t] == pytest.approx(-derivative, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize(("smiles", "expected"), [
    ("CO", {frozenset({0, 1})}),                      # both ends terminal: one bond, twice
    ("OCC[NH3+]", {frozenset({0, 1}), frozenset({2, 3})}),
    ("FC(F)(F)c1ccccc1", {frozenset({1, 4})}),         # -CF3 on a ring
    ("Oc1ccccc1", {frozenset({0, 1})}),
    ("CCC", {frozenset({0, 1}), frozenset({1, 2})}),
    ("O", set()), ("C#N", set()),                     # no dihedral about these
])
def test_terminal_rotor_bonds(smiles: str, expected: set[frozenset[int]]) -> None:
    from espaloma_like.training.dataset import terminal_rotor_bonds

    found = terminal_rotor_bonds(from_smiles(smiles))
    assert {frozenset(b) for b in found} == expected
    for j, k in found:  # k is the end that carries only terminal atoms
        atom = from_smiles(smiles).rdkit_mol.GetAtomWithIdx(k)
        assert all(n.GetDegree() == 1 for n in atom.GetNeighbors() if n.GetIdx() != j)


def test_rotor_stiffness_is_the_curvature_of_the_torsion_energy_along_the_rotation() -> None:
    from espaloma_like.api import parametrize
    from espaloma_like.molecule import generate_conformers
    from espaloma_like.termkinds.propers import periodic_torsion_energy
    from espaloma_like.training.dataset import rotors
    from espaloma_like.training.loss import rotor_stiffness

    graph = from_smiles("C[C@@H](O)CC(=O)[O-]")
    prepared = prepare_molecule(graph, CONFIG.atom_features, CONFIG.bond_features)
    axes, members = rotors(prepared, terminal=True)
    order = prepared.to_input
    axes, members = order[axes], np.column_stack([members[:, 0], order[members[:, 1]]])
    xyz = generate_conformers(graph, 1)[0]  # input order throughout
    propers = parametrize(graph).parameters.propers.to(dtype=torch.float64)
    stiffness = rotor_stiffness(torch.as_tensor(xyz[None]), propers, torch.as_tensor(axes))[0]

    def energy(x: np.ndarray) -> float:
        return float(periodic_torsion_energy(torch.as_tensor(x[None]), propers.indices,
                                             propers.k, propers.phase).sum())

    assert len(axes) == 4
    assert float(stiffness.abs().max()) > 0.1  # not trivially zero
    for t, (j, k) in enumerate(axes):
        side = members[members[:, 0] == t, 1]
        h = 1e-3
        curvature = (energy(_turn_side(xyz, j, k, side, h)) - 2 * energy(xyz)
                     + energy(_turn_side(xyz, j, k, side, -h))) / h**2
        assert float(stiffness[t]) == pytest.approx(curvature, rel=1e-4, abs=1e-3)


def test_torque_stiffness_floor_weighs_only_rotors_stiffer_than_it() -> None:
    from espaloma_like.molecule import generate_conformers
    from espaloma_like.training.config import LossConfig
    from espaloma_like.training.dataset import TrainingMolecule, rotors
    from espaloma_like.training.loss import compute_loss, make_batch

    graph = from_smiles("CCCC(=O)[O-]")
    prepared = prepare_molecule(graph, CONFIG.atom_features, CONFIG.bond_features)
    axes, members = rotors(prepared, terminal=True)
    xyz = np.stack([c[prepared.to_input] for c in generate_conformers(graph, 3)])
    rng = np.random.default_rng(0)
    molecule = TrainingMolecule(prepared, xyz, rng.normal(size=len(xyz)), np.zeros_like(xyz),
                                None, "butanoate", "", "train", rotor_axes=axes,
                                rotor_members=members)
    torch.manual_seed(0)
    model = ParameterModel(CONFIG)

    def loss(floor: float | None) -> float:
        batch = make_batch([molecule], len(xyz), np.random.default_rng(0))
        config = LossConfig(energy_weight=0.0, force_weight=0.0, charge_weight=0.0,
                            torsion_l2=0.0, torque_weight=1.0, torque_stiffness_floor=floor)
        return float(compute_loss(model, batch, config, create_graph=False)[0].detach())

    plain = loss(None)
    assert plain > 0.0
    assert loss(1e6) == pytest.approx(plain, rel=1e-12)  # every rotor softer than the floor
    assert 0.0 < loss(1e-3) < plain  # every rotor stiffer: all weights below one
