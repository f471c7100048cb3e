"""One registry of parametrization methods: the GNN model and the classical baselines.

The command line (``parametrize --method``, ``evaluate --methods``), the evaluation
(:func:`espaloma_like.training.evaluate.evaluate`) and the benchmarks look methods up here
instead of dispatching on their names. Importing this module imports nothing heavy: each
method's code is imported when it is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from espaloma_like.molecule import MoleculeGraph
    from espaloma_like.parameters import ParameterSet
    from espaloma_like.parametrized import ParametrizedMolecule


@dataclass(frozen=True)
class Method:
    """A way to parametrize a molecule.

    Attributes
    ----------
    name : str
        The name every command and results file uses (``"model"``, ``"sage"``, ``"gaff"``).
    description : str
        One line for help texts and reports.
    baseline : bool
        A classical force field that takes per-atom charges (AM1-BCC unless given); False for
        the GNN model, which predicts its own.
    results_label : str
        The method's label in benchmark results (``"sage-2.2.1"``).
    parametrize_entry, parameters_entry : str
        ``"module:function"``: a function ``(molecule, ...) -> ParametrizedMolecule`` and, for
        baselines, ``(graph, charges) -> ParameterSet``.
    """

    name: str
    description: str
    baseline: bool
    results_label: str
    parametrize_entry: str
    parameters_entry: str = ""

    def parametrize(self, molecule: Any, charges: Any = None, model: Any = None) -> ParametrizedMolecule:
        """``molecule`` parametrized by this method.

        Parameters
        ----------
        molecule : any accepted molecule input
            SMILES, mapped SMILES, RDKit or OpenFF molecule, file path or MoleculeGraph.
        charges : array_like, optional
            Baselines: (N,) partial charges, e, instead of AM1-BCC. Not accepted by the model.
        model : ParameterModel, str or path, optional
            The model: a loaded model, a shipped name or a checkpoint (the default when None).
            Not accepted by baselines.
        """
        function = _load(self.parametrize_entry)
        if self.baseline:
            if model is not None:
                raise ValueError(f"method {self.name!r} takes no model")
            return function(molecule, charges=charges)
        if charges is not None:
            raise ValueError(f"method {self.name!r} predicts its own charges")
        return function(molecule, model=model)

    def parameters(self, graph: MoleculeGraph, charges: np.ndarray | None = None,
                   model: Any = None) -> ParameterSet:
        """The :class:`~espaloma_like.parameters.ParameterSet` of ``graph`` (arguments as for
        :meth:`parametrize`; a baseline's ``charges`` are computed with AM1-BCC when None)."""
        if self.baseline and charges is not None:
            return _load(self.parameters_entry)(graph, charges)
        return self.parametrize(graph, charges=charges, model=model).parameters


def _load(entry: str) -> Any:
    module, function = entry.split(":")
    return getattr(importlib.import_module(module), function)


#: Every method by name, in report order.
METHODS: Mapping[str, Method] = MappingProxyType({m.name: m for m in (
    Method("model", "the shipped GNN model (or a checkpoint): its own charges, Sage LJ", False,
           "model", "espaloma_like.api:parametrize"),
    Method("sage", "OpenFF Sage 2.2.1 with AM1-BCC charges", True, "sage-2.2.1",
           "espaloma_like.baselines:sage", "espaloma_like.baselines.sage_labels:sage_parameters"),
    Method("gaff", "GAFF-2.11 (AmberTools) with AM1-BCC charges", True, "gaff-2.11",
           "espaloma_like.baselines:gaff", "espaloma_like.baselines.gaff_amber:gaff_parameters"),
)})

#: Method names, in report order.
METHOD_NAMES: tuple[str, ...] = tuple(METHODS)

#: The classical baselines, in report order.
BASELINES: tuple[str, ...] = tuple(name for name, m in METHODS.items() if m.baseline)


def get_method(name: str) -> Method:
    """The method called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None
