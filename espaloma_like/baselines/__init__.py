"""Classical baselines: OpenFF Sage 2.2.1 and GAFF-2.11, both with AM1-BCC charges.

Both return a :class:`~espaloma_like.parametrized.ParametrizedMolecule`, the same type as
:func:`espaloma_like.parametrize`, so they go through the same exporters and benchmarks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from espaloma_like.molecule import as_molecule_graph
from espaloma_like.parametrized import ParametrizedMolecule

__all__ = ["gaff", "sage"]


def _charges(graph: Any, charges: Any) -> np.ndarray:
    if charges is None or (isinstance(charges, str) and charges == "am1bcc"):
        from espaloma_like.baselines.am1bcc import am1bcc_charges

        return am1bcc_charges(graph)
    return np.asarray(charges, dtype=np.float64)


def sage(molecule: Any, charges: Any = None) -> ParametrizedMolecule:
    """Parametrize ``molecule`` with OpenFF Sage 2.2.1 and AM1-BCC charges.

    Parameters
    ----------
    molecule : str, pathlib.Path, rdkit.Chem.Mol, openff.toolkit.Molecule or MoleculeGraph
        Any accepted molecule input; a mapped SMILES fixes the atom order.
    charges : array_like, optional
        (N,) partial charges in e to use instead of AM1-BCC (e.g. precomputed ones).
    """
    from espaloma_like.baselines.sage_labels import sage_parameters

    graph = as_molecule_graph(molecule)
    return ParametrizedMolecule(graph, sage_parameters(graph, _charges(graph, charges)))


def gaff(molecule: Any, charges: Any = None) -> ParametrizedMolecule:
    """Parametrize ``molecule`` with GAFF-2.11 (antechamber + parmchk2 + tleap) and AM1-BCC.

    Parameters are as for :func:`sage`.
    """
    from espaloma_like.baselines.gaff_amber import gaff_parameters

    graph = as_molecule_graph(molecule)
    return ParametrizedMolecule(graph, gaff_parameters(graph, _charges(graph, charges)))
