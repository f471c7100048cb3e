"""The one registry of parametrization methods, used by the CLI, the evaluation and benchmarks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from espaloma_like.methods import BASELINES, METHOD_NAMES, METHODS, get_method


def test_names_and_the_places_that_dispatch_on_them() -> None:
    from espaloma_like.benchmark import accuracy, conformers, speed
    from espaloma_like.cli import parametrize as cli_parametrize
    from espaloma_like.training import evaluate

    assert METHOD_NAMES == ("model", "sage", "gaff") and BASELINES == ("sage", "gaff")
    assert not METHODS["model"].baseline and all(METHODS[b].baseline for b in BASELINES)
    assert cli_parametrize.METHODS == evaluate.METHODS == accuracy.METHODS == METHOD_NAMES
    assert set(speed.BASELINES) == set(BASELINES)
    assert conformers.BASELINE_LABELS == {"sage": "sage-2.2.1", "gaff": "gaff-2.11"}
    with pytest.raises(ValueError, match="choose from model, sage, gaff"):
        get_method("mmff")


def test_model_and_baseline_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="its own charges"):
        get_method("model").parametrize("CCO", charges=np.zeros(9))
    with pytest.raises(ValueError, match="takes no model"):
        get_method("sage").parametrize("CCO", model="default")


def test_method_parameters_are_what_the_method_functions_give() -> None:
    from espaloma_like.api import parametrize
    from espaloma_like.baselines.sage_labels import sage_parameters
    from espaloma_like.molecule import from_smiles

    graph = from_smiles("CC(=O)[O-]")
    charges = np.full(graph.n_atoms, -1.0 / graph.n_atoms)
    ours = get_method("sage").parameters(graph, charges)
    direct = sage_parameters(graph, charges)
    assert torch.equal(ours.bonds.k, direct.bonds.k) and ours.provenance == direct.provenance
    model = get_method("model").parameters(graph)
    assert torch.equal(model.nonbonded.charges, parametrize(graph).parameters.nonbonded.charges)
