"""Residue template generator for ``openmm.app.ForceField`` (small molecules in big systems).

``ForceField.registerTemplateGenerator(generator.generator)`` makes OpenMM call
``generator(forcefield, residue)`` for every residue no loaded template matches. The generator
recognises the residue by its element-labelled bond graph, parametrizes that molecule (once),
loads its ffxml into the ForceField, and returns True; for any other residue it returns False and
touches nothing. Both outcomes are logged (``logging``, logger ``espaloma_like.export.
template_generator``, level INFO).

The ffxml is adapted to the force field it is loaded into (CHARMM's 1-4 scales and
``LennardJonesForce``: :mod:`espaloma_like.export.host_forcefield`). A force field that has its
own template for the molecule (CHARMM ships paracetamol, for one) matches it before any
generator is asked: :meth:`MoleculeTemplateGenerator.residue_templates` gives the
``residueTemplates`` argument of ``createSystem`` that makes the model's template win.

Term kinds with no ForceField XML form (:attr:`~espaloma_like.termkinds.base.TermKind.
system_only`: class-II cross terms, learned 1-4 scales, torsion coupling, intramolecular LJ and
Coulomb) cannot be loaded into a ``ForceField`` as XML. Such a molecule gets a *core* template
(the ffxml without those kinds) plus the kinds' forces
(:class:`~espaloma_like.export.template_cache.CachedTemplate`), and the first time a core
template is loaded into a force field, the generator also registers a force generator on it
(:class:`SystemOnlyForces`, OpenMM's ``ForceField.registerGenerator``): every ``createSystem``
of that force field then adds the kinds' forces to the residues that got a core template,
recognised by their atom types, particle indices remapped (one force per kind for all of them).
So ``forcefield.createSystem`` with the bare template generator gives the complete System, as
:class:`~espaloma_like.export.system_generator.SystemGenerator` does.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from espaloma_like.exceptions import ParametrizationError
from espaloma_like.export.template_cache import CachedTemplate
from espaloma_like.molecule import MoleculeGraph, iter_molecules

if TYPE_CHECKING:
    import networkx as nx
    import openmm
    import openmm.app

    from espaloma_like.export.template_cache import TemplateCache
    from espaloma_like.parametrized import ParametrizedMolecule

logger = logging.getLogger(__name__)


def _graph_of_molecule(graph: MoleculeGraph) -> nx.Graph:
    import networkx as nx

    g = nx.Graph()
    for i, z in enumerate(graph.atomic_numbers.tolist()):
        g.add_node(i, element=z)
    g.add_edges_from(graph.bonds.tolist())
    return g


def _graph_of_residue(residue: openmm.app.topology.Residue) -> nx.Graph | None:
    import networkx as nx

    g = nx.Graph()
    index = {}
    for n, atom in enumerate(residue.atoms()):
        if atom.element is None:
            return None
        index[atom] = n
        g.add_node(n, element=atom.element.atomic_number)
    for a, b in residue.internal_bonds():
        g.add_edge(index[a], index[b])
    return g


def _signature(g: nx.Graph) -> tuple[tuple[int, int], ...]:
    return tuple(sorted((d["element"], g.degree[n]) for n, d in g.nodes(data=True)))


def _residue_label(residue: Any) -> str:
    return f"{residue.name} {getattr(residue, 'id', '')} ({len(list(residue.atoms()))} atoms)"


def system_only_refusal(name: str, kinds: Mapping[str, str | None] | list[str]) -> str:
    """The message refusing a complete ForceField XML file of molecule or model ``name``, whose
    term kinds ``kinds`` (``{kind: reason}`` or kind names) have no ffxml form."""
    if isinstance(kinds, Mapping):
        listed = "; ".join(f"{kind}: {why}" for kind, why in kinds.items())
    else:
        listed = ", ".join(kinds)
    return (f"{name}: the model gives term kinds with no ForceField XML form ({listed}), so "
            "there is no complete ffxml file of it (a file without them would be silently "
            "incomplete). Register the template generator on the ForceField instead (it adds "
            "their forces in createSystem), or use espaloma_like.SystemGenerator or "
            "ParametrizedMolecule.to_openmm_system()")


def molecule_template(molecule: ParametrizedMolecule) -> CachedTemplate:
    """The template of ``molecule``: its complete ffxml, or, when its parameters hold term
    kinds with no ForceField XML form, the ffxml without them plus their serialized forces
    (molecule atom indices, each force in its kind's force group)."""
    import dataclasses

    import openmm

    from espaloma_like.termkinds import export_order

    parameters = molecule.parameters
    extras = [(kind, block) for kind, block in export_order(parameters) if kind.system_only]
    if not extras:
        return CachedTemplate(molecule.to_forcefield_xml())
    names = {kind.name for kind, _ in extras}
    core = dataclasses.replace(parameters, extra_terms={
        name: block for name, block in parameters.extra_terms.items() if name not in names})
    forces = []
    for kind, block in extras:
        for force in kind.openmm_forces(block, parameters):
            force.setForceGroup(kind.force_group)
            forces.append((kind.name, str(openmm.XmlSerializer.serialize(force))))
    return CachedTemplate(dataclasses.replace(molecule, parameters=core).to_forcefield_xml(),
                          tuple(kind.name for kind, _ in extras), tuple(forces))


def _type_prefix(ffxml: str) -> str:
    """The prefix of a template's atom types (``<prefix>-<atom index>``)."""
    import xml.etree.ElementTree as ET

    first = ET.fromstring(ffxml).find("AtomTypes/Type")
    return first.get("name", "").rpartition("-")[0] if first is not None else ""


def _template_name(ffxml: str) -> str:
    import xml.etree.ElementTree as ET

    residue = ET.fromstring(ffxml).find("Residues/Residue")
    return residue.get("name", "") if residue is not None else ""


class SystemOnlyForces:
    """OpenMM force generator that adds the system-only forces of core templates.

    Registered by :class:`MoleculeTemplateGenerator` on a force field it loads a core template
    into. ``ForceField.createSystem`` calls :meth:`createForce` for every generator, then
    :meth:`postprocessSystem`, when every particle and force exists: the residues whose atoms
    carry the types of a core template get the forces of their molecule.
    """

    def __init__(self, owner: MoleculeTemplateGenerator) -> None:
        self.owner = owner

    def createForce(self, sys: openmm.System, data: Any, nonbondedMethod: Any,
                    nonbondedCutoff: Any, args: Any) -> None:
        """Nothing: the forces are added in :meth:`postprocessSystem`."""

    def postprocessSystem(self, sys: openmm.System, data: Any, args: Any) -> None:
        """Add the system-only forces of every residue with a core template of the owner."""
        self.owner.add_system_only_forces(sys, data.atoms, data.atomType)


class MoleculeTemplateGenerator:
    """Template generator for a fixed set of molecules and a parametrization function.

    Parameters
    ----------
    molecules : iterable or a single input
        Molecules in any accepted input form (SMILES, RDKit, OpenFF, molecule file path,
        MoleculeGraph); a single input is one molecule (``"CCO"`` is ethanol), a molecule file
        contributes all its records.
    parametrize : callable
        ``MoleculeGraph -> ParametrizedMolecule``; called lazily, once per molecule matched.
    cache : TemplateCache, optional
        Templates on disk: read before parametrizing, written after.
    cache_key : callable, optional
        ``MoleculeGraph -> str``, the cache key of a molecule (required with ``cache``).

    A molecule whose parameters hold term kinds with no ForceField XML form gets a core
    template (see the module docstring); a force field it is loaded into gets a
    :class:`SystemOnlyForces` generator, once, that adds the kinds' forces in ``createSystem``.
    """

    def __init__(
        self, molecules: Any, parametrize: Callable[[MoleculeGraph], ParametrizedMolecule],
        cache: TemplateCache | None = None,
        cache_key: Callable[[MoleculeGraph], str] | None = None,
    ) -> None:
        if cache is not None and cache_key is None:
            raise ValueError("a template cache needs a cache_key function")
        self._molecules: list[MoleculeGraph] = []
        self._graphs: list[nx.Graph] = []
        self._signatures: list[tuple[tuple[int, int], ...]] = []
        self._parametrize = parametrize
        self._templates: dict[int, CachedTemplate] = {}
        self._force_hosts: list[openmm.app.ForceField] = []
        #: type prefix of every core template loaded -> its molecule index
        self._core_prefixes: dict[str, int] = {}
        self._disk = cache
        self._cache_key = cache_key
        self.add_molecules(molecules)

    @property
    def molecules(self) -> list[MoleculeGraph]:
        return list(self._molecules)

    def add_molecules(self, molecules: Any) -> None:
        """Make more molecules known to the generator (one input, or an iterable of them).

        Raises
        ------
        MoleculeInputError
            A molecule cannot be read; none of ``molecules`` is added then.
        """
        graphs = []
        for _name, item in iter_molecules(molecules):
            if isinstance(item, Exception):
                raise item
            graphs.append(item)
        for graph in graphs:
            self._molecules.append(graph)
            self._graphs.append(_graph_of_molecule(graph))
            self._signatures.append(_signature(self._graphs[-1]))

    def template(self, index: int) -> CachedTemplate:
        """The template of molecule ``index`` (complete, or core plus system-only forces): from
        memory, the disk cache, or parametrized now."""
        if index in self._templates:
            return self._templates[index]
        graph = self._molecules[index]
        key = self._cache_key(graph) if self._cache_key is not None else ""
        template = self._disk.lookup(key) if self._disk is not None else None
        if template is not None:
            logger.info("%stemplate of %s read from cache %s",
                        "" if template.complete else "core ", graph.name,
                        self._disk.path)  # type: ignore[union-attr]
        else:
            template = molecule_template(self._parametrize(graph))
            if self._disk is not None:
                self._disk.put_template(key, template, smiles=graph.mapped_smiles,
                                        name=graph.name)
                logger.info("%stemplate of %s written to cache %s",
                            "" if template.complete else "core ", graph.name,
                            self._disk.path)
        self._templates[index] = template
        return template

    def forcefield_xml(self, index: int) -> str:
        """The complete ffxml of molecule ``index``: from memory, the disk cache, or
        parametrized now.

        Raises
        ------
        ParametrizationError
            The molecule's parameters hold term kinds with no ForceField XML form.
        """
        template = self.template(index)
        if not template.complete:
            raise ParametrizationError(system_only_refusal(
                self._molecules[index].name or self._molecules[index].smiles,
                list(template.system_only_kinds)))
        return template.ffxml

    def match(self, residue: Any) -> int | None:
        """Index of the known molecule whose bond graph is the residue's, or None."""
        import networkx as nx

        if len(residue) not in {len(s) for s in self._signatures}:
            return None  # cheap test first: waters and ions of a solvated system
        g = _graph_of_residue(residue)
        if g is None:
            return None
        signature = _signature(g)
        for index, (candidate, known) in enumerate(
            zip(self._graphs, self._signatures, strict=True)
        ):
            if known == signature and nx.is_isomorphic(
                g, candidate, node_match=lambda a, b: a["element"] == b["element"]
            ):
                return index
        return None

    def load(self, forcefield: openmm.app.ForceField, index: int) -> str:
        """Load the template of molecule ``index`` into ``forcefield`` (once), adapted to its
        nonbonded conventions; its template name. A core template also registers a
        :class:`SystemOnlyForces` generator on ``forcefield`` (once)."""
        from espaloma_like.export.host_forcefield import HostNonbonded, adapt_to_host

        template = self.template(index)
        name = _template_name(template.ffxml)
        if not template.complete:
            self._core_prefixes[_type_prefix(template.ffxml)] = index
            if not any(host is forcefield for host in self._force_hosts):
                forcefield.registerGenerator(SystemOnlyForces(self))
                self._force_hosts.append(forcefield)
        if name not in getattr(forcefield, "_templates", {}):
            forcefield.loadFile(io.StringIO(adapt_to_host(template.ffxml,
                                                          HostNonbonded.of(forcefield))))
        return name

    def generator(self, forcefield: openmm.app.ForceField, residue: Any) -> bool:
        """OpenMM template-generator hook: load a template for ``residue`` if it is ours."""
        index = self.match(residue)
        if index is None:
            logger.info("declined residue %s: not one of the %d known molecule(s)",
                        _residue_label(residue), len(self._molecules))
            return False
        name = self.load(forcefield, index)
        logger.info("matched residue %s to %s; loaded template %r",
                    _residue_label(residue), self._molecules[index].name, name)
        return True

    def matches(self, topology: openmm.app.Topology) -> dict[Any, int]:
        """``{residue: molecule index}`` for every residue of ``topology`` that is a known
        molecule."""
        found: dict[Any, int] = {}
        for residue in topology.residues():
            index = self.match(residue)
            if index is not None:
                found[residue] = index
        return found

    def load_templates(self, forcefield: openmm.app.ForceField,
                       matches: Mapping[Any, int]) -> dict[Any, str]:
        """Load the templates of ``matches`` (:meth:`matches`) into ``forcefield``;
        ``{residue: template name}``."""
        chosen: dict[Any, str] = {}
        for residue, index in matches.items():
            chosen[residue] = self.load(forcefield, index)
            logger.info("residue %s will use the model's template %r",
                        _residue_label(residue), chosen[residue])
        return chosen

    def residue_templates(self, forcefield: openmm.app.ForceField,
                          topology: openmm.app.Topology) -> dict[Any, str]:
        """``{residue: template name}`` for every residue of ``topology`` that is a known
        molecule, with the templates loaded into ``forcefield``: pass it as
        ``createSystem(..., residueTemplates=...)`` so that the model's templates are used even
        where the force field has its own template for the molecule."""
        return self.load_templates(forcefield, self.matches(topology))

    def add_system_only_forces(self, system: openmm.System, atoms: Sequence[Any],
                               atom_types: Mapping[Any, str]) -> dict[str, int]:
        """Add the system-only forces of every residue whose atoms have the types of one of
        this generator's core templates to ``system``, particle indices remapped: one force
        per kind (and force shape) for all residues together.

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
            A residue holds only part of a core template's atoms (cannot be remapped).
        """
        from espaloma_like.export.force_remap import add_remapped_forces

        residues: dict[Any, tuple[int, dict[int, int]]] = {}
        for atom in atoms:
            prefix, _, position = atom_types.get(atom, "").rpartition("-")
            index = self._core_prefixes.get(prefix)
            if index is None:
                continue
            found, particles = residues.setdefault(atom.residue, (index, {}))
            if found != index:
                raise ValueError(f"residue {_residue_label(atom.residue)} mixes the atom types "
                                 "of two molecules' templates")
            particles[int(position)] = atom.index
        copies: list[tuple[str, str, Sequence[int]]] = []
        kinds: list[str] = []
        for residue, (index, particles) in residues.items():
            n = self._molecules[index].n_atoms
            if sorted(particles) != list(range(n)):
                raise ValueError(f"residue {_residue_label(residue)} holds {len(particles)} of "
                                 f"the {n} atoms of {self._molecules[index].name}'s template")
            template = self.template(index)
            kinds.extend(template.system_only_kinds)
            copies.extend((kind, xml, [particles[i] for i in range(n)])
                          for kind, xml in template.system_forces)
        terms = {kind: 0 for kind in kinds}  # a kind whose terms all vanish is listed, with 0
        terms.update(add_remapped_forces(system, copies))
        if terms:
            logger.info("added the system-only terms of %d residue(s): %s", len(residues),
                        ", ".join(f"{kind} {n}" for kind, n in terms.items()))
        return terms
