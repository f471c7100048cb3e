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
Coulomb) have no element in a ForceField's XML. Such a molecule gets a *core* template (the
ffxml without those kinds) plus the kinds' forces
(:class:`~espaloma_like.export.template_cache.CachedTemplate`); loading a core template also
hands it to the force field's :class:`~espaloma_like.export.system_only.SystemOnlyForces`
generator (OpenMM's ``ForceField.registerGenerator``, one per force field): every
``createSystem`` of that force field then adds the kinds' forces to the residues that got a core
template, recognised by their atom types, particle indices remapped (one force per kind for all
of them). So ``forcefield.createSystem`` with the bare template generator gives the complete
System, as :class:`~espaloma_like.export.system_generator.SystemGenerator` does.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

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


def molecule_template(molecule: ParametrizedMolecule) -> CachedTemplate:
    """The template of ``molecule``: its complete ffxml, or, when its parameters hold term
    kinds with no ForceField XML form, the ffxml without them plus their serialized forces
    (:func:`~espaloma_like.export.ffxml.forcefield_template`)."""
    from espaloma_like.export.ffxml import forcefield_template

    return forcefield_template(molecule.molecule, molecule.parameters)


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
    :class:`~espaloma_like.export.system_only.SystemOnlyForces` generator, once, that adds
    the kinds' forces in ``createSystem``.
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
        """The ForceField XML file of molecule ``index`` (from memory, the disk cache, or
        parametrized now): the complete ffxml, or a core template and its system-only forces
        in one ``<EspalomaLikeMolecule>`` element (:mod:`espaloma_like.export.system_only`)."""
        from espaloma_like.export.system_only import wrap_template

        template = self.template(index)
        return template.ffxml if template.complete else wrap_template(template)

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
        nonbonded conventions; its template name. A core template also goes to the
        force field's :class:`~espaloma_like.export.system_only.SystemOnlyForces` generator
        (registered on first use)."""
        from espaloma_like.export.host_forcefield import HostNonbonded, adapt_to_host
        from espaloma_like.export.system_only import load_core_template, template_name_of

        template = self.template(index)
        adapted = adapt_to_host(template.ffxml, HostNonbonded.of(forcefield))
        if not template.complete:
            return load_core_template(forcefield, template, adapted)
        name = template_name_of(template.ffxml)
        if name not in getattr(forcefield, "_templates", {}):
            forcefield.loadFile(io.StringIO(adapted))
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
