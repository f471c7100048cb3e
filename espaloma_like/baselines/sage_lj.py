"""Fast Sage Lennard-Jones typing with RDKit SMARTS (no openff in the hot path).

The model needs only Sage's vdW types. Their SMIRKS, sigma and epsilon ship in
``sage_vdw.json`` (written from the offxml by :func:`write_vdw_table`; a test checks it against
the installed force field), so parametrizing with the model never imports openff-toolkit or
parses the offxml (about 1.5 s per process). SMIRKS are matched with RDKit, the last matching
parameter winning as in SMIRNOFF; tests compare the result with ``label_molecules``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from espaloma_like.exceptions import ParametrizationError
from espaloma_like.molecule import MoleculeGraph

SAGE = "openff-2.2.1.offxml"  # the same name as sage_labels.SAGE, without importing openff
VDW_TABLE = Path(__file__).with_name("sage_vdw.json")


def vdw_table_from_forcefield(forcefield: str = SAGE) -> list[dict[str, object]]:
    """The vdW parameters of an OpenFF force field: id, SMIRKS, sigma (nm), epsilon (kJ/mol)."""
    from espaloma_like.baselines.sage_labels import _RMIN_HALF_TO_SIGMA, load_forcefield

    rows = []
    for p in load_forcefield(forcefield).get_parameter_handler("vdW").parameters:
        if p.sigma is not None:
            sigma = p.sigma.m_as("nanometer")
        else:
            sigma = p.rmin_half.m_as("nanometer") * _RMIN_HALF_TO_SIGMA
        rows.append({"id": p.id, "smirks": p.smirks, "sigma": float(sigma),
                     "epsilon": float(p.epsilon.m_as("kJ/mol"))})
    return rows


def write_vdw_table(path: Path = VDW_TABLE) -> None:
    """Regenerate ``sage_vdw.json`` from the installed openff-2.2.1.offxml."""
    from espaloma_like._io import atomic_write_text

    atomic_write_text(path, json.dumps(
        {"forcefield": SAGE, "parameters": vdw_table_from_forcefield()}, indent=1) + "\n")


@functools.lru_cache(maxsize=4)
def _compiled(forcefield: str) -> list[tuple[Any, int, float, float, str]]:
    from rdkit import Chem

    if forcefield == SAGE and VDW_TABLE.is_file():
        rows = json.loads(VDW_TABLE.read_text())["parameters"]
    else:
        rows = vdw_table_from_forcefield(forcefield)
    compiled = []
    for row in rows:
        pattern = Chem.MolFromSmarts(row["smirks"])
        if pattern is None:
            raise ParametrizationError(f"RDKit cannot compile vdW SMIRKS {row['smirks']}")
        tagged = [a.GetIdx() for a in pattern.GetAtoms() if a.GetAtomMapNum() == 1]
        compiled.append((pattern, tagged[0], float(row["sigma"]), float(row["epsilon"]), row["id"]))
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
