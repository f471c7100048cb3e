"""Fast Sage Lennard-Jones typing with RDKit SMARTS (no label_molecules in the hot path).

``label_molecules`` costs about half a second per molecule; the model needs only the vdW types,
so their SMIRKS are compiled once and matched with RDKit, the last matching parameter winning as
in SMIRNOFF. Tests check the result against ``label_molecules``.
"""

from __future__ import annotations

import functools

import numpy as np

from espaloma_like.baselines.sage_labels import _RMIN_HALF_TO_SIGMA, SAGE, load_forcefield
from espaloma_like.exceptions import ParametrizationError
from espaloma_like.molecule import MoleculeGraph


@functools.lru_cache(maxsize=4)
def _compiled(forcefield: str) -> list[tuple[object, int, float, float, str]]:
    from rdkit import Chem

    handler = load_forcefield(forcefield).get_parameter_handler("vdW")
    compiled = []
    for p in handler.parameters:
        pattern = Chem.MolFromSmarts(p.smirks)
        if pattern is None:
            raise ParametrizationError(f"RDKit cannot compile vdW SMIRKS {p.smirks}")
        tagged = [a.GetIdx() for a in pattern.GetAtoms() if a.GetAtomMapNum() == 1]
        if p.sigma is not None:
            sigma = p.sigma.m_as("nanometer")
        else:
            sigma = p.rmin_half.m_as("nanometer") * _RMIN_HALF_TO_SIGMA
        compiled.append((pattern, tagged[0], float(sigma), p.epsilon.m_as("kJ/mol"), p.id))
    return compiled


def sage_lj_fast(graph: MoleculeGraph, forcefield: str = SAGE) -> tuple[np.ndarray, np.ndarray]:
    """Sage LJ ``sigma`` (nm) and ``epsilon`` (kJ/mol), (N,) each, by SMARTS matching."""
    from rdkit import Chem

    mol = Chem.Mol(graph.rdkit_mol)
    Chem.SetAromaticity(mol, Chem.AromaticityModel.AROMATICITY_MDL)
    sigma = np.full(graph.n_atoms, np.nan)
    epsilon = np.full(graph.n_atoms, np.nan)
    for pattern, tagged, s, e, _pid in _compiled(forcefield):
        for match in mol.GetSubstructMatches(pattern, uniquify=False, maxMatches=100000):
            sigma[match[tagged]] = s
            epsilon[match[tagged]] = e
    if np.isnan(sigma).any():
        missing = np.flatnonzero(np.isnan(sigma)).tolist()
        raise ParametrizationError(f"no Sage vdW type for atoms {missing} of {graph.name!r}")
    return sigma, epsilon
