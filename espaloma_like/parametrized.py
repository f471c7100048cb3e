"""The result of parametrizing one molecule, whatever the method (model, Sage, GAFF)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
    domain_warnings : tuple of str
        Why the molecule lies outside the model's applicability domain (one reason per
        criterion, see :mod:`espaloma_like.domain`); empty inside it, or without a stored domain.
    """

    molecule: MoleculeGraph
    parameters: ParameterSet
    domain_warnings: tuple[str, ...] = ()

    @property
    def charges(self) -> np.ndarray:
        """(N,) partial charges, e."""
        return self.parameters.nonbonded.charges.detach().cpu().double().numpy()

    def to_openmm_system(self, nonbonded_method: Any = "NoCutoff", nonbonded_cutoff: Any = 1.0,
                         constraints: Any = None, hydrogen_mass: Any = None,
                         box_vectors: Any = None, **options: Any) -> openmm.System:
        """An ``openmm.System``, atoms in molecule order; by default vacuum, no cutoff, no
        constraints.

        Parameters
        ----------
        nonbonded_method : str or openmm.app constant
            ``NoCutoff`` (default), ``CutoffNonPeriodic``, ``CutoffPeriodic``, ``Ewald``,
            ``PME`` or ``LJPME``; the periodic ones need ``box_vectors``.
        nonbonded_cutoff : float (nm) or openmm.unit.Quantity
            Cutoff distance, 1 nm by default.
        constraints : None, str or openmm.app constant
            None (default), ``HBonds``, ``AllBonds`` or ``HAngles``, as in
            ``ForceField.createSystem`` (constrained terms left out of the harmonic forces).
        hydrogen_mass : float (dalton) or Quantity, optional
            Hydrogen mass repartitioning: every H gets this mass, taken from its heavy atom.
        box_vectors : (3, 3) array (nm), Quantity or three Vec3, optional
            Default periodic box vectors.
        **options
            ``switch_distance``, ``ewald_error_tolerance`` (0.0005),
            ``use_dispersion_correction`` (True), ``remove_cm_motion`` (False),
            ``flexible_constraints`` (False): see
            :class:`~espaloma_like.export.system_options.SystemOptions`.

        Raises
        ------
        ValueError
            An unknown method or constraint, or a periodic method without a box.
        """
        from espaloma_like.export.openmm_system import to_openmm_system
        from espaloma_like.export.system_options import SystemOptions, apply_system_options

        settings = SystemOptions.create(
            nonbonded_method=nonbonded_method, nonbonded_cutoff=nonbonded_cutoff,
            constraints=constraints, hydrogen_mass=hydrogen_mass, box_vectors=box_vectors,
            **options)
        system = to_openmm_system(self.parameters, self.molecule.masses)
        if settings.is_default:
            return system
        return apply_system_options(system, self.parameters, settings)

    def to_system_xml(self, **options: Any) -> str:
        """The System of :meth:`to_openmm_system` (same keywords), serialized with
        ``openmm.XmlSerializer``."""
        import openmm

        from espaloma_like.export.parmed_files import with_provenance_comment

        xml = str(openmm.XmlSerializer.serialize(self.to_openmm_system(**options)))
        return with_provenance_comment(xml, self.parameters.provenance)

    def to_forcefield_xml(self, residue_name: str = "") -> str:
        """OpenMM ForceField XML with one residue template for this molecule."""
        from espaloma_like.export.ffxml import to_forcefield_xml

        return to_forcefield_xml(self.molecule, self.parameters, residue_name)

    def to_gromacs(self, top_path: str | os.PathLike[str], gro_path: str | os.PathLike[str],
                   positions: np.ndarray | None = None, residue_name: str = "MOL") -> None:
        """Write a GROMACS topology (``.top``) and coordinates (``.gro``) through ParmEd.

        Parameters
        ----------
        top_path, gro_path : str or os.PathLike
            Output files (replaced atomically).
        positions : np.ndarray, optional
            (N, 3) coordinates, nm; the molecule's own, or one generated conformer, when None.
        residue_name : str
            Residue and molecule-type name.

        See :mod:`espaloma_like.export.parmed_files` for how each term is written.
        """
        from espaloma_like.export.parmed_files import provenance_lines, write_gromacs

        write_gromacs(self.molecule, self.parameters, top_path, gro_path, positions, residue_name,
                      header=provenance_lines(self.parameters.provenance))

    def to_amber(self, prmtop_path: str | os.PathLike[str], inpcrd_path: str | os.PathLike[str],
                 positions: np.ndarray | None = None, residue_name: str = "MOL") -> None:
        """Write an Amber topology (``prmtop``) and coordinates (``inpcrd``) through ParmEd.

        A model with Urey-Bradley springs is written as a chamber (CHARMM-style) prmtop, the
        Amber topology format that has them; others as a standard Amber prmtop. Arguments as
        for :meth:`to_gromacs`.
        """
        from espaloma_like.export.parmed_files import write_amber

        write_amber(self.molecule, self.parameters, prmtop_path, inpcrd_path, positions,
                    residue_name)

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
