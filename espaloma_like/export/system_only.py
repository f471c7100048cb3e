"""Term kinds with no ForceField XML form inside ``openmm.app.ForceField``.

Some term kinds (:attr:`~espaloma_like.termkinds.base.TermKind.system_only`: class-II cross
terms, learned 1-4 scales, torsion coupling, LJ and Coulomb within the molecule) have no
element in OpenMM's ForceField XML. A molecule with them has a *core* template (the ffxml
without them) plus their forces serialized over the molecule's atoms
(:class:`~espaloma_like.export.template_cache.CachedTemplate`). Two routes load such a
template into a ``ForceField``:

* the template generator (:mod:`espaloma_like.export.template_generator`) loads the core
  template when OpenMM asks for the residue;
* a ForceField XML file written by ``to_forcefield_xml()`` holds the whole template in one
  ``<EspalomaLikeMolecule>`` element (:func:`wrap_template`): the core ffxml verbatim plus one
  ``<SystemOnlyForce kind=...>`` per kind with its serialized force. ``import espaloma_like``
  teaches OpenMM's ForceField that element (:func:`register_openmm_parser`); a ForceField
  without it skips the unknown element, so the molecule has no template and ``createSystem``
  fails with OpenMM's "No template found" instead of silently leaving terms out.

Either way the force field gets one :class:`SystemOnlyForces` generator
(``ForceField.registerGenerator``), which adds, at the end of every ``createSystem``, the forces
of each residue whose atoms carry a core template's atom types, particle indices remapped, one
force per kind for all residues.
"""

from __future__ import annotations

import io
import logging
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from espaloma_like.export.template_cache import CachedTemplate

if TYPE_CHECKING:
    import openmm
    import openmm.app

logger = logging.getLogger(__name__)

WRAPPER_TAG = "EspalomaLikeMolecule"
WRAPPER_FORMAT = "1"
LOAD_NOTE = (
    "This file holds term kinds that OpenMM's ForceField XML has no element for, inside the "
    f"<{WRAPPER_TAG}> element. Load it after 'import espaloma_like' (which teaches "
    "openmm.app.ForceField that element); without it OpenMM skips the element and createSystem "
    "stops with 'No template found' for the molecule.")


def type_prefix_of(ffxml: str) -> str:
    """The prefix of a template's atom types (``<prefix>-<atom index>``)."""
    first = ET.fromstring(ffxml).find("AtomTypes/Type")
    return first.get("name", "").rpartition("-")[0] if first is not None else ""


def template_name_of(ffxml: str) -> str:
    """The name of a template's residue."""
    residue = ET.fromstring(ffxml).find("Residues/Residue")
    return residue.get("name", "") if residue is not None else ""


def wrap_template(template: CachedTemplate) -> str:
    """One ForceField XML file holding a core template and its system-only forces.

    Parameters
    ----------
    template : CachedTemplate
        A core template (:attr:`~CachedTemplate.complete` False).

    Returns
    -------
    str
        ``<ForceField>`` with the core ffxml's ``<Info>`` (plus a note on loading) and one
        ``<EspalomaLikeMolecule>`` element holding the core ffxml and the forces.
    """
    if template.complete:
        raise ValueError("a complete template is its own ffxml; only core templates are wrapped")
    core = ET.fromstring(template.ffxml)
    root = ET.Element("ForceField")
    info = core.find("Info")
    if info is not None:
        outer_info = ET.fromstring(ET.tostring(info))
        ET.SubElement(outer_info, "Note").text = LOAD_NOTE
        root.append(outer_info)
    wrapper = ET.SubElement(root, WRAPPER_TAG, {
        "format": WRAPPER_FORMAT, "kinds": " ".join(template.system_only_kinds)})
    wrapper.append(core)
    for kind, xml in template.system_forces:
        ET.SubElement(wrapper, "SystemOnlyForce", {"kind": kind}).append(ET.fromstring(xml))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def unwrap_template(element: ET.Element) -> CachedTemplate:
    """The template held by an ``<EspalomaLikeMolecule>`` element (:func:`wrap_template`).

    Raises
    ------
    ValueError
        Another format version, no core ffxml, an unknown or non-system-only kind, or a force
        that is not one of the custom bond forces those kinds write.
    """
    import openmm

    from espaloma_like.termkinds import TERM_KINDS

    if element.get("format") != WRAPPER_FORMAT:
        raise ValueError(f"<{WRAPPER_TAG}> format {element.get('format')!r} is not supported by "
                         f"this espaloma_like (which reads format {WRAPPER_FORMAT})")
    core = element.find("ForceField")
    if core is None or core.find("Residues/Residue") is None:
        raise ValueError(f"<{WRAPPER_TAG}> holds no ForceField template")
    kinds = tuple(element.get("kinds", "").split())
    known = TERM_KINDS
    forces = []
    for child in element.findall("SystemOnlyForce"):
        kind = child.get("kind", "")
        if kind not in kinds or kind not in known or not known[kind].system_only:
            raise ValueError(f"<{WRAPPER_TAG}>: {kind!r} is not one of its system-only kinds "
                             f"{list(kinds)}")
        if len(child) != 1:
            raise ValueError(f"<{WRAPPER_TAG}>: the {kind} entry holds {len(child)} forces, not 1")
        xml = ET.tostring(child[0], encoding="unicode")
        force = openmm.XmlSerializer.deserialize(xml)
        if not isinstance(force, (openmm.CustomBondForce, openmm.CustomCompoundBondForce)):
            raise ValueError(f"<{WRAPPER_TAG}>: the {kind} entry is a {type(force).__name__}, "
                             "not a custom bond force")
        forces.append((kind, xml))
    if not kinds:
        raise ValueError(f"<{WRAPPER_TAG}> names no system-only kind")
    return CachedTemplate(ET.tostring(core, encoding="unicode"), kinds, tuple(forces))


class SystemOnlyForces:
    """OpenMM force generator adding the system-only forces of the core templates it knows.

    One per ``ForceField`` (:meth:`on`). ``ForceField.createSystem`` calls :meth:`createForce`
    for every generator, then :meth:`postprocessSystem`, when every particle and force exists:
    the residues whose atoms carry the types of a known core template get its forces.
    """

    def __init__(self) -> None:
        #: atom-type prefix -> (template, number of atoms)
        self._templates: dict[str, tuple[CachedTemplate, int]] = {}

    @classmethod
    def on(cls, forcefield: openmm.app.ForceField) -> SystemOnlyForces:
        """The generator registered on ``forcefield``, registered now if there is none."""
        for generator in getattr(forcefield, "_forces", []):
            if isinstance(generator, cls):
                return generator
        generator = cls()
        forcefield.registerGenerator(generator)
        return generator

    def add_template(self, template: CachedTemplate) -> None:
        """Know the core template ``template`` (by its atom types)."""
        n_atoms = len(ET.fromstring(template.ffxml).findall("AtomTypes/Type"))
        self._templates[type_prefix_of(template.ffxml)] = (template, n_atoms)

    def createForce(self, sys: openmm.System, data: Any, nonbondedMethod: Any,
                    nonbondedCutoff: Any, args: Any) -> None:
        """Nothing: the forces are added in :meth:`postprocessSystem`."""

    def postprocessSystem(self, sys: openmm.System, data: Any, args: Any) -> None:
        """Add the system-only forces of every residue with a known core template."""
        self.add_forces(sys, data.atoms, data.atomType)

    def add_forces(self, system: openmm.System, atoms: Sequence[Any],
                   atom_types: Mapping[Any, str]) -> dict[str, int]:
        """Add the system-only forces of every residue whose atoms have the types of a known
        core template to ``system``, particle indices remapped: one force per kind (and force
        shape) for all residues together.

        Parameters
        ----------
        system : openmm.System
            Created by ``createSystem``; particle ``atom.index`` is the topology's atom.
        atoms : sequence
            The topology's atoms (``openmm.app.topology.Atom``).
        atom_types : mapping
            ``{atom: type name}`` as ``createSystem`` assigned them from the templates.

        Returns
        -------
        dict
            ``{kind name: number of terms added}`` (a kind whose terms all vanish, with 0).

        Raises
        ------
        ValueError
            A residue holds only part of a core template's atoms, or the types of two.
        """
        from espaloma_like.export.force_remap import add_remapped_forces

        residues: dict[Any, tuple[str, dict[int, int]]] = {}
        for atom in atoms:
            prefix, _, position = atom_types.get(atom, "").rpartition("-")
            if prefix not in self._templates:
                continue
            found, particles = residues.setdefault(atom.residue, (prefix, {}))
            if found != prefix:
                raise ValueError(f"residue {_residue_label(atom.residue)} mixes the atom types "
                                 "of two molecules' templates")
            particles[int(position)] = atom.index
        copies: list[tuple[str, str, Sequence[int]]] = []
        kinds: list[str] = []
        for residue, (prefix, particles) in residues.items():
            template, n = self._templates[prefix]
            if sorted(particles) != list(range(n)):
                raise ValueError(f"residue {_residue_label(residue)} holds {len(particles)} of "
                                 f"the {n} atoms of template {template_name_of(template.ffxml)}")
            kinds.extend(template.system_only_kinds)
            copies.extend((kind, xml, [particles[i] for i in range(n)])
                          for kind, xml in template.system_forces)
        terms = {kind: 0 for kind in kinds}  # a kind whose terms all vanish is listed, with 0
        terms.update(add_remapped_forces(system, copies))
        if terms:
            logger.info("added the system-only terms of %d residue(s): %s", len(residues),
                        ", ".join(f"{kind} {n}" for kind, n in terms.items()))
        return terms


def _residue_label(residue: Any) -> str:
    return f"{residue.name} {getattr(residue, 'id', '')} ({len(list(residue.atoms()))} atoms)"


def load_core_template(forcefield: openmm.app.ForceField, template: CachedTemplate,
                       ffxml: str | None = None) -> str:
    """Load a core template into ``forcefield`` (once) and make its :class:`SystemOnlyForces`
    generator know it; the template's name.

    Raises
    ------
    ValueError
        The force field holds a different template of that name (loading the same template
        again does nothing).

    Parameters
    ----------
    forcefield : openmm.app.ForceField
        The force field.
    template : CachedTemplate
        A core template.
    ffxml : str, optional
        The ffxml to load in place of ``template.ffxml`` (the same template adapted to the
        host force field's conventions, same atom types).
    """
    name = template_name_of(template.ffxml)
    loaded = getattr(forcefield, "_templates", {}).get(name)
    if loaded is not None:
        prefix = type_prefix_of(template.ffxml)
        types = {str(atom.type).rpartition("-")[0] for atom in getattr(loaded, "atoms", [])}
        if types != {prefix}:  # another model's (or charge mode's) template of that name
            raise ValueError(
                f"the ForceField already holds a different residue template named {name!r} "
                "(another model's or charge mode's parameters for the molecule, or another "
                "molecule); write the files with distinct residue names "
                "(to_forcefield_xml(residue_name=...))")
    SystemOnlyForces.on(forcefield).add_template(template)
    if loaded is None:
        forcefield.loadFile(io.StringIO(ffxml if ffxml is not None else template.ffxml))
    return name


def parse_wrapped_template(element: ET.Element, forcefield: openmm.app.ForceField) -> None:
    """OpenMM ForceField parser of ``<EspalomaLikeMolecule>``: load the template it holds."""
    load_core_template(forcefield, unwrap_template(element))


def register_openmm_parser(forcefield_module: Any = None) -> None:
    """Teach ``openmm.app.ForceField`` the ``<EspalomaLikeMolecule>`` element (idempotent).

    ``import espaloma_like`` calls this when ``openmm.app.forcefield`` is imported (at once if
    it already is), so files from ``to_forcefield_xml()`` load in any ForceField.
    """
    if forcefield_module is None:
        import importlib

        forcefield_module = importlib.import_module("openmm.app.forcefield")
    forcefield_module.parsers[WRAPPER_TAG] = parse_wrapped_template
