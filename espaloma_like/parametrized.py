"""The result of parametrizing one molecule, whatever the method (model, Sage, GAFF)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from espaloma_like.exceptions import EspalomaLikeError
from espaloma_like.molecule import MoleculeGraph
from espaloma_like.parameters import ParameterSet

if TYPE_CHECKING:
    import openmm
    import openmm.app


@dataclass(frozen=True)
class ParametrizedMolecule:
    """A molecule with its MM parameters, ready for OpenMM.

    Attributes
    ----------
    molecule : MoleculeGraph
        The molecule; its atom order is the order of every array and of the exported System.
    parameters : ParameterSet
        Parameters in OpenMM units (tensors detached from any autograd graph).
    """

    molecule: MoleculeGraph
    parameters: ParameterSet

    @property
    def charges(self) -> np.ndarray:
        """(N,) partial charges, e."""
        return self.parameters.nonbonded.charges.detach().cpu().double().numpy()

    def to_openmm_system(self) -> openmm.System:
        """A vacuum ``openmm.System`` (no cutoff, no constraints), atoms in molecule order."""
        from espaloma_like.export.openmm_system import to_openmm_system

        return to_openmm_system(self.parameters, self.molecule.masses)

    def to_system_xml(self) -> str:
        """The System serialized with ``openmm.XmlSerializer``."""
        from espaloma_like.export.openmm_system import to_system_xml

        return to_system_xml(self.parameters, self.molecule.masses)

    def to_forcefield_xml(self, residue_name: str = "") -> str:
        """OpenMM ForceField XML with one residue template for this molecule."""
        from espaloma_like.export.ffxml import to_forcefield_xml

        return to_forcefield_xml(self.molecule, self.parameters, residue_name)

    def to_openmm_topology(self, residue_name: str = "MOL") -> openmm.app.Topology:
        """A one-residue OpenMM Topology whose atom names match the ffxml template."""
        from espaloma_like.export.ffxml import to_openmm_topology

        return to_openmm_topology(self.molecule, residue_name)


@dataclass(frozen=True)
class MoleculeFailure:
    """A molecule that could not be parametrized, reported instead of raised.

    Attributes
    ----------
    index : int
        Position in the input, counted molecule by molecule (every record of a molecule file
        given as one input counts).
    name : str
        The input's label: the SMILES or path given, or the record's name.
    error : EspalomaLikeError
        Why: a :class:`~espaloma_like.exceptions.MoleculeInputError` subclass for unreadable
        or uncovered input, or a :class:`~espaloma_like.exceptions.ParametrizationError`.
    """

    index: int
    name: str
    error: EspalomaLikeError

    def __str__(self) -> str:
        return f"molecule {self.index} ({self.name}): {type(self.error).__name__}: {self.error}"


class ParametrizationResults(list[ParametrizedMolecule]):
    """The molecules parametrized by ``parametrize_many``, in input order, with the failures.

    A list of :class:`ParametrizedMolecule`; with ``errors="skip"`` it holds the good molecules
    only and ``failures`` says which were left out and why.

    Attributes
    ----------
    indices : list of int
        Input position of each result (see :attr:`MoleculeFailure.index`).
    failures : list of MoleculeFailure
        The molecules left out, in input order; empty when every molecule succeeded.
    """

    def __init__(self, results: Iterable[tuple[int, ParametrizedMolecule]] = (),
                 failures: Iterable[MoleculeFailure] = ()) -> None:
        pairs = sorted(results, key=lambda pair: pair[0])
        super().__init__(result for _, result in pairs)
        self.indices: list[int] = [index for index, _ in pairs]
        self.failures: list[MoleculeFailure] = sorted(failures, key=lambda f: f.index)
