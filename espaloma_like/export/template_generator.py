"""Residue template generator for ``openmm.app.ForceField`` (small molecules in big systems).

``ForceField.registerTemplateGenerator(generator.generator)`` makes OpenMM call
``generator(forcefield, residue)`` for every residue no loaded template matches. The generator
recognises the residue by its element-labelled bond graph, parametrizes that molecule (once),
loads its ffxml into the ForceField, and returns True; for any other residue it returns False and
touches nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from espaloma_like.molecule import MoleculeGraph, iter_molecules

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
    molecules : iterable or a single input
        Molecules in any accepted input form (SMILES, RDKit, OpenFF, molecule file path,
        MoleculeGraph); a single input is one molecule (``"CCO"`` is ethanol), a molecule file
        contributes all its records.
    parametrize : callable
        ``MoleculeGraph -> ParametrizedMolecule``; called lazily, once per molecule matched.
    """

    def __init__(
        self, molecules: Any, parametrize: Callable[[MoleculeGraph], ParametrizedMolecule]
    ) -> None:
        self._molecules: list[MoleculeGraph] = []
        self._graphs: list[nx.Graph] = []
        self._signatures: list[tuple[tuple[int, int], ...]] = []
        self._parametrize = parametrize
        self._cache: dict[int, str] = {}
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
