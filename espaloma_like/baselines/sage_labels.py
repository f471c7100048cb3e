"""OpenFF Sage baseline: parameters from ``ForceField.label_molecules``, AM1-BCC charges.

openff-interchange needs Python >= 3.12, so the parameters are read from the toolkit's labels
and converted here, following the SMIRNOFF conventions: bonds and angles ``k/2 (x - x0)^2``,
torsions ``k/idivf (1 + cos(n phi - phase))``, impropers as the trefoil with ``idivf`` "auto" = 3.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like.exceptions import ParametrizationError
from espaloma_like.molecule import MoleculeGraph
from espaloma_like.parameters import (
    N_PERIODICITIES,
    AngleParameters,
    BondParameters,
    NonbondedParameters,
    ParameterSet,
    TorsionParameters,
)
from espaloma_like.terms import enumerate_terms

if TYPE_CHECKING:
    from openff.toolkit import ForceField

SAGE = "openff-2.2.1.offxml"
_RMIN_HALF_TO_SIGMA = 2.0 / 2.0 ** (1.0 / 6.0)


@functools.lru_cache(maxsize=4)
def load_forcefield(name: str = SAGE) -> ForceField:
    """The OpenFF force field ``name`` (loaded once per process)."""
    from openff.toolkit import ForceField

    return ForceField(name, load_plugins=False)


def sage_lj(graph: MoleculeGraph, labels: dict[str, Any] | None = None,
            forcefield: str = SAGE) -> tuple[np.ndarray, np.ndarray]:
    """Sage Lennard-Jones ``sigma`` (nm) and ``epsilon`` (kJ/mol), (N,) each."""
    if labels is None:
        labels = _labels(graph, forcefield)
    sigma = np.zeros(graph.n_atoms)
    epsilon = np.zeros(graph.n_atoms)
    for (i,), p in labels["vdW"].items():
        if p.sigma is not None:
            sigma[i] = p.sigma.m_as("nanometer")
        else:
            sigma[i] = p.rmin_half.m_as("nanometer") * _RMIN_HALF_TO_SIGMA
        epsilon[i] = p.epsilon.m_as("kilojoule_per_mole")
    return sigma, epsilon


def _labels(graph: MoleculeGraph, forcefield: str) -> dict[str, Any]:
    ff = load_forcefield(forcefield)
    try:
        return dict(ff.label_molecules(graph.to_openff().to_topology())[0])
    except Exception as err:  # the toolkit raises many types for unassignable chemistry
        raise ParametrizationError(f"Sage could not label {graph.name!r}: {err}") from err


def _torsion_row(p: Any, idivf_auto: float) -> tuple[np.ndarray, np.ndarray]:
    """(6,) k and phase of one SMIRNOFF torsion parameter, ``k / idivf``.

    A few Sage torsions (t25, t26) list one periodicity twice with different phases. Two such
    terms are one cosine of that periodicity: ``k1 cos(x - p1) + k2 cos(x - p2) = R cos(x - P)``
    with ``R e^{iP} = k1 e^{ip1} + k2 e^{ip2}``; the merged term differs from the pair by a
    constant energy only (``k1 + k2 - R``), so forces and relative energies are exact.
    """
    k = np.zeros(N_PERIODICITIES)
    phase = np.zeros(N_PERIODICITIES)
    idivfs = p.idivf if p.idivf is not None else [None] * len(p.k)
    for n, ph, kk, idivf in zip(p.periodicity, p.phase, p.k, idivfs, strict=True):
        divisor = idivf_auto if idivf is None or idivf == "auto" else float(idivf)
        value = kk.m_as("kilojoule_per_mole") / divisor
        angle = ph.m_as("radian")
        if k[n - 1] != 0.0:
            merged = k[n - 1] * np.exp(1j * phase[n - 1]) + value * np.exp(1j * angle)
            k[n - 1], phase[n - 1] = abs(merged), float(np.angle(merged))
        else:
            k[n - 1], phase[n - 1] = value, angle
    return k, phase


def sage_parameters(
    graph: MoleculeGraph, charges: np.ndarray, forcefield: str = SAGE
) -> ParameterSet:
    """A :class:`ParameterSet` with Sage valence and LJ parameters and the given charges (e)."""
    import torch

    labels = _labels(graph, forcefield)
    ff = load_forcefield(forcefield)
    terms = enumerate_terms(graph)
    f64 = torch.float64

    bond_k = [labels["Bonds"][tuple(b)].k.m_as("kilojoule_per_mole / nanometer**2")
              for b in terms.bonds.tolist()]
    bond_r = [labels["Bonds"][tuple(b)].length.m_as("nanometer") for b in terms.bonds.tolist()]
    angle_k = [labels["Angles"][tuple(a)].k.m_as("kilojoule_per_mole / radian**2")
               for a in terms.angles.tolist()]
    angle_t = [labels["Angles"][tuple(a)].angle.m_as("radian") for a in terms.angles.tolist()]

    propers = {}
    wanted = {tuple(row) for row in terms.propers.tolist()}
    for key, p in labels["ProperTorsions"].items():
        canonical = min(tuple(key), tuple(key)[::-1])
        row = _torsion_row(p, idivf_auto=1.0)
        if canonical not in wanted and not row[0].any():
            continue  # a zero-barrier torsion through a linear centre: undefined, left out
        propers[canonical] = row
    proper_idx = sorted(propers)
    improper_rows = []
    for key, p in labels["ImproperTorsions"].items():
        i, c, k_, l_ = key
        outer = [i, k_, l_]
        start = outer.index(min(outer))  # cyclic rotation: the trefoil sum is invariant under it
        outer = outer[start:] + outer[:start]
        # SMIRNOFF impropers divide by the three trefoil terms; the ParameterSet stores the total.
        k_row, phase_row = _torsion_row(p, idivf_auto=3.0)
        improper_rows.append(((c, *outer), k_row * 3.0, phase_row))
    improper_rows.sort(key=lambda row: row[0])

    sigma, epsilon = sage_lj(graph, labels)
    charges = np.array(charges, dtype=np.float64)  # a copy: torch wants writable memory
    if charges.shape != (graph.n_atoms,):
        raise ValueError(f"charges must have shape ({graph.n_atoms},), got {charges.shape}")

    def long(a: Any, width: int) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.int64).reshape(-1, width))

    def real(a: Any, width: int | None = None) -> torch.Tensor:
        arr = np.asarray(a, dtype=np.float64)
        return torch.as_tensor(arr.reshape(-1, width) if width else arr, dtype=f64)

    return ParameterSet(
        atomic_numbers=graph.atomic_numbers.copy(),
        bonds=BondParameters(long(terms.bonds, 2), real(bond_k), real(bond_r)),
        angles=AngleParameters(long(terms.angles, 3), real(angle_k), real(angle_t)),
        propers=TorsionParameters(
            long(proper_idx, 4),
            real([propers[q][0] for q in proper_idx], N_PERIODICITIES),
            real([propers[q][1] for q in proper_idx], N_PERIODICITIES),
        ),
        impropers=TorsionParameters(
            long([r[0] for r in improper_rows], 4),
            real([r[1] for r in improper_rows], N_PERIODICITIES),
            real([r[2] for r in improper_rows], N_PERIODICITIES),
            trefoil=True,
        ),
        nonbonded=NonbondedParameters(
            charges=real(charges), sigma=real(sigma), epsilon=real(epsilon),
            pairs_full=long(terms.pairs_full, 2), pairs_14=long(terms.pairs_14, 2),
            exclusions=long(terms.exclusions, 2),
            coulomb_14_scale=float(ff.get_parameter_handler("Electrostatics").scale14),
            lj_14_scale=float(ff.get_parameter_handler("vdW").scale14),
        ),
        provenance={"method": "sage", "forcefield": forcefield, "charges": "am1bcc"},
    )
