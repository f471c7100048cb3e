"""OpenMM Systems of several molecules (copies or different ones) through ForceField templates."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import openmm
    from openmm import app

    from espaloma_like.parametrized import ParametrizedMolecule


def multi_molecule_system(molecules: Sequence[ParametrizedMolecule], box_vectors: Any = None,
                          **create_system: Any) -> tuple[openmm.System, app.Topology]:
    """One System holding ``molecules`` in order, one residue each, built by
    ``openmm.app.ForceField`` from their ffxml templates (the route users take for mixtures).

    Parameters
    ----------
    molecules : sequence of ParametrizedMolecule
        The molecules, atoms of each in its own order; a molecule repeated (same object or same
        template) is loaded as a template once.
    box_vectors : openmm Quantity or three Vec3, optional
        Periodic box of the topology (needed by periodic nonbonded methods).
    **create_system
        Passed to ``ForceField.createSystem`` (``nonbondedMethod``, ``constraints``, ...).

    Raises
    ------
    ParametrizationError
        A molecule whose functional form has no ffxml form (a System-only term kind).
    """
    from openmm import app

    topology = app.Topology()
    chain = topology.addChain()
    xmls: dict[str, None] = {}
    singles: dict[int, Any] = {}
    for parametrized in molecules:
        key = id(parametrized)
        if key not in singles:
            xmls[parametrized.to_forcefield_xml()] = None
            singles[key] = parametrized.to_openmm_topology()
        single = singles[key]
        residue = topology.addResidue(next(single.residues()).name, chain)
        atoms = {a: topology.addAtom(a.name, a.element, residue) for a in single.atoms()}
        for a, b in single.bonds():
            topology.addBond(atoms[a], atoms[b])
    if box_vectors is not None:
        topology.setPeriodicBoxVectors(box_vectors)
    forcefield = app.ForceField(*(io.StringIO(x) for x in xmls))
    return forcefield.createSystem(topology, **create_system), topology
