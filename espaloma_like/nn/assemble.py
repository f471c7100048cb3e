"""Model output -> :class:`~espaloma_like.parameters.ParameterSet` (batched or per molecule)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from espaloma_like.nn.batch import GraphBatch, PreparedMolecule
from espaloma_like.nn.model import PredictedParameters, _outer_distance
from espaloma_like.parameters import (
    AngleParameters,
    BondParameters,
    NonbondedParameters,
    ParameterSet,
    TorsionParameters,
)

COULOMB_14_SCALE = 0.8333333333  # Sage / Amber
LJ_14_SCALE = 0.5


def _improper_phase(k: torch.Tensor) -> torch.Tensor:
    phase = torch.zeros_like(k)
    phase[:, 1] = torch.pi
    return phase


def batch_parameter_set(batch: GraphBatch, predicted: PredictedParameters,
                        atomic_numbers: np.ndarray | None = None) -> ParameterSet:
    """One ParameterSet for the whole batch (canonical, offset indices), keeping gradients.

    Use with :func:`espaloma_like.mm.energy_terms` and ``atom_molecule=batch.atom_molecule``.
    """
    n = batch.atom_features.shape[0]
    dtype = predicted.bond_k.dtype
    return ParameterSet(
        atomic_numbers=atomic_numbers if atomic_numbers is not None else np.zeros(n, np.int64),
        bonds=BondParameters(batch.bonds, predicted.bond_k, predicted.bond_length),
        angles=AngleParameters(batch.angles, predicted.angle_k, predicted.angle,
                               predicted.urey_bradley_k, predicted.urey_bradley_length),
        propers=TorsionParameters(batch.propers, predicted.proper_k,
                                  torch.zeros_like(predicted.proper_k)),
        impropers=TorsionParameters(batch.impropers, predicted.improper_k,
                                    _improper_phase(predicted.improper_k), trefoil=True),
        nonbonded=NonbondedParameters(
            charges=predicted.charges.to(dtype), sigma=batch.sigma.to(dtype),
            epsilon=batch.epsilon.to(dtype), pairs_full=batch.pairs_full,
            pairs_14=batch.pairs_14, exclusions=batch.exclusions,
            coulomb_14_scale=COULOMB_14_SCALE, lj_14_scale=LJ_14_SCALE,
        ),
        provenance={"method": "espaloma_like"},
    )


def _canonical_rows(indices: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Re-orient mapped term rows to canonical form in input numbering; returns rows, order."""
    if kind == "bonds":
        rows = np.sort(indices, axis=1)
    elif kind in ("angles", "propers"):
        # reverse where (i, j, k[, l]) > its reversal lexicographically; the end atoms differ,
        # except in propers of 3-rings (i == l), where the middle pair decides
        first, last = indices[:, 0], indices[:, -1]
        flip = (first > last) | ((first == last) & (indices[:, 1] > indices[:, -2]))
        rows = np.where(flip[:, None], indices[:, ::-1], indices)
    else:  # impropers: rotate the outer atoms cyclically so the smallest comes first
        outer = indices[:, 1:]
        shift = np.argmin(outer, axis=1)
        columns = (shift[:, None] + np.arange(outer.shape[1])) % outer.shape[1]
        rows = np.concatenate([indices[:, :1], np.take_along_axis(outer, columns, axis=1)], axis=1)
    order = np.lexsort(rows.T[::-1]) if len(rows) else np.zeros(0, np.int64)
    return rows[order], order


def _input_order_rows(molecule: PreparedMolecule, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of term ``name`` renumbered to input atoms, canonical form, and their order."""
    return _canonical_rows(molecule.to_input[getattr(molecule.terms, name)], name)


def _input_order_pairs(molecule: PreparedMolecule, name: str) -> torch.Tensor:
    rows = np.sort(molecule.to_input[getattr(molecule.terms, name)], axis=1)
    order = np.lexsort((rows[:, 1], rows[:, 0])) if len(rows) else slice(None)
    return torch.as_tensor(rows[order])


def _molecule_parameter_set(
    molecule: PreparedMolecule, values: dict[str, torch.Tensor], provenance: dict[str, str]
) -> ParameterSet:
    """One molecule's ParameterSet in input atom order from its canonical-order values."""
    f64 = torch.float64
    to_input = molecule.to_input
    to_canonical = np.argsort(to_input)
    bonds, b_order = _input_order_rows(molecule, "bonds")
    angles, a_order = _input_order_rows(molecule, "angles")
    propers, p_order = _input_order_rows(molecule, "propers")
    impropers, i_order = _input_order_rows(molecule, "impropers")
    improper_k = values["improper_k"][i_order]
    proper_k = values["proper_k"][p_order]
    charges = torch.empty_like(values["charges"])
    charges[torch.as_tensor(to_input)] = values["charges"]
    graph = molecule.graph
    return ParameterSet(
        atomic_numbers=graph.atomic_numbers.copy(),
        bonds=BondParameters(torch.as_tensor(bonds), values["bond_k"][b_order],
                             values["bond_length"][b_order]),
        angles=AngleParameters(
            torch.as_tensor(angles), values["angle_k"][a_order], values["angle"][a_order],
            *(values[key][a_order] if key in values else None
              for key in ("urey_bradley_k", "urey_bradley_length"))),
        propers=TorsionParameters(torch.as_tensor(propers), proper_k, torch.zeros_like(proper_k)),
        impropers=TorsionParameters(torch.as_tensor(impropers), improper_k,
                                    _improper_phase(improper_k), trefoil=True),
        nonbonded=NonbondedParameters(
            charges=charges,
            sigma=torch.as_tensor(molecule.sigma[to_canonical], dtype=f64),
            epsilon=torch.as_tensor(molecule.epsilon[to_canonical], dtype=f64),
            pairs_full=_input_order_pairs(molecule, "pairs_full"),
            pairs_14=_input_order_pairs(molecule, "pairs_14"),
            exclusions=_input_order_pairs(molecule, "exclusions"),
            coulomb_14_scale=COULOMB_14_SCALE, lj_14_scale=LJ_14_SCALE,
        ),
        provenance=dict(provenance),
    )


def split_parameter_sets(
    batch: GraphBatch, predicted: PredictedParameters, prepared: Sequence[PreparedMolecule],
    provenance: dict[str, str] | None = None,
) -> list[ParameterSet]:
    """Per-molecule ParameterSets in each molecule's *input* atom order, float64, detached."""
    p = {k: v.detach().to("cpu", torch.float64) for k, v in vars(predicted).items()
         if v is not None}
    if "urey_bradley_length" in p:
        # a derived length: recomputed in float64 so the springs rest exactly where the
        # exported bonds and angles do, whatever precision the network ran in
        p["urey_bradley_length"] = _outer_distance(batch.bonds.cpu(), p["bond_length"],
                                                   batch.angles.cpu(), p["angle"])
    term_of = {"bond_k": "bonds", "bond_length": "bonds", "angle_k": "angles", "angle": "angles",
               "proper_k": "propers", "improper_k": "impropers",
               "urey_bradley_k": "angles", "urey_bradley_length": "angles"}
    out = []
    for m, molecule in enumerate(prepared):
        values = {}
        for key, term in term_of.items():
            if key not in p:
                continue
            offsets = batch.term_offsets[term]
            values[key] = p[key][offsets[m] : offsets[m + 1]]
        values["charges"] = p["charges"][batch.atom_offsets[m] : batch.atom_offsets[m + 1]]
        out.append(_molecule_parameter_set(molecule, values,
                                           provenance or {"method": "espaloma_like"}))
    return out
