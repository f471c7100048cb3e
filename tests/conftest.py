"""Shared fixtures: a diverse molecule set and OpenMM reference-energy helpers."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

#: Diverse molecules for torch-vs-OpenMM consistency: neutral and charged, rings, aromatics,
#: P, S, halogens, amides, a zwitterion, linear groups.
DIVERSE_SMILES = [
    "CCO",
    "CC(=O)O",
    "CC(=O)[O-]",
    "C[NH3+]",
    "CC(=O)NC",
    "c1ccccc1",
    "c1ccncc1",
    "c1ccc2ccccc2c1",
    "OP(=O)(O)O",
    "COP(=O)([O-])OC",
    "CS(=O)(=O)N",
    "CSC",
    "c1ccsc1",
    "FC(F)(F)c1ccccc1",
    "Clc1ccccc1",
    "Brc1ccccc1",
    "Ic1ccccc1",
    "C1CC1",
    "C1CCCC1",
    "C1CCOC1",
    "[NH3+]CC(=O)[O-]",
    "CC(=O)Nc1ccc(O)cc1",
    "CC#N",
    "O=C1CCCN1",
    "NC(=[NH2+])N",
    "C[N+](C)(C)C",
    "[O-]S(=O)(=O)c1ccccc1",
    "OC(=O)c1ccccc1O",
]


def load_script(path: Path) -> ModuleType:
    """Import a repository script (``benchmarks/*.py``, ``training/*.py``) as a module by its path."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shared_dir() -> Path | None:
    """The shared reference-data folder, if present (env ESPALOMA_LIKE_SHARED overrides)."""
    env = os.environ.get("ESPALOMA_LIKE_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared")
    for c in candidates:
        if (c / "qm-reference").is_dir():
            return c
    return None


def symmetric_test_charges(graph, seed: int = 0) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Arbitrary but realistic charges: per symmetry class, summing to the net charge."""
    rng = np.random.default_rng(seed)
    per_class = rng.normal(0.0, 0.3, graph.symmetry_classes.max() + 1)
    q = per_class[graph.symmetry_classes]
    return q + (graph.total_charge - q.sum()) / graph.n_atoms


def openmm_group_energies(system, positions_nm: np.ndarray) -> dict[int, float]:  # type: ignore[no-untyped-def]
    """Energy (kJ/mol) of each force group at ``positions_nm``, Reference platform."""
    import openmm

    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    context.setPositions(positions_nm)
    groups = {f.getForceGroup() for f in system.getForces()}
    out = {}
    for g in groups:
        state = context.getState(getEnergy=True, groups={g})
        out[g] = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    return out


def openmm_energy_forces(system, positions_nm: np.ndarray) -> tuple[float, np.ndarray]:  # type: ignore[no-untyped-def]
    """Total energy (kJ/mol) and forces (N, 3) (kJ/mol/nm), Reference platform."""
    import openmm

    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    context.setPositions(positions_nm)
    state = context.getState(getEnergy=True, getForces=True)
    unit = openmm.unit
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return energy, np.asarray(forces)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep AM1-BCC results of the tests out of the user's cache unless one is configured."""
    if "ESPALOMA_LIKE_CACHE_DIR" not in os.environ:
        os.environ["ESPALOMA_LIKE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


def restoring_force_correlation(record) -> float:  # type: ignore[no-untyped-def]
    """Correlation over conformations between X-H bond stretch and the force along the bond.

    Forces that are minus the gradient pull a stretched bond back: strongly negative.
    """
    z = record.atomic_numbers
    xyz, forces = record.conformations, record.forces
    stretch, along = [], []
    for h in np.flatnonzero(z == 1):
        d = np.linalg.norm(xyz[0] - xyz[0, h], axis=-1)
        d[z == 1] = np.inf
        heavy = int(np.argmin(d))
        vec = xyz[:, h] - xyz[:, heavy]
        r = np.linalg.norm(vec, axis=-1)
        unit = vec / r[:, None]
        stretch.append(r - r.mean())
        along.append(0.5 * ((forces[:, h] - forces[:, heavy]) * unit).sum(-1))
    return float(np.corrcoef(np.concatenate(stretch), np.concatenate(along))[0, 1])
