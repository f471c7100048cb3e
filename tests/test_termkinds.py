"""The term-kind registry: one home per kind, iterated by the model, the energy and the exporters."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import DIVERSE_SMILES

from espaloma_like.molecule import from_smiles
from espaloma_like.nn.model import ModelConfig, ParameterModel
from espaloma_like.termkinds import (
    COMPONENTS,
    CORE_KINDS,
    FORCE_GROUPS,
    OPTIONAL_KINDS,
    TERM_KINDS,
    get_kind,
    model_kinds,
)
from espaloma_like.termkinds.base import canonical_rows
from espaloma_like.terms import enumerate_terms


def test_core_kinds_and_their_checkpoint_names_are_fixed() -> None:
    """Readout names are the keys of checkpoint weights: a shipped model must keep loading."""
    assert [k.name for k in CORE_KINDS] == ["bonds", "angles", "propers", "impropers"]
    readouts = {k.name: k.readout.module for k in TERM_KINDS.values() if k.readout is not None}
    assert readouts["bonds"] == "bond_readout" and readouts["angles"] == "angle_readout"
    assert readouts["propers"] == "proper_readout" and readouts["impropers"] == "improper_readout"
    assert readouts["urey_bradley"] == "urey_bradley_readout"
    for kind in TERM_KINDS.values():
        if kind.component in ("lj", "coulomb"):  # nonbonded corrections: the NonbondedForce's group
            assert kind.force_group == FORCE_GROUPS["nonbonded"]
        else:
            assert kind.component in COMPONENTS[:4] and kind.force_group == FORCE_GROUPS[kind.component]
        assert kind.permutations[0] == tuple(range(kind.arity))
        assert all(sorted(p) == list(range(kind.arity)) for p in kind.permutations)
        assert all(f.unit for f in kind.fields)


def test_model_readouts_follow_the_registry() -> None:
    plain = ParameterModel(ModelConfig(hidden=8, n_layers=1, readout_hidden=8))
    assert list(plain.readouts()) == ["bonds", "angles", "propers", "impropers"]
    ub = ParameterModel(ModelConfig(hidden=8, n_layers=1, readout_hidden=8, urey_bradley=True))
    assert list(ub.readouts()) == ["bonds", "angles", "propers", "impropers", "urey_bradley"]
    assert [k.name for k in model_kinds(ub.config)] == list(ub.readouts())
    prefixes = {key.split(".")[0] for key in ub.state_dict()}
    assert {"bond_readout", "angle_readout", "proper_readout", "improper_readout",
            "urey_bradley_readout", "charge_readout"} <= prefixes


def test_the_shipped_model_loads_strictly() -> None:
    from espaloma_like.nn.checkpoint import load_checkpoint, read_torch_file, resolve_model_path

    payload = read_torch_file(resolve_model_path("default"))
    model, _ = load_checkpoint("default")  # load_state_dict(strict=True) inside
    assert set(model.state_dict()) == set(payload["state_dict"])


@pytest.mark.parametrize("smiles", DIVERSE_SMILES)
def test_enumerated_terms_are_canonical_under_each_kind_symmetry(smiles: str) -> None:
    terms = enumerate_terms(from_smiles(smiles))
    for kind in TERM_KINDS.values():
        rows = kind.enumerate(terms)
        canonical, order, _ = kind.canonicalize(rows)
        assert np.array_equal(canonical, rows), kind.name
        assert np.array_equal(order, np.arange(len(rows))), kind.name


def test_canonical_rows_picks_the_smallest_ordering_and_says_which() -> None:
    rows = np.array([[5, 1, 2], [0, 4, 3], [7, 6, 1]])
    canonical, order, chosen = canonical_rows(rows, ((0, 1, 2), (2, 1, 0)))
    assert canonical.tolist() == [[0, 4, 3], [1, 6, 7], [2, 1, 5]]
    assert order.tolist() == [1, 2, 0] and chosen.tolist() == [0, 1, 1]
    impropers = np.array([[0, 3, 1, 2], [4, 7, 5, 6]])
    canonical, _, chosen = canonical_rows(impropers, get_kind("impropers").permutations)
    assert canonical.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]] and chosen.tolist() == [1, 1]
    # a 3-ring proper (i == l): the middle pair decides
    canonical, _, _ = canonical_rows(np.array([[2, 3, 1, 2]]), get_kind("propers").permutations)
    assert canonical.tolist() == [[2, 1, 3, 2]]


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(KeyError, match="known"):
        get_kind("cmap")
    with pytest.raises(ValueError, match="optional term kinds"):
        ModelConfig(extra_terms=("cmap",))
    with pytest.raises(ValueError, match="optional term kinds"):
        ModelConfig(extra_terms=("urey_bradley",))  # switched by its own flag
    for kind in OPTIONAL_KINDS:
        config = kind.switch(ModelConfig(), True)
        assert kind.enabled(config) and not kind.enabled(kind.switch(config, False))


def test_predicted_blocks_come_in_registry_order_with_batch_indices() -> None:
    from espaloma_like.nn.batch import collate, prepare_molecule

    config = ModelConfig(hidden=8, n_layers=1, readout_hidden=8, urey_bradley=True)
    model = ParameterModel(config).double().eval()
    batch = collate([prepare_molecule(from_smiles(s), config.atom_features, config.bond_features)
                     for s in ("CCO", "c1ccncc1")]).to(dtype=torch.float64)
    predicted = model(batch)
    assert list(predicted.blocks) == [k.name for k in model_kinds(config)]
    for name, block in predicted.blocks.items():
        assert block.indices is getattr(batch, get_kind(name).terms)


def test_importing_the_registry_is_cheap() -> None:
    code = ("import sys, espaloma_like.termkinds, espaloma_like.export.openmm_system, "
            "espaloma_like.export.ffxml; "
            "print(sorted(m for m in ('torch', 'openmm', 'rdkit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
