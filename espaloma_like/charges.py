"""User-supplied partial charges: ``charges="keep"`` instead of the model's charge equilibration.

Charges are read from the molecule as the user gave it: an OpenFF ``Molecule``'s
``partial_charges``, RDKit atom properties ``PartialCharge`` or ``_GasteigerCharge``
(``ComputeGasteigerCharges``), the charge column of a mol2 file (``_TriposPartialCharge``) or an
SDF ``atom.dprop.PartialCharge`` data field (as OpenFF and RDKit write them). They are kept only
when every atom has one, all are finite, and they sum to the formal charge within
:data:`CHARGE_SUM_TOLERANCE`; otherwise a :class:`~espaloma_like.exceptions.MoleculeInputError`
says why, rather than a silent replacement.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from espaloma_like.exceptions import MoleculeInputError

if TYPE_CHECKING:
    from espaloma_like.molecule import MoleculeGraph
    from espaloma_like.parametrized import ParametrizedMolecule

ChargeMode = Literal["model", "keep"]
CHARGE_MODES: tuple[str, ...] = ("model", "keep")
#: |sum of the given charges - formal charge| above this (e) is refused.
CHARGE_SUM_TOLERANCE = 1e-3
#: Atom properties read, first found wins.
CHARGE_PROPERTIES = ("PartialCharge", "_GasteigerCharge", "_TriposPartialCharge")
#: Provenance written for kept charges (System XML info, ffxml ``<Info>``).
KEPT_CHARGES = "user-supplied (kept)"


def check_charge_mode(charges: str) -> ChargeMode:
    """``charges`` if it is ``"model"`` or ``"keep"``; a ValueError otherwise."""
    if charges not in CHARGE_MODES:
        raise ValueError(f"charges must be 'model' or 'keep', got {charges!r}")
    return charges  # type: ignore[return-value]


def user_charges(graph: MoleculeGraph) -> np.ndarray:
    """The partial charges the input carried, (N,) float64 in e, atom order of ``graph``.

    Raises
    ------
    MoleculeInputError
        No atom has a charge, some have none (hydrogens added to an implicit-hydrogen RDKit
        molecule), a charge is not finite, a mol2 file says ``NO_CHARGES`` or every charge is
        zero, or the sum differs from the formal charge by more than 1e-3 e.
    """
    mol = graph.rdkit_mol
    label = f"{graph.name!r}" if graph.name else "the molecule"
    if mol.HasProp("_TriposChargeType") and mol.GetProp("_TriposChargeType") == "NO_CHARGES":
        raise MoleculeInputError(f"charges='keep' but {label} has none: its mol2 charge type is "
                                 "NO_CHARGES; use charges='model' or give a file with charges")
    values: list[float | None] = []
    for atom in mol.GetAtoms():
        value = None
        for prop in CHARGE_PROPERTIES:
            if atom.HasProp(prop):
                try:
                    value = float(atom.GetProp(prop))
                except ValueError:
                    value = math.nan
                break
        values.append(value)
    missing = [i for i, v in enumerate(values) if v is None]
    if len(missing) == len(values):
        raise MoleculeInputError(
            f"charges='keep' but {label} carries no partial charges (OpenFF partial_charges, "
            "RDKit atom property PartialCharge or _GasteigerCharge, mol2 or SDF "
            "atom.dprop.PartialCharge charges); use charges='model' or assign charges")
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise MoleculeInputError(
            f"charges='keep' but {len(missing)} atom(s) of {label} have no partial charge "
            f"(0-based: {shown}); hydrogens added to an RDKit molecule without explicit "
            "hydrogens carry none: add hydrogens before assigning charges")
    charges = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(charges)):
        bad = np.flatnonzero(~np.isfinite(charges)).tolist()
        raise MoleculeInputError(f"charges='keep' but {label} has non-finite partial charges "
                                 f"on atom(s) {bad}")
    if not np.any(charges):
        raise MoleculeInputError(f"charges='keep' but every partial charge of {label} is zero "
                                 "(a file without charges?); use charges='model'")
    total = float(charges.sum())
    if abs(total - graph.total_charge) > CHARGE_SUM_TOLERANCE:
        raise MoleculeInputError(
            f"charges='keep' but the partial charges of {label} sum to {total:.6f} e, not to "
            f"its formal charge {graph.total_charge} (tolerance {CHARGE_SUM_TOLERANCE} e)")
    return charges


def keep_user_charges(result: ParametrizedMolecule) -> ParametrizedMolecule:
    """``result`` with its charges replaced by the input's own (see :func:`user_charges`)."""
    import torch

    charges = user_charges(result.molecule)
    nonbonded = result.parameters.nonbonded
    kept = torch.as_tensor(charges, dtype=nonbonded.charges.dtype, device=nonbonded.charges.device)
    parameters = replace(
        result.parameters, nonbonded=replace(nonbonded, charges=kept),
        provenance={**result.parameters.provenance, "charges": KEPT_CHARGES})
    return replace(result, parameters=parameters)


def apply_charge_mode(result: ParametrizedMolecule, charges: str) -> ParametrizedMolecule:
    """``result`` unchanged for ``"model"``, with the input's charges for ``"keep"``."""
    return keep_user_charges(result) if check_charge_mode(charges) == "keep" else result
