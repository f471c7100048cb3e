"""Model inputs: one prepared molecule, and batches of them (PyG's batching rule).

A molecule is prepared in *canonical atom order* (RDKit canonical ranks, ties broken): the
network always sees the same graph in the same order whatever order the user gave, so the same
molecule in two atom orders gets bit-identical parameters. ``to_input`` maps canonical positions
back to the caller's atom order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like.molecule import MoleculeGraph
from espaloma_like.nn.features import atom_features, bond_features
from espaloma_like.terms import Terms, linear_centres, terms_from_bonds

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class PreparedMolecule:
    """A molecule ready for the network, in canonical order.

    Attributes
    ----------
    graph : MoleculeGraph
        The molecule as given (input atom order).
    to_input : np.ndarray
        (N,) int64: canonical atom ``c`` is input atom ``to_input[c]``.
    atom_features : np.ndarray
        (N, F_atom) float32, canonical order.
    bonds : np.ndarray
        (B, 2) int64 canonical bonds; ``bond_features`` (B, F_bond) float32.
    terms : Terms
        Terms of the canonical graph.
    symmetry_classes : np.ndarray
        (N,) int64 resonance-aware equivalence classes, canonical order.
    total_charge : int
        Net charge, e.
    sigma, epsilon : np.ndarray
        (N,) Sage LJ parameters (nm, kJ/mol), canonical order.
    """

    graph: MoleculeGraph
    to_input: np.ndarray
    atom_features: np.ndarray
    bonds: np.ndarray
    bond_features: np.ndarray
    terms: Terms
    symmetry_classes: np.ndarray
    total_charge: int
    sigma: np.ndarray
    epsilon: np.ndarray

    @property
    def n_atoms(self) -> int:
        return int(self.to_input.shape[0])


def prepare_molecule(
    graph: MoleculeGraph, atom_feature_names: Sequence[str], bond_feature_names: Sequence[str]
) -> PreparedMolecule:
    """Canonicalize, featurize and enumerate the terms of ``graph``."""
    from rdkit import Chem

    from espaloma_like.baselines.sage_lj import sage_lj_fast

    ranks = np.asarray(list(Chem.CanonicalRankAtoms(graph.rdkit_mol, breakTies=True)), np.int64)
    to_input = np.argsort(ranks, kind="stable")
    canonical = Chem.RenumberAtoms(graph.rdkit_mol, to_input.tolist())
    Chem.GetSymmSSSR(canonical)  # RenumberAtoms drops ring information
    to_canonical = np.empty_like(to_input)
    to_canonical[to_input] = np.arange(len(to_input))
    bonds = np.sort(to_canonical[graph.bonds], axis=1)
    bonds = bonds[np.lexsort((bonds[:, 1], bonds[:, 0]))] if len(bonds) else bonds
    sigma, epsilon = sage_lj_fast(graph)
    return PreparedMolecule(
        graph=graph,
        to_input=to_input,
        atom_features=atom_features(canonical, atom_feature_names),
        bonds=bonds,
        bond_features=bond_features(canonical, bonds, bond_feature_names),
        terms=terms_from_bonds(graph.n_atoms, bonds, linear_centres(graph)[to_input]),
        symmetry_classes=graph.symmetry_classes[to_input],
        total_charge=graph.total_charge,
        sigma=sigma[to_input],
        epsilon=epsilon[to_input],
    )


@dataclass(frozen=True)
class GraphBatch:
    """Several prepared molecules concatenated; every index tensor offset by the atom count.

    Attributes
    ----------
    atom_features : torch.Tensor
        (N, F_atom).
    atomic_numbers : torch.Tensor
        (N,) int64.
    edges : torch.Tensor
        (2, 2B) directed edges (both directions of every bond); ``edge_features`` (2B, F_bond).
    bonds, angles, propers, impropers, pairs_full, pairs_14, exclusions, torsion_pairs, atoms : torch.Tensor
        Term indices (canonical order within each molecule, offset); see
        :class:`~espaloma_like.terms.Terms`.
    symmetry_classes : torch.Tensor
        (N,) batch-unique class ids.
    atom_molecule : torch.Tensor
        (N,) molecule index of each atom.
    total_charges : torch.Tensor
        (M,) net charges, e.
    sigma, epsilon : torch.Tensor
        (N,) Sage LJ parameters, nm and kJ/mol, float64 whatever the batch's dtype (:meth:`to`
        keeps them): learned LJ multiplies them, and a fresh readout must give them exactly.
    atom_offsets : list[int]
        M + 1 offsets into the atom axis.
    """

    atom_features: torch.Tensor
    atomic_numbers: torch.Tensor
    edges: torch.Tensor
    edge_features: torch.Tensor
    bonds: torch.Tensor
    angles: torch.Tensor
    propers: torch.Tensor
    impropers: torch.Tensor
    pairs_full: torch.Tensor
    pairs_14: torch.Tensor
    exclusions: torch.Tensor
    torsion_pairs: torch.Tensor
    atoms: torch.Tensor
    symmetry_classes: torch.Tensor
    atom_molecule: torch.Tensor
    total_charges: torch.Tensor
    sigma: torch.Tensor
    epsilon: torch.Tensor
    atom_offsets: list[int]
    term_offsets: dict[str, list[int]]

    @property
    def n_molecules(self) -> int:
        return len(self.atom_offsets) - 1

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> GraphBatch:
        """Move every tensor to ``device``; floating-point tensors also to ``dtype``, except
        Sage's ``sigma`` and ``epsilon``, which stay float64 (the exact prior of learned LJ)."""
        import dataclasses

        import torch

        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                keep = not value.is_floating_point() or f.name in ("sigma", "epsilon")
                changes[f.name] = value.to(device) if keep else value.to(device, dtype)
        return dataclasses.replace(self, **changes)


TERM_NAMES = ("bonds", "angles", "propers", "impropers", "pairs_full", "pairs_14", "exclusions",
              "torsion_pairs", "atoms")


def collate(molecules: Sequence[PreparedMolecule]) -> GraphBatch:
    """Concatenate molecules PyG-style into one :class:`GraphBatch`."""
    import torch

    atom_offsets = [0]
    for m in molecules:
        atom_offsets.append(atom_offsets[-1] + m.n_atoms)
    class_offsets = [0]
    for m in molecules:
        class_offsets.append(class_offsets[-1] + int(m.symmetry_classes.max()) + 1)

    def cat_terms(name: str) -> tuple[torch.Tensor, list[int]]:
        parts = []
        offsets = [0]
        for m, off in zip(molecules, atom_offsets, strict=False):
            idx = getattr(m.terms, name)
            parts.append(idx + off)
            offsets.append(offsets[-1] + len(idx))
        width = getattr(molecules[0].terms, name).shape[1]
        return torch.as_tensor(np.concatenate(parts).reshape(-1, width)), offsets

    edges = np.concatenate([
        np.concatenate([m.bonds, m.bonds[:, ::-1]]) + off
        for m, off in zip(molecules, atom_offsets, strict=False)
    ]).T
    edge_features = np.concatenate(
        [np.concatenate([m.bond_features, m.bond_features]) for m in molecules]
    )
    terms = {name: cat_terms(name) for name in TERM_NAMES}
    return GraphBatch(
        atom_features=torch.as_tensor(np.concatenate([m.atom_features for m in molecules])),
        atomic_numbers=torch.as_tensor(np.concatenate(
            [m.graph.atomic_numbers[m.to_input] for m in molecules])),
        edges=torch.as_tensor(np.ascontiguousarray(edges)),
        edge_features=torch.as_tensor(edge_features),
        symmetry_classes=torch.as_tensor(np.concatenate([
            m.symmetry_classes + off for m, off in zip(molecules, class_offsets, strict=False)
        ])),
        atom_molecule=torch.as_tensor(np.concatenate([
            np.full(m.n_atoms, k, dtype=np.int64) for k, m in enumerate(molecules)
        ])),
        total_charges=torch.as_tensor([float(m.total_charge) for m in molecules]),
        sigma=torch.as_tensor(np.concatenate([m.sigma for m in molecules])),
        epsilon=torch.as_tensor(np.concatenate([m.epsilon for m in molecules])),
        atom_offsets=atom_offsets,
        term_offsets={name: offsets for name, (_, offsets) in terms.items()},
        **{name: tensor for name, (tensor, _) in terms.items()},
    )
