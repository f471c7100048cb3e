"""The QM record: one molecule, its conformations, and their energies and forces.

A :class:`QMRecord` is the hand-off object between QM labelling (engines, file readers) and
training datasets. Everything in it is in OpenMM units (nm, kJ/mol, kJ/mol/nm, e); readers convert
from QM units once, when the data is read.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from espaloma_like.exceptions import DataFormatError

if TYPE_CHECKING:
    from espaloma_like.molecule import MoleculeGraph

#: Atom map numbers in a mapped SMILES: ``[C@H:3]`` -> ``3``.
_MAP_NUMBER = re.compile(r"\[[^\]]*?:(\d+)\]")


def _frozen_array(value: object, dtype: type, name: str) -> np.ndarray:
    """A read-only copy of ``value`` as ``dtype`` (a copy, so the caller's array is untouched)."""
    try:
        array: np.ndarray = np.array(value, dtype=dtype, copy=True)
    except (TypeError, ValueError) as err:
        raise DataFormatError(f"QMRecord.{name} cannot be read as {dtype.__name__}: {err}") from err
    array.flags.writeable = False
    return array


def mapped_smiles_map_numbers(mapped_smiles: str) -> list[int]:
    """The atom map numbers of a mapped SMILES, in the order the atoms are written."""
    return [int(m) for m in _MAP_NUMBER.findall(mapped_smiles)]


@dataclass(frozen=True, eq=False)
class QMRecord:
    """Conformations of one molecule with QM energies and forces, in OpenMM units.

    Arrays are copied and made read-only on construction, so a record never changes.

    Attributes
    ----------
    name : str
        Unique label of the molecule within its dataset (the SPICE group name).
    mapped_smiles : str
        Mapped SMILES with explicit hydrogens; atom ``i`` has map number ``i + 1``. Empty when the
        bond orders of the source are unknown (see :func:`espaloma_like.data.formats`).
    atomic_numbers : np.ndarray
        (N,) int64 atomic numbers.
    conformations : np.ndarray
        (C, N, 3) float64 coordinates, nm.
    energies : np.ndarray
        (C,) float64 total energies, kJ/mol (absolute QM energies, not mean-centred).
    forces : np.ndarray
        (C, N, 3) float64 forces, kJ/mol/nm (minus the gradient of ``energies``).
    level_of_theory : str
        Method and basis, e.g. ``"wB97M-D3BJ/def2-TZVPPD"`` or ``"GFN2-xTB"``.
    subset : str
        The source subset (a SPICE subset name, a generator name), or empty.
    charges : np.ndarray or None
        (N,) float64 partial-charge labels, e (e.g. AM1-BCC), or None.
    total_charge : int
        Net charge of the molecule, e.
    metadata : dict[str, str]
        Provenance (engine, program versions, source file, notes).

    Raises
    ------
    DataFormatError
        Shapes disagree, values are not finite, or the map numbers of ``mapped_smiles`` are not
        exactly ``1..N``.
    """

    name: str
    mapped_smiles: str
    atomic_numbers: np.ndarray
    conformations: np.ndarray
    energies: np.ndarray
    forces: np.ndarray
    level_of_theory: str
    subset: str = ""
    charges: np.ndarray | None = None
    total_charge: int = 0
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen dataclass: normalise fields once, here
        set_(self, "atomic_numbers", _frozen_array(self.atomic_numbers, np.int64, "atomic_numbers"))
        set_(self, "conformations", _frozen_array(self.conformations, np.float64, "conformations"))
        set_(self, "energies", _frozen_array(self.energies, np.float64, "energies"))
        set_(self, "forces", _frozen_array(self.forces, np.float64, "forces"))
        if self.charges is not None:
            set_(self, "charges", _frozen_array(self.charges, np.float64, "charges"))
        set_(self, "total_charge", int(self.total_charge))
        set_(self, "metadata", {str(k): str(v) for k, v in dict(self.metadata).items()})
        self._validate()

    def _validate(self) -> None:
        label = f"QMRecord {self.name!r}"
        n = self.atomic_numbers.shape[0] if self.atomic_numbers.ndim == 1 else -1
        if n <= 0:
            raise DataFormatError(
                f"{label}: atomic_numbers must have shape (N,) with N > 0, "
                f"got {self.atomic_numbers.shape}"
            )
        if self.conformations.ndim != 3 or self.conformations.shape[1:] != (n, 3):
            raise DataFormatError(
                f"{label}: conformations must have shape (C, {n}, 3), "
                f"got {self.conformations.shape}"
            )
        c = self.conformations.shape[0]
        if self.energies.shape != (c,):
            raise DataFormatError(
                f"{label}: energies must have shape ({c},), got {self.energies.shape}"
            )
        if self.forces.shape != (c, n, 3):
            raise DataFormatError(
                f"{label}: forces must have shape ({c}, {n}, 3), got {self.forces.shape}"
            )
        if self.charges is not None and self.charges.shape != (n,):
            raise DataFormatError(
                f"{label}: charges must have shape ({n},), got {self.charges.shape}"
            )
        if np.any(self.atomic_numbers < 1) or np.any(self.atomic_numbers > 118):
            raise DataFormatError(f"{label}: atomic numbers outside 1..118")
        for key in ("conformations", "energies", "forces"):
            if not np.all(np.isfinite(getattr(self, key))):
                raise DataFormatError(
                    f"{label}: {key} has non-finite values; drop failed conformations first "
                    "(e.g. EngineResult.to_record keeps only the successful ones)"
                )
        if self.mapped_smiles:
            maps = sorted(mapped_smiles_map_numbers(self.mapped_smiles))
            if maps != list(range(1, n + 1)):
                raise DataFormatError(
                    f"{label}: mapped_smiles must map each of its {n} atoms to 1..{n} once "
                    f"(atom i has map number i + 1), got map numbers {maps}"
                )

    @property
    def n_atoms(self) -> int:
        """Number of atoms N."""
        return int(self.atomic_numbers.shape[0])

    @property
    def n_conformations(self) -> int:
        """Number of conformations C."""
        return int(self.conformations.shape[0])

    def select(self, indices: Sequence[int] | np.ndarray) -> QMRecord:
        """A record holding only some conformations.

        Parameters
        ----------
        indices : sequence of int or np.ndarray
            Conformation indices (any order, repeats allowed) or a (C,) boolean mask.

        Returns
        -------
        QMRecord
            The same molecule with ``conformations[indices]``, ``energies[indices]`` and
            ``forces[indices]``; everything else is shared.
        """
        index = np.asarray(indices)
        if index.dtype == np.bool_:
            if index.shape != (self.n_conformations,):
                raise IndexError(
                    f"boolean mask must have shape ({self.n_conformations},), got {index.shape}"
                )
        elif index.size == 0:
            index = index.astype(np.int64)
        elif not np.issubdtype(index.dtype, np.integer):
            raise IndexError(f"conformation indices must be integers, got dtype {index.dtype}")
        return dataclasses.replace(
            self,
            conformations=self.conformations[index],
            energies=self.energies[index],
            forces=self.forces[index],
        )


def record_graph(record: QMRecord) -> MoleculeGraph:
    """The molecule of ``record`` in its own atom order (from its mapped SMILES).

    Raises
    ------
    ValueError
        The record has no mapped SMILES (bond orders unknown) or its atoms disagree with it;
        :class:`~espaloma_like.exceptions.MoleculeInputError` for unsupported chemistry.
    """
    from espaloma_like.molecule import from_smiles

    if not record.mapped_smiles:
        raise ValueError("no mapped SMILES (bond orders unknown)")
    graph = from_smiles(record.mapped_smiles, name=record.name)
    if not np.array_equal(graph.atomic_numbers, record.atomic_numbers):
        raise ValueError("atomic numbers disagree with the mapped SMILES")
    return graph
