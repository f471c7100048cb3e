"""Copy a molecule's bonded custom forces into a bigger System, particle indices remapped.

The term kinds with no ForceField XML form (:attr:`~espaloma_like.termkinds.base.TermKind.
system_only`) export ``openmm.CustomBondForce`` (learned 1-4 scales) and
``openmm.CustomCompoundBondForce`` (class-II cross terms, torsion coupling) over the molecule's
own atom indices. :class:`~espaloma_like.export.system_generator.SystemGenerator` adds them to
a System of many residues: every copy of the force is remapped to the particles of one ligand
residue (:func:`remap_force`), and copies of the same force are merged into one
(:func:`force_signature`, :func:`append_bonds`), so that a System has one force per kind
whatever the number of ligands. A copy keeps everything but the bonds' particles: energy
expression, per-bond and global parameters, tabulated functions, energy-parameter
derivatives, name, force group and periodic-boundary setting (it is made with
``openmm.XmlSerializer``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import openmm

__all__ = ["add_remapped_forces", "append_bonds", "force_signature", "remap_force"]


def _check_type(force: openmm.Force) -> None:
    import openmm

    if not isinstance(force, (openmm.CustomBondForce, openmm.CustomCompoundBondForce)):
        raise TypeError(
            f"cannot remap the particles of a {type(force).__name__}: only CustomBondForce and "
            "CustomCompoundBondForce (the forces of the system-only term kinds) are supported")


def remap_force(force: openmm.Force, particles: Sequence[int]) -> openmm.Force:
    """A copy of ``force`` whose bonds join ``particles[i]`` where ``force``'s join ``i``.

    Parameters
    ----------
    force : openmm.CustomBondForce or openmm.CustomCompoundBondForce
        A force over a molecule's atoms ``0..N-1``.
    particles : sequence of int
        (N,) the particle of the target System of every atom of the molecule.

    Returns
    -------
    openmm.Force
        The copy (same type, expression, parameters, group, periodic-boundary setting).

    Raises
    ------
    TypeError
        Any other force type.
    IndexError
        A bond joins an atom beyond ``particles``.
    """
    import openmm

    _check_type(force)
    copy = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(force))
    mapping = [int(p) for p in particles]
    if isinstance(copy, openmm.CustomBondForce):
        for n in range(copy.getNumBonds()):
            i, j, values = copy.getBondParameters(n)
            copy.setBondParameters(n, mapping[i], mapping[j], values)
    else:
        for n in range(copy.getNumBonds()):
            atoms, values = copy.getBondParameters(n)
            copy.setBondParameters(n, [mapping[a] for a in atoms], values)
    return copy


def force_signature(force: openmm.Force) -> str:
    """The serialized ``force`` without its bonds: equal for two forces that can be merged
    into one (same type, expression, parameters, functions, name, group, periodicity)."""
    import openmm

    _check_type(force)
    root = ET.fromstring(openmm.XmlSerializer.serialize(force))
    for bonds in root.findall("Bonds"):
        root.remove(bonds)
    return ET.tostring(root, encoding="unicode")


def append_bonds(target: openmm.Force, source: openmm.Force) -> int:
    """Add every bond of ``source`` (particles and per-bond parameters as they are) to
    ``target``; the number added. The caller merges forces of equal :func:`force_signature`
    only (not checked again here: it serializes the whole force).

    Raises
    ------
    TypeError
        Unsupported types, forces of different types, or bonds of a different shape (number
        of particles or of per-bond parameters).
    """
    import openmm

    _check_type(target)
    _check_type(source)
    if type(target) is not type(source) or (
            target.getNumPerBondParameters() != source.getNumPerBondParameters()) or (
            isinstance(source, openmm.CustomCompoundBondForce)
            and target.getNumParticlesPerBond() != source.getNumParticlesPerBond()):
        raise TypeError(f"cannot merge a {type(source).__name__} into a "
                        f"{type(target).__name__} with bonds of another shape")
    if isinstance(source, openmm.CustomBondForce):
        for n in range(source.getNumBonds()):
            i, j, values = source.getBondParameters(n)
            target.addBond(i, j, values)
    else:
        for n in range(source.getNumBonds()):
            atoms, values = source.getBondParameters(n)
            target.addBond(atoms, values)
    return int(source.getNumBonds())


def add_remapped_forces(system: openmm.System,
                        copies: Iterable[tuple[str, str, Sequence[int]]]) -> dict[str, int]:
    """Add every ``(kind, serialized force, particles)`` copy to ``system``, remapped to its
    particles (:func:`remap_force`), copies of the same kind and force shape merged into one
    force (:func:`force_signature`, :func:`append_bonds`).

    Returns
    -------
    dict
        ``{kind name: number of terms added}``.
    """
    import openmm

    merged: dict[tuple[str, str], openmm.Force] = {}
    terms: dict[str, int] = {}
    for kind, xml, particles in copies:
        force = remap_force(openmm.XmlSerializer.deserialize(xml), particles)
        key = (kind, force_signature(force))
        terms.setdefault(kind, 0)
        if key in merged:
            terms[kind] += append_bonds(merged[key], force)
        else:
            merged[key] = force
            terms[kind] += int(force.getNumBonds())
    for force in merged.values():
        system.addForce(force)
    return terms
