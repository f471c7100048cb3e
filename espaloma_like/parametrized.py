"""The result of parametrizing one molecule, whatever the method (model, Sage, GAFF)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

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

        return to_openmm_system(self.parameters)

    def to_system_xml(self) -> str:
        """The System serialized with ``openmm.XmlSerializer``."""
        from espaloma_like.export.openmm_system import to_system_xml

        return to_system_xml(self.parameters)

    def to_forcefield_xml(self, residue_name: str = "") -> str:
        """OpenMM ForceField XML with one residue template for this molecule."""
        from espaloma_like.export.ffxml import to_forcefield_xml

        return to_forcefield_xml(self.molecule, self.parameters, residue_name)

    def to_openmm_topology(self, residue_name: str = "MOL") -> openmm.app.Topology:
        """A one-residue OpenMM Topology whose atom names match the ffxml template."""
        from espaloma_like.export.ffxml import to_openmm_topology

        return to_openmm_topology(self.molecule, residue_name)
