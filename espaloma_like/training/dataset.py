"""QM datasets for training: SPICE-format HDF5 -> prepared molecules with conformations.

Splits are by molecule, never by conformation: the held-out split recorded in the file
(``metadata["split"] == "held_out"``, a scaffold split made at build time) is kept apart, and a
validation set is carved from the rest by a stable hash of the SMILES.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from espaloma_like.nn.batch import PreparedMolecule, prepare_molecule
from espaloma_like.nn.model import ModelConfig


@dataclass(frozen=True)
class TrainingMolecule:
    """One molecule with its QM data, in the canonical atom order of ``prepared``.

    Attributes
    ----------
    prepared : PreparedMolecule
    conformations : np.ndarray
        (C, N, 3) nm, canonical atom order.
    energies : np.ndarray
        (C,) kJ/mol.
    forces : np.ndarray
        (C, N, 3) kJ/mol/nm, canonical atom order.
    charges : np.ndarray or None
        (N,) reference (AM1-BCC) charges, canonical order.
    name, subset, split : str
    kinds : tuple of str
        Origin of each conformation ("etkdg", "md500K", "scan:...") when recorded.
    """

    prepared: PreparedMolecule
    conformations: np.ndarray
    energies: np.ndarray
    forces: np.ndarray
    charges: np.ndarray | None
    name: str
    subset: str
    split: str
    kinds: tuple[str, ...] = ()

    @property
    def n_conformations(self) -> int:
        return int(self.energies.shape[0])


def stable_fraction(text: str, salt: str = "") -> float:
    """A number in [0, 1) fixed by ``text`` (for reproducible splits)."""
    return int.from_bytes(hashlib.sha256((salt + text).encode()).digest()[:8], "little") / 2**64


def load_training_molecules(
    paths: Sequence[str | Path], config: ModelConfig, max_conformations: int | None = None,
    seed: int = 0, skipped: list[str] | None = None,
) -> list[TrainingMolecule]:
    """Read SPICE-format files into :class:`TrainingMolecule` objects.

    Records the model cannot use (unsupported elements, several fragments, no mapped SMILES) are
    skipped and, if ``skipped`` is given, listed there with the reason.
    """
    import json

    from espaloma_like.data.spice import read_spice_hdf5
    from espaloma_like.molecule import from_smiles

    rng = np.random.default_rng(seed)
    out = []
    for path in paths:
        for record in read_spice_hdf5(path):
            try:
                if not record.mapped_smiles:
                    raise ValueError("no mapped SMILES (bond orders unknown)")
                graph = from_smiles(record.mapped_smiles, name=record.name)
                if not np.array_equal(graph.atomic_numbers, record.atomic_numbers):
                    raise ValueError("atomic numbers disagree with the mapped SMILES")
                prepared = prepare_molecule(graph, config.atom_features, config.bond_features)
            except Exception as err:  # skipped, and said so
                if skipped is not None:
                    skipped.append(f"{record.name}: {type(err).__name__}: {err}")
                continue
            keep = np.arange(record.n_conformations)
            if max_conformations is not None and len(keep) > max_conformations:
                keep = np.sort(rng.choice(keep, size=max_conformations, replace=False))
            order = prepared.to_input
            kinds = tuple(json.loads(record.metadata.get("kinds", "[]")))
            out.append(TrainingMolecule(
                prepared=prepared,
                conformations=np.asarray(record.conformations[keep][:, order]),
                energies=np.asarray(record.energies[keep]),
                forces=np.asarray(record.forces[keep][:, order]),
                charges=None if record.charges is None else np.asarray(record.charges)[order],
                name=record.name,
                subset=record.subset,
                split=record.metadata.get("split", "train"),
                kinds=tuple(kinds[i] for i in keep) if len(kinds) == record.n_conformations else (),
            ))
    return out


def split_molecules(
    molecules: Iterable[TrainingMolecule], validation_fraction: float, salt: str = "validation"
) -> tuple[list[TrainingMolecule], list[TrainingMolecule], list[TrainingMolecule]]:
    """(train, validation, held_out) by molecule: the file's held-out split, then a hash split."""
    train, validation, held_out = [], [], []
    for m in molecules:
        if m.split == "held_out":
            held_out.append(m)
        elif stable_fraction(m.prepared.graph.smiles, salt) < validation_fraction:
            validation.append(m)
        else:
            train.append(m)
    return train, validation, held_out
