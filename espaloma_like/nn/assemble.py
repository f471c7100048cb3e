"""Model output -> :class:`~espaloma_like.parameters.ParameterSet` (batched or per molecule)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from espaloma_like.nn.batch import GraphBatch, PreparedMolecule
from espaloma_like.nn.model import PredictedParameters
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
        angles=AngleParameters(batch.angles, predicted.angle_k, predicted.angle),
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
        flip = indices[:, 0] > indices[:, -1]
        if kind == "propers":
            # (i, j, k, l) < (l, k, j, i) lexicographically
            forward = [tuple(r) for r in indices.tolist()]
            flip = np.array([f > f[::-1] for f in forward], dtype=bool)
        rows = np.where(flip[:, None], indices[:, ::-1], indices)
    else:  # impropers: rotate the outer atoms cyclically so the smallest comes first
        rows = indices.copy()
        for r in range(len(rows)):
            outer = rows[r, 1:].tolist()
            start = outer.index(min(outer))
            rows[r, 1:] = outer[start:] + outer[:start]
    order = np.lexsort(rows.T[::-1]) if len(rows) else np.zeros(0, np.int64)
    return rows[order], order


def split_parameter_sets(
    batch: GraphBatch, predicted: PredictedParameters, prepared: Sequence[PreparedMolecule],
    provenance: dict[str, str] | None = None,
) -> list[ParameterSet]:
    """Per-molecule ParameterSets in each molecule's *input* atom order, float64, detached."""
    out = []
    f64 = torch.float64
    p = {k: v.detach().to("cpu", f64) for k, v in vars(predicted).items()}
    for m, molecule in enumerate(prepared):
        start = batch.atom_offsets[m]
        to_input = molecule.to_input

        def block(name: str, m: int = m) -> slice:
            offsets = batch.term_offsets[name]
            return slice(offsets[m], offsets[m + 1])

        def mapped(name: str, start: int = start, to_input: np.ndarray = to_input) -> tuple[np.ndarray, np.ndarray]:
            local = getattr(molecule.terms, name)
            return _canonical_rows(to_input[local], name)

        def per_atom(values: torch.Tensor, to_input: np.ndarray = to_input) -> torch.Tensor:
            out_ = torch.empty_like(values)
            out_[torch.as_tensor(to_input)] = values
            return out_

        bonds, b_order = mapped("bonds")
        angles, a_order = mapped("angles")
        propers, p_order = mapped("propers")
        impropers, i_order = mapped("impropers")
        b, a, t, i = block("bonds"), block("angles"), block("propers"), block("impropers")
        atoms = slice(start, batch.atom_offsets[m + 1])
        improper_k = p["improper_k"][i][i_order]
        graph = molecule.graph

        def pairs(name: str, to_input: np.ndarray = to_input) -> torch.Tensor:
            rows = np.sort(to_input[getattr(molecule.terms, name)], axis=1)
            order = np.lexsort((rows[:, 1], rows[:, 0])) if len(rows) else slice(None)
            return torch.as_tensor(rows[order])
        out.append(ParameterSet(
            atomic_numbers=graph.atomic_numbers.copy(),
            bonds=BondParameters(torch.as_tensor(bonds), p["bond_k"][b][b_order],
                                 p["bond_length"][b][b_order]),
            angles=AngleParameters(torch.as_tensor(angles), p["angle_k"][a][a_order],
                                   p["angle"][a][a_order]),
            propers=TorsionParameters(torch.as_tensor(propers), p["proper_k"][t][p_order],
                                      torch.zeros_like(p["proper_k"][t])),
            impropers=TorsionParameters(torch.as_tensor(impropers), improper_k,
                                        _improper_phase(improper_k), trefoil=True),
            nonbonded=NonbondedParameters(
                charges=per_atom(p["charges"][atoms]),
                sigma=torch.as_tensor(molecule.sigma[np.argsort(to_input)], dtype=f64),
                epsilon=torch.as_tensor(molecule.epsilon[np.argsort(to_input)], dtype=f64),
                pairs_full=pairs("pairs_full"),
                pairs_14=pairs("pairs_14"),
                exclusions=pairs("exclusions"),
                coulomb_14_scale=COULOMB_14_SCALE, lj_14_scale=LJ_14_SCALE,
            ),
            provenance=dict(provenance or {"method": "espaloma_like"}),
        ))
    return out
