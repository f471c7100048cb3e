"""From random weights the model learns Sage: held-out energies track Sage's (issue: FF fit)."""

from __future__ import annotations

import pytest
import torch

from espaloma_like.molecule import iter_molecule_file
from espaloma_like.nn.model import ModelConfig
from espaloma_like.training.reference_fit import (
    fit_to_reference,
    prepare_all,
    valence_energy_comparison,
)


@pytest.mark.slow
def test_fit_to_sage_tracks_held_out_energies() -> None:
    from openff.toolkit.utils import get_data_file_path

    graphs = [g for _, g in iter_molecule_file(get_data_file_path("molecules/MiniDrugBank.sdf"))
              if not isinstance(g, Exception) and g.n_atoms <= 40][:60]
    config = ModelConfig(hidden=48, n_layers=3, readout_hidden=48)
    prepared, targets, _ = prepare_all(graphs, config)
    train, held_out = slice(0, 50), slice(50, None)
    torch.set_num_threads(2)
    fitted = fit_to_reference(prepared[train], targets[train], config, seconds=40.0, seed=0)
    assert fitted.history[-1]["loss"] < 0.2 * fitted.history[0]["loss"]
    untrained = fit_to_reference(prepared[:1], targets[:1], config, seconds=0.0, max_epochs=0).model
    test_graphs = [p.graph for p in prepared[held_out]]
    after = valence_energy_comparison(fitted.model, test_graphs, n_conformers=4, seed=1)
    before = valence_energy_comparison(untrained, test_graphs, n_conformers=4, seed=1)
    assert after["n_molecules"] >= 5
    assert after["energy_rmse_kj_mol"] < 0.5 * before["energy_rmse_kj_mol"]
    assert after["force_rmse_kj_mol_nm"] < 0.5 * before["force_rmse_kj_mol_nm"]
    assert after["energy_pearson_r"] > 0.8
