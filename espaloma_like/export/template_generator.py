"""Residue template generator for ``openmm.app.ForceField`` (small molecules in big systems).

``ForceField.registerTemplateGenerator(generator.generator)`` makes OpenMM call
``generator(forcefield, residue)`` for every residue no loaded template matches. The generator
recognises the residue by its element-labelled bond graph, parametrizes that molecule (once),
loads its ffxml into the ForceField, and returns True; for any other residue it returns False and
touches nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from espaloma_like.molecule import MoleculeGraph, as_molecule_graph

if TYPE_CHECKING:
    import networkx as nx
    import openmm.app

    from espaloma_like.parametrized import ParametrizedMolecule


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


class MoleculeTemplateGenerator:
    """Template generator for a fixed set of molecules and a parametrization function.

    Parameters
    ----------
    molecules : iterable
        Molecules in any accepted input form (SMILES, RDKit, OpenFF, SDF path, MoleculeGraph).
    parametrize : callable
        ``MoleculeGraph -> ParametrizedMolecule``; called lazily, once per molecule matched.
    """

    def __init__(
        self, molecules: Iterable[Any], parametrize: Callable[[MoleculeGraph], ParametrizedMolecule]
    ) -> None:
        self._molecules = [as_molecule_graph(m) for m in molecules]
        self._graphs = [_graph_of_molecule(m) for m in self._molecules]
        self._signatures = [_signature(g) for g in self._graphs]
        self._parametrize = parametrize
        self._cache: dict[int, str] = {}

    @property
    def molecules(self) -> list[MoleculeGraph]:
        return list(self._molecules)

    def add_molecules(self, molecules: Iterable[Any]) -> None:
        """Make more molecules known to the generator."""
        for m in molecules:
            graph = as_molecule_graph(m)
            self._molecules.append(graph)
            self._graphs.append(_graph_of_molecule(graph))
            self._signatures.append(_signature(self._graphs[-1]))

    def forcefield_xml(self, index: int) -> str:
        """The ffxml of molecule ``index`` (parametrized on first use)."""
        if index not in self._cache:
            self._cache[index] = self._parametrize(self._molecules[index]).to_forcefield_xml()
        return self._cache[index]

    def generator(self, forcefield: openmm.app.ForceField, residue: Any) -> bool:
        """OpenMM template-generator hook: load a template for ``residue`` if it is ours."""
        import networkx as nx

        g = _graph_of_residue(residue)
        if g is None:
            return False
        signature = _signature(g)
        for index, (candidate, known) in enumerate(
            zip(self._graphs, self._signatures, strict=True)
        ):
            if known != signature:
                continue
            if nx.is_isomorphic(
                g, candidate, node_match=lambda a, b: a["element"] == b["element"]
            ):
                forcefield.loadFile(io.StringIO(self.forcefield_xml(index)))
                return True
        return False
