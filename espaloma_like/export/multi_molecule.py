"""OpenMM Systems of several molecules (copies or different ones) through ForceField templates,
with the forces of term kinds that have no ForceField XML form added after ``createSystem``."""

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
    Molecules whose parameters hold System-only term kinds get their core template, and those
    kinds' forces are added to every copy afterwards, as ``SystemGenerator`` does.

    Parameters
    ----------
    molecules : sequence of ParametrizedMolecule
        The molecules, atoms of each in its own order; a molecule repeated (same object or same
        template) is loaded as a template once.
    box_vectors : openmm Quantity or three Vec3, optional
        Periodic box of the topology (needed by periodic nonbonded methods).
    **create_system
        Passed to ``ForceField.createSystem`` (``nonbondedMethod``, ``constraints``, ...).
    """
    from openmm import app

    from espaloma_like.export.force_remap import add_remapped_forces
    from espaloma_like.export.template_generator import molecule_template

    topology = app.Topology()
    chain = topology.addChain()
    xmls: dict[str, None] = {}
    singles: dict[int, tuple[Any, Any]] = {}  # one template per distinct object
    copies: list[tuple[str, str, range]] = []
    for parametrized in molecules:
        key = id(parametrized)
        if key not in singles:
            template = molecule_template(parametrized)
            xmls[template.ffxml] = None  # the same template twice is loaded once
            singles[key] = (template, parametrized.to_openmm_topology())
        template, single = singles[key]
        residue = topology.addResidue(next(single.residues()).name, chain)
        first = topology.getNumAtoms()
        atoms = {a: topology.addAtom(a.name, a.element, residue) for a in single.atoms()}
        for a, b in single.bonds():
            topology.addBond(atoms[a], atoms[b])
        particles = range(first, topology.getNumAtoms())
        copies.extend((kind, xml, particles) for kind, xml in template.system_forces)
    if box_vectors is not None:
        topology.setPeriodicBoxVectors(box_vectors)
    forcefield = app.ForceField(*(io.StringIO(x) for x in xmls))
    system: openmm.System = forcefield.createSystem(topology, **create_system)
    add_remapped_forces(system, copies)
    return system, topology
