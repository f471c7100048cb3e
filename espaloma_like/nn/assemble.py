"""Model output -> :class:`~espaloma_like.parameters.ParameterSet` (batched or per molecule)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from espaloma_like.nn.batch import GraphBatch, PreparedMolecule
from espaloma_like.nn.model import PredictedParameters
from espaloma_like.parameters import NonbondedParameters, ParameterSet
from espaloma_like.termkinds import assemble, get_kind

COULOMB_14_SCALE = 0.8333333333  # Sage / Amber
LJ_14_SCALE = 0.5


def batch_parameter_set(batch: GraphBatch, predicted: PredictedParameters,
                        atomic_numbers: np.ndarray | None = None) -> ParameterSet:
    """One ParameterSet for the whole batch (canonical, offset indices), keeping gradients.

    Use with :func:`espaloma_like.mm.energy_terms` and ``atom_molecule=batch.atom_molecule``.
    """
    n = batch.atom_features.shape[0]
    dtype = predicted.bonds.k.dtype
    nonbonded = NonbondedParameters(
        charges=predicted.charges.to(dtype), sigma=batch.sigma.to(dtype),
        epsilon=batch.epsilon.to(dtype), pairs_full=batch.pairs_full,
        pairs_14=batch.pairs_14, exclusions=batch.exclusions,
        coulomb_14_scale=COULOMB_14_SCALE, lj_14_scale=LJ_14_SCALE,
    )
    return assemble(atomic_numbers if atomic_numbers is not None else np.zeros(n, np.int64),
                    predicted.blocks, nonbonded, {"method": "espaloma_like"})


def _input_order_pairs(molecule: PreparedMolecule, name: str) -> torch.Tensor:
    rows = np.sort(molecule.to_input[getattr(molecule.terms, name)], axis=1)
    order = np.lexsort((rows[:, 1], rows[:, 0])) if len(rows) else slice(None)
    return torch.as_tensor(rows[order])


def _molecule_parameter_set(
    molecule: PreparedMolecule, blocks: Mapping[str, Any], charges: torch.Tensor,
    provenance: dict[str, str],
) -> ParameterSet:
    """One molecule's ParameterSet in input atom order from its canonical-order blocks."""
    f64 = torch.float64
    to_input = molecule.to_input
    to_canonical = np.argsort(to_input)
    selected = {}
    canonical: dict[tuple[str, Any], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name, block in blocks.items():
        kind = get_kind(name)
        key = (kind.terms, kind.permutations)
        if key not in canonical:
            # the molecule's terms renumbered to input atoms, re-oriented to canonical form, sorted
            canonical[key] = kind.canonicalize(to_input[kind.enumerate(molecule.terms)])
        selected[name] = kind.select(block, *canonical[key])
    input_charges = torch.empty_like(charges)
    input_charges[torch.as_tensor(to_input)] = charges
    nonbonded = NonbondedParameters(
        charges=input_charges,
        sigma=torch.as_tensor(molecule.sigma[to_canonical], dtype=f64),
        epsilon=torch.as_tensor(molecule.epsilon[to_canonical], dtype=f64),
        pairs_full=_input_order_pairs(molecule, "pairs_full"),
        pairs_14=_input_order_pairs(molecule, "pairs_14"),
        exclusions=_input_order_pairs(molecule, "exclusions"),
        coulomb_14_scale=COULOMB_14_SCALE, lj_14_scale=LJ_14_SCALE,
    )
    return assemble(molecule.graph.atomic_numbers.copy(), selected, nonbonded, dict(provenance))


def split_parameter_sets(
    batch: GraphBatch, predicted: PredictedParameters, prepared: Sequence[PreparedMolecule],
    provenance: dict[str, str] | None = None,
) -> list[ParameterSet]:
    """Per-molecule ParameterSets in each molecule's *input* atom order, float64, detached."""
    blocks: dict[str, Any] = {}
    for name, block in predicted.blocks.items():
        blocks[name] = block.detach().to("cpu", torch.float64)
    # derived fields (Urey-Bradley rest lengths, improper phases) at the export precision
    for name in list(blocks):
        blocks[name] = get_kind(name).finalize(blocks[name], blocks)
    charges = predicted.charges.detach().to("cpu", torch.float64)
    out = []
    for m, molecule in enumerate(prepared):
        own = {}
        for name, block in blocks.items():
            kind = get_kind(name)
            offsets = batch.term_offsets[kind.terms]
            own[name] = kind.slice(block, offsets[m], offsets[m + 1])
        out.append(_molecule_parameter_set(
            molecule, own, charges[batch.atom_offsets[m] : batch.atom_offsets[m + 1]],
            provenance or {"method": "espaloma_like"}))
    return out
