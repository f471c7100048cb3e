"""Fit the model to a reference force field (Sage) from random weights.

This proves the network can express a real force field before any QM enters: the loss is the
normalised squared error of every bonded parameter against OpenFF Sage 2.2.1 (torsions in the
signed-k, phase-0 form; impropers as the n = 2 constant, zero where Sage has none) plus charges
against a reference charge model. Held-out molecules are then compared by *energy*: the valence
energy (bonds, angles, torsions, impropers) of model and Sage parameters on the same strained
conformations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from espaloma_like.molecule import MoleculeGraph, generate_conformers
from espaloma_like.nn.batch import PreparedMolecule, collate, prepare_molecule
from espaloma_like.nn.model import ModelConfig, ParameterModel
from espaloma_like.termkinds.base import as_array


@dataclass(frozen=True)
class ReferenceTargets:
    """Reference parameters aligned with a PreparedMolecule's canonical terms (OpenMM units)."""

    bond_k: np.ndarray
    bond_length: np.ndarray
    angle_k: np.ndarray
    angle: np.ndarray
    proper_k: np.ndarray  # (P, 6) signed, phase 0
    improper_k: np.ndarray  # (I,) n = 2 constant (phase pi), total over the trefoil
    charges: np.ndarray | None


def mmff_charges(graph: MoleculeGraph) -> np.ndarray:
    """MMFF94 partial charges (N,), e, from RDKit (fast bond-charge-increment charges)."""
    from rdkit.Chem import rdForceFieldHelpers

    properties = rdForceFieldHelpers.MMFFGetMoleculeProperties(graph.rdkit_mol)
    if properties is None:
        raise ValueError(f"MMFF94 cannot type {graph.name!r}")
    return np.asarray(
        [properties.GetMMFFPartialCharge(i) for i in range(graph.n_atoms)], dtype=np.float64
    )


def sage_targets(prepared: PreparedMolecule,
                 charge_model: Callable[[MoleculeGraph], np.ndarray] | None = mmff_charges
                 ) -> ReferenceTargets:
    """Sage parameters of ``prepared.graph`` in the canonical term order of ``prepared``."""
    from espaloma_like.baselines.sage_labels import sage_parameters

    graph = prepared.graph
    reference = sage_parameters(graph, np.zeros(graph.n_atoms))
    to_input = prepared.to_input

    def lookup(indices: Any) -> dict[tuple[int, ...], int]:
        rows = as_array(indices)
        return {tuple(r): n for n, r in enumerate(rows.reshape(-1, rows.shape[-1]).tolist())}

    bonds = lookup(reference.bonds.indices)
    bond_rows = [bonds[tuple(sorted(to_input[b].tolist()))] for b in prepared.terms.bonds]
    angles = lookup(reference.angles.indices)
    angle_rows = []
    for a in prepared.terms.angles:
        i, j, k = to_input[a].tolist()
        angle_rows.append(angles[(min(i, k), j, max(i, k))])
    propers = lookup(reference.propers.indices)
    proper_rows = []
    for p in prepared.terms.propers:
        t = tuple(to_input[p].tolist())
        proper_rows.append(propers[min(t, t[::-1])])
    proper_k, proper_phase = as_array(reference.propers.k), as_array(reference.propers.phase)
    signed = proper_k * np.where(np.isclose(proper_phase, math.pi), -1.0, 1.0)
    improper_by_centre = {
        int(row[0]): float(k[1])
        for row, k in zip(as_array(reference.impropers.indices), as_array(reference.impropers.k),
                          strict=True)
    }
    improper_k = np.array(
        [improper_by_centre.get(int(to_input[i[0]]), 0.0) for i in prepared.terms.impropers]
    )
    charges = charge_model(graph)[to_input] if charge_model is not None else None
    return ReferenceTargets(
        bond_k=as_array(reference.bonds.k)[bond_rows],
        bond_length=as_array(reference.bonds.length)[bond_rows],
        angle_k=as_array(reference.angles.k)[angle_rows],
        angle=as_array(reference.angles.angle)[angle_rows],
        proper_k=signed[proper_rows].reshape(-1, 6),
        improper_k=improper_k,
        charges=charges,
    )


def _cat(targets: Sequence[ReferenceTargets], name: str) -> torch.Tensor:
    return torch.as_tensor(np.concatenate([getattr(t, name) for t in targets]), dtype=torch.float32)


def parameter_loss(model: ParameterModel, prepared: Sequence[PreparedMolecule],
                   targets: Sequence[ReferenceTargets]) -> tuple[torch.Tensor, dict[str, float]]:
    """Normalised squared parameter errors, summed over term types."""
    stats = model.config.heads
    predicted = model(collate(prepared))
    b, a = predicted.bonds, predicted.angles
    parts = {
        "bond_k": ((b.k - _cat(targets, "bond_k")) / stats.bond_k) ** 2,
        "bond_length": ((b.length - _cat(targets, "bond_length")) / 0.005) ** 2,
        "angle_k": ((a.k - _cat(targets, "angle_k")) / stats.angle_k) ** 2,
        "angle": ((a.angle - _cat(targets, "angle")) / 0.05) ** 2,
        "proper_k": ((predicted.propers.k - _cat(targets, "proper_k")) / stats.proper_k) ** 2,
        "improper_k": ((predicted.impropers.k[:, 1] - _cat(targets, "improper_k")) / stats.improper_k) ** 2,
    }
    if all(t.charges is not None for t in targets):
        parts["charges"] = ((predicted.charges.float() - _cat(targets, "charges")) / 0.05) ** 2
    means = {k: v.mean() for k, v in parts.items()}
    loss = torch.stack(list(means.values())).sum()
    return loss, {k: float(v.detach()) for k, v in means.items()}


@dataclass(frozen=True)
class FitResult:
    model: ParameterModel
    history: list[dict[str, float]]
    seconds: float


def fit_to_reference(
    train: Sequence[PreparedMolecule], targets: Sequence[ReferenceTargets],
    config: ModelConfig | None = None, seconds: float = 180.0, max_epochs: int = 1000,
    batch_size: int = 32, learning_rate: float = 2e-3, seed: int = 0,
    progress: Callable[[dict[str, float]], Any] | None = None,
) -> FitResult:
    """Train a fresh model on parameter targets for a wall-time budget (CPU)."""
    torch.manual_seed(seed)
    model = ParameterModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-5)
    rng = np.random.default_rng(seed)
    history = []
    start = time.perf_counter()
    epoch = 0
    while epoch < max_epochs and time.perf_counter() - start < seconds:
        order = rng.permutation(len(train))
        losses = []
        for b in range(0, len(order), batch_size):
            chosen = order[b : b + batch_size]
            loss, _ = parameter_loss(model, [train[i] for i in chosen], [targets[i] for i in chosen])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            losses.append(float(loss.detach()))
        epoch += 1
        record = {"epoch": float(epoch), "loss": float(np.mean(losses)),
                  "seconds": time.perf_counter() - start}
        history.append(record)
        if progress is not None:
            progress(record)
    model.eval()
    return FitResult(model, history, time.perf_counter() - start)


def valence_energy_comparison(
    model: ParameterModel, graphs: Sequence[MoleculeGraph], n_conformers: int = 5,
    noise_nm: float = 0.01, seed: int = 0,
) -> dict[str, float]:
    """Valence energies of the model vs Sage on strained ETKDG conformers of ``graphs``.

    Returns RMSE of per-molecule mean-centred energies (kJ/mol), their Pearson r, the RMSE of
    valence forces (kJ/mol/nm), and the same RMSEs of Sage against its own mean (the scale).
    """
    from espaloma_like.api import parametrize
    from espaloma_like.baselines.sage_labels import sage_parameters
    from espaloma_like.mm.energy import energy_terms

    rng = np.random.default_rng(seed)
    e_model: list[np.ndarray] = []
    e_sage: list[np.ndarray] = []
    f_err: list[np.ndarray] = []
    f_ref: list[np.ndarray] = []
    for graph in graphs:
        try:
            xyz = generate_conformers(graph, n_conformers, seed=seed, allow_undefined_stereo=True)
        except Exception:
            continue
        xyz = xyz + rng.normal(0.0, noise_nm, xyz.shape)
        ours = parametrize(graph, model=model).parameters
        sage = sage_parameters(graph, np.zeros(graph.n_atoms))
        for params, store, forces in ((ours, e_model, f_err), (sage, e_sage, f_ref)):
            x = torch.tensor(xyz, requires_grad=True)
            terms = energy_terms(params, x)
            valence = terms.bond + terms.angle + terms.proper + terms.improper
            (grad,) = torch.autograd.grad(valence.sum(), x)
            centred = (valence - valence.mean()).detach().numpy()
            store.append(centred)
            forces.append(-grad.numpy())
    em, es = np.concatenate(e_model), np.concatenate(e_sage)
    fm = np.concatenate([f.reshape(-1) for f in f_err])
    fs = np.concatenate([f.reshape(-1) for f in f_ref])
    return {
        "n_molecules": float(len(e_model)),
        "energy_rmse_kj_mol": float(np.sqrt(np.mean((em - es) ** 2))),
        "energy_pearson_r": float(np.corrcoef(em, es)[0, 1]),
        "sage_energy_std_kj_mol": float(np.std(es)),
        "force_rmse_kj_mol_nm": float(np.sqrt(np.mean((fm - fs) ** 2))),
        "sage_force_rms_kj_mol_nm": float(np.sqrt(np.mean(fs**2))),
    }


def prepare_all(
    graphs: Sequence[MoleculeGraph], config: ModelConfig
) -> tuple[list[PreparedMolecule], list[ReferenceTargets], list[str]]:
    """Prepare molecules and Sage targets, skipping (and naming) the ones that fail."""
    prepared, targets, skipped = [], [], []
    for graph in graphs:
        try:
            p = prepare_molecule(graph, config.atom_features, config.bond_features)
            targets.append(sage_targets(p))
            prepared.append(p)
        except Exception as err:  # a reference that cannot type a molecule is skipped, named
            skipped.append(f"{graph.name}: {type(err).__name__}: {err}")
    return prepared, targets, skipped
