"""ParameterSet -> OpenMM ForceField XML (ffxml) with one atom type per atom.

The recipe follows openmmforcefields' small-molecule template generators: every atom gets its own
type and class (names hashed from the molecule so that several ligands can share one
``ForceField``), the residue template carries per-atom charges, and valence terms are written
for explicit classes, so OpenMM reproduces exactly the terms of the ParameterSet.
"""

from __future__ import annotations

import datetime
import hashlib
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import numpy as np

from espaloma_like.molecule import SUPPORTED_ELEMENTS, MoleculeGraph
from espaloma_like.parameters import N_PERIODICITIES, ParameterSet

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
    """A short hash naming this molecule's atom types, unique per molecule and method."""
    key = graph.mapped_smiles + "|" + parameters.provenance.get("method", "")
    return "ESPL-" + hashlib.sha1(key.encode()).hexdigest()[:10]


def _fmt(x: float) -> str:
    return repr(float(x))


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
    """
    from espaloma_like import __version__

    p = parameters.numpy()
    prefix = type_prefix(graph, parameters)
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
            "name": t, "class": t, "element": SUPPORTED_ELEMENTS[z], "mass": _fmt(mass)})

    residues = ET.SubElement(root, "Residues")
    residue = ET.SubElement(residues, "Residue", {"name": residue_name or graph.smiles})
    for name, t, q in zip(names, types, p["nonbonded.charges"], strict=True):
        ET.SubElement(residue, "Atom", {"name": name, "type": t, "charge": _fmt(q)})
    for i, j in graph.bonds.tolist():
        ET.SubElement(residue, "Bond", {"atomName1": names[i], "atomName2": names[j]})

    bonds = ET.SubElement(root, "HarmonicBondForce")
    for (i, j), k, r0 in zip(p["bonds.indices"], p["bonds.k"], p["bonds.length"], strict=True):
        ET.SubElement(bonds, "Bond", {
            "class1": types[i], "class2": types[j], "length": _fmt(r0), "k": _fmt(k)})
    angles = ET.SubElement(root, "HarmonicAngleForce")
    for (i, j, m), k, theta in zip(
        p["angles.indices"], p["angles.k"], p["angles.angle"], strict=True
    ):
        ET.SubElement(angles, "Angle", {
            "class1": types[i], "class2": types[j], "class3": types[m],
            "angle": _fmt(theta), "k": _fmt(k)})
    if "angles.urey_bradley_k" in p:
        # OpenMM's generator adds 2 k (AMOEBA's k (r - d)^2 convention) to a HarmonicBondForce
        urey_bradley = ET.SubElement(root, "AmoebaUreyBradleyForce")
        for (i, j, m), k, r13 in zip(p["angles.indices"], p["angles.urey_bradley_k"],
                                     p["angles.urey_bradley_length"], strict=True):
            if k != 0.0:
                ET.SubElement(urey_bradley, "UreyBradley", {
                    "class1": types[i], "class2": types[j], "class3": types[m],
                    "d": _fmt(r13), "k": _fmt(0.5 * k)})

    def torsion_attrs(quad: list[int], k: np.ndarray, phase: np.ndarray) -> dict[str, str] | None:
        attrs = {f"class{n + 1}": types[a] for n, a in enumerate(quad)}
        term = 0
        for column in range(N_PERIODICITIES):
            if k[column] != 0.0:
                term += 1
                attrs[f"periodicity{term}"] = str(column + 1)
                attrs[f"phase{term}"] = _fmt(phase[column])
                attrs[f"k{term}"] = _fmt(k[column])
        return attrs if term else None

    propers = ET.SubElement(root, "PeriodicTorsionForce")
    for quad, k, phase in zip(
        p["propers.indices"].tolist(), p["propers.k"], p["propers.phase"], strict=True
    ):
        attrs = torsion_attrs(quad, k, phase)
        if attrs:
            ET.SubElement(propers, "Proper", attrs)

    # Impropers: OpenMM's "smirnoff" ordering adds the trefoil (central first) from one entry;
    # its "amber" ordering without wildcards adds (class2, class3, class1, class4) exactly.
    trefoil = parameters.impropers.trefoil
    impropers = ET.SubElement(
        root, "PeriodicTorsionForce", {"ordering": "smirnoff" if trefoil else "amber"}
    )
    scale = 1.0 / 3.0 if trefoil else 1.0
    for quad, k, phase in zip(
        p["impropers.indices"].tolist(), p["impropers.k"], p["impropers.phase"], strict=True
    ):
        ordered = quad if trefoil else [quad[2], quad[0], quad[1], quad[3]]
        attrs = torsion_attrs(ordered, k * scale, phase)
        if attrs:
            ET.SubElement(impropers, "Improper", attrs)

    nonbonded = ET.SubElement(root, "NonbondedForce", {
        "coulomb14scale": _fmt(parameters.nonbonded.coulomb_14_scale),
        "lj14scale": _fmt(parameters.nonbonded.lj_14_scale)})
    ET.SubElement(nonbonded, "UseAttributeFromResidue", {"name": "charge"})
    for t, sigma, eps in zip(types, p["nonbonded.sigma"], p["nonbonded.epsilon"], strict=True):
        ET.SubElement(nonbonded, "Atom", {"type": t, "sigma": _fmt(sigma), "epsilon": _fmt(eps)})

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
