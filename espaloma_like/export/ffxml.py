"""ParameterSet -> OpenMM ForceField XML (ffxml) with one atom type per atom.

The recipe follows openmmforcefields' small-molecule template generators: every atom gets its own
type and class (names hashed from the molecule so that several ligands can share one
``ForceField``), the residue template carries per-atom charges, and valence terms are written
for explicit classes, so OpenMM reproduces exactly the terms of the ParameterSet. Each term
kind (:mod:`espaloma_like.termkinds`) writes its own force elements.
"""

from __future__ import annotations

import datetime
import hashlib
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import numpy as np

from espaloma_like.exceptions import ParametrizationError
from espaloma_like.export.template_cache import CachedTemplate
from espaloma_like.molecule import SUPPORTED_ELEMENTS, MoleculeGraph
from espaloma_like.parameters import ParameterSet
from espaloma_like.termkinds import NONBONDED, export_order
from espaloma_like.termkinds.base import as_array, fmt

if TYPE_CHECKING:
    import openmm.app


def atom_names(atomic_numbers: np.ndarray) -> list[str]:
    """Unique atom names: element symbol plus a running number per element (C1, C2, H1, ...)."""
    counts: dict[int, int] = {}
    names = []
    for z in atomic_numbers.tolist():
        counts[z] = counts.get(z, 0) + 1
        names.append(f"{SUPPORTED_ELEMENTS.get(z, 'X')}{counts[z]}")
    return names


def type_prefix(graph: MoleculeGraph, parameters: ParameterSet) -> str:
    """A short hash naming this molecule's atom types, unique per molecule and parameters:
    the templates of one molecule from two models (or two charge modes) never share atom types
    in one ForceField, where the first one's terms would silently serve both."""
    from espaloma_like.termkinds import present_kinds

    digest = hashlib.sha1(graph.mapped_smiles.encode())
    for key, value in sorted(parameters.provenance.items()):
        digest.update(f"|{key}={value}".encode())
    nonbonded = parameters.nonbonded
    for values in (nonbonded.charges, nonbonded.sigma, nonbonded.epsilon):
        digest.update(as_array(values).tobytes())
    for kind, block in present_kinds(parameters):
        for field in kind.fields:
            value = getattr(block, field.name)
            if value is not None:
                digest.update(as_array(value).tobytes())
    return "ESPL-" + digest.hexdigest()[:10]


def to_forcefield_xml(graph: MoleculeGraph, parameters: ParameterSet, residue_name: str = "") -> str:
    """ForceField XML whose single residue template is ``graph`` with ``parameters``.

    Parameters
    ----------
    graph : MoleculeGraph
        The molecule (atom order of ``parameters``).
    parameters : ParameterSet
        Parameters to write.
    residue_name : str
        Template name; defaults to the molecule's canonical SMILES.

    Returns
    -------
    str
        A plain ffxml file; when ``parameters`` hold term kinds with no ForceField XML form
        (:attr:`~espaloma_like.termkinds.base.TermKind.system_only`), the template and those
        kinds' forces inside one ``<EspalomaLikeMolecule>`` element, which ``openmm.app.
        ForceField`` reads once ``espaloma_like`` is imported
        (:mod:`espaloma_like.export.system_only`).
    """
    template = forcefield_template(graph, parameters, residue_name)
    if template.complete:
        return template.ffxml
    from espaloma_like.export.system_only import wrap_template

    return wrap_template(template)


def forcefield_template(graph: MoleculeGraph, parameters: ParameterSet,
                        residue_name: str = "") -> CachedTemplate:
    """The template of ``graph`` with ``parameters``: its complete ffxml, or, when the
    parameters hold term kinds with no ForceField XML form, the ffxml without them (a *core*
    template, atom types named after all the parameters) plus their serialized forces
    (molecule atom indices, each force in its kind's force group)."""
    import dataclasses

    extras = [(kind, block) for kind, block in export_order(parameters) if kind.system_only]
    prefix = type_prefix(graph, parameters)
    if not extras:
        return CachedTemplate(_write_ffxml(graph, parameters, residue_name, prefix))
    import openmm

    names = {kind.name for kind, _ in extras}
    core = dataclasses.replace(parameters, extra_terms={
        name: block for name, block in parameters.extra_terms.items() if name not in names})
    forces = []
    for kind, block in extras:
        for force in kind.openmm_forces(block, parameters):
            force.setForceGroup(kind.force_group)
            forces.append((kind.name, str(openmm.XmlSerializer.serialize(force))))
    return CachedTemplate(_write_ffxml(graph, core, residue_name, prefix),
                          tuple(kind.name for kind, _ in extras), tuple(forces))


def _write_ffxml(graph: MoleculeGraph, parameters: ParameterSet, residue_name: str,
                 prefix: str) -> str:
    """The ffxml of ``parameters`` (no system-only kind among them), atom types ``prefix-i``."""
    from espaloma_like import __version__

    present = export_order(parameters)
    refused = [kind.name for kind, _ in present if kind.system_only]
    if refused:  # forcefield_template() takes them out first
        raise ParametrizationError(f"term kinds {refused} have no ForceField XML form")
    types = [f"{prefix}-{i}" for i in range(graph.n_atoms)]
    names = atom_names(graph.atomic_numbers)
    masses = graph.masses.tolist()  # isotope masses for [2H], [13C]; standard ones otherwise

    root = ET.Element("ForceField")
    info = ET.SubElement(root, "Info")
    ET.SubElement(info, "DateGenerated").text = datetime.date.today().isoformat()
    ET.SubElement(info, "Source").text = f"espaloma_like {__version__}"
    for key, value in sorted(parameters.provenance.items()):
        ET.SubElement(info, "Reference", {"key": key}).text = str(value)
    ET.SubElement(info, "Molecule").text = graph.mapped_smiles

    atom_types = ET.SubElement(root, "AtomTypes")
    for t, z, mass in zip(types, graph.atomic_numbers.tolist(), masses, strict=True):
        ET.SubElement(atom_types, "Type", {
            "name": t, "class": t, "element": SUPPORTED_ELEMENTS[z], "mass": fmt(mass)})

    residues = ET.SubElement(root, "Residues")
    residue = ET.SubElement(residues, "Residue", {"name": residue_name or graph.smiles})
    for name, t, q in zip(names, types, as_array(parameters.nonbonded.charges), strict=True):
        ET.SubElement(residue, "Atom", {"name": name, "type": t, "charge": fmt(q)})
    for i, j in graph.bonds.tolist():
        ET.SubElement(residue, "Bond", {"atomName1": names[i], "atomName2": names[j]})

    # one class per atom (the class is the type's name): every kind writes its terms by class
    for kind, block in present:
        kind.write_ffxml(root, types, block, parameters)
    NONBONDED.write_ffxml(root, types, parameters.nonbonded)

    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def to_openmm_topology(graph: MoleculeGraph, residue_name: str = "MOL") -> openmm.app.Topology:
    """A one-residue OpenMM ``Topology`` of ``graph`` with the atom names of the ffxml."""
    from openmm.app import Element, Topology

    topology = Topology()
    chain = topology.addChain()
    residue = topology.addResidue(residue_name, chain)
    atoms = [
        topology.addAtom(name, Element.getByAtomicNumber(int(z)), residue)
        for name, z in zip(atom_names(graph.atomic_numbers), graph.atomic_numbers, strict=True)
    ]
    for i, j in graph.bonds.tolist():
        topology.addBond(atoms[i], atoms[j])
    return topology
