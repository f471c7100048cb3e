"""Intermolecular check on the S66x8 dimer curves: what a force field's charges and LJ give
between two molecules, against QM.

S66x8 (Řezáč, Riley, Hobza 2011) holds 66 dimers of small organic molecules, each at 8
separations (0.90-2.00 x the equilibrium distance) with both monomers kept rigid, so along a curve
the QM energy changes only through the interaction. The COMP6 file in ``../shared`` labels them at
wB97X/6-31G(d): no dispersion correction and no counterpoise, so dispersion-bound dimers are
underbound by the reference itself and hydrogen bonds somewhat overbound (basis-set superposition).
The check is therefore comparative: what a change of LJ or charges does to the curves against
what Sage's (fitted to condensed-phase data) give on the same reference.

Per curve and method, the dimer System comes from the methods' ForceField XML templates (the route
users take for several molecules), the energy along the curve is taken relative to the farthest
point (2.0 x) for QM and MM alike, and the report gives per category (hydrogen bonds, dispersion,
mixed) the RMSE over the seven closer points, the signed error at the equilibrium point and at
the repulsive wall (0.90 x).

    espaloma-like benchmark dimers [--model NAME ...] [--baselines sage,gaff] [--quick]
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like._io import atomic_write_text
from espaloma_like.exceptions import DataFormatError
from espaloma_like.units import ANGSTROM_TO_NM, HARTREE_TO_KJ_PER_MOL, KJ_TO_KCAL

if TYPE_CHECKING:
    from espaloma_like.molecule import MoleculeGraph
    from espaloma_like.parametrized import ParametrizedMolecule

#: S66 categories by 0-based index in the S66 order (Řezáč et al. 2011, Table 1).
CATEGORIES: tuple[tuple[str, range], ...] = (
    ("hydrogen bonds", range(0, 23)), ("dispersion", range(23, 46)), ("mixed", range(46, 66)))

#: Separations of the 8 points of each curve, in units of the equilibrium distance.
SEPARATIONS: tuple[float, ...] = (0.90, 0.95, 1.00, 1.05, 1.10, 1.25, 1.50, 2.00)

#: Largest change of an intramolecular distance along a curve (nm) for "rigid monomers".
_RIGID_TOLERANCE_NM = 1e-4

_EQUILIBRIUM = SEPARATIONS.index(1.00)
_WALL = SEPARATIONS.index(0.90)


@dataclass(frozen=True)
class DimerCurve:
    """One S66x8 dimer along its dissociation curve.

    Attributes
    ----------
    name : str
        The record's name in the file (``"mol00"``).
    category : str
        ``"hydrogen bonds"``, ``"dispersion"`` or ``"mixed"``.
    monomers : tuple of (MoleculeGraph, MoleculeGraph)
        The two molecules, bonds perceived from the geometry; atoms in file order within each.
    atom_indices : tuple of (np.ndarray, np.ndarray)
        Each monomer's atoms in the dimer's (file) order, (n_a,) and (n_b,) int.
    positions : np.ndarray
        (8, N, 3) nm, the curve's geometries, in :data:`SEPARATIONS` order.
    energies : np.ndarray
        (8,) kJ/mol, QM energies relative to the farthest point.
    """

    name: str
    category: str
    monomers: tuple[MoleculeGraph, MoleculeGraph]
    atom_indices: tuple[np.ndarray, np.ndarray]
    positions: np.ndarray
    energies: np.ndarray


def _category(index: int) -> str:
    for name, indices in CATEGORIES:
        if index in indices:
            return name
    raise DataFormatError(f"S66x8 holds 66 dimers; record index {index} is outside it")


def _monomers(symbols: list[str], xyz_angstrom: np.ndarray, where: str
              ) -> tuple[tuple[MoleculeGraph, MoleculeGraph], tuple[np.ndarray, np.ndarray]]:
    """Both molecules of a dimer, bonds and bond orders perceived at ``xyz_angstrom`` (N, 3)."""
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds
    from rdkit.rdBase import BlockLogs

    from espaloma_like.exceptions import MoleculeInputError
    from espaloma_like.molecule import from_rdkit

    block = f"{len(symbols)}\n\n" + "\n".join(
        f"{s} {x:.8f} {y:.8f} {z:.8f}" for s, (x, y, z) in zip(symbols, xyz_angstrom.tolist(),
                                                               strict=True))
    try:
        with BlockLogs():
            mol = Chem.MolFromXYZBlock(block)
            if mol is None:
                raise MoleculeInputError("RDKit could not read the coordinates")
            rdDetermineBonds.DetermineBonds(mol, charge=0)
        mapping: list[tuple[int, ...]] = []
        fragments = Chem.GetMolFrags(mol, asMols=True, fragsMolAtomMapping=mapping)
        if len(fragments) != 2:
            raise MoleculeInputError(f"{len(fragments)} molecules perceived, not 2")
        graphs = tuple(from_rdkit(f, name=f"{where}:{k}", hydrogens_are_explicit=True)
                       for k, f in enumerate(fragments))
    except (MoleculeInputError, ValueError, RuntimeError) as err:  # RDKit perception errors
        raise DataFormatError(f"{where}: bonds not perceived from the coordinates: {err}") from err
    indices = tuple(np.asarray(m, dtype=np.int64) for m in mapping)
    return (graphs[0], graphs[1]), (indices[0], indices[1])


def _check_rigid(positions: np.ndarray, indices: np.ndarray, where: str) -> None:
    """Raise unless every intramolecular distance of the monomer is the same along the curve."""
    xyz = positions[:, indices]
    distances = np.linalg.norm(xyz[:, :, None] - xyz[:, None, :], axis=-1)
    change = float(np.abs(distances - distances[-1]).max())
    if change > _RIGID_TOLERANCE_NM:
        raise DataFormatError(
            f"{where}: a monomer deforms along the curve (an intramolecular distance changes by "
            f"{change:.2e} nm), so the curve's energy is not the interaction alone")


def read_s66x8(path: str | Path) -> list[DimerCurve]:
    """The 66 curves of COMP6's S66x8 HDF5 (ANI layout: ``species``, ``coordinates`` in Å,
    ``energies`` in hartree), in S66 order.

    Raises
    ------
    DataFormatError
        No file at ``path``, a record without 8 points, bonds that cannot be perceived as two
        closed-shell molecules, or monomers that are not rigid along the curve.
    """
    import h5py

    if not Path(path).is_file():
        raise DataFormatError(f"no S66x8 file at {path} (COMP6's s66x8_wb97x6-31gd.h5)")
    curves: list[DimerCurve] = []
    with h5py.File(path, "r") as handle:
        group = handle["s66x8"] if "s66x8" in handle else handle
        names = sorted(group, key=lambda n: int("".join(c for c in n if c.isdigit()) or -1))
        for index, name in enumerate(names):
            record = group[name]
            where = f"{Path(path).name}:{name}"
            symbols = [s.decode() if isinstance(s, bytes) else str(s) for s in record["species"][()]]
            xyz = np.asarray(record["coordinates"][()], dtype=np.float64)
            energies = np.asarray(record["energies"][()], dtype=np.float64)
            if xyz.shape != (len(SEPARATIONS), len(symbols), 3) or energies.shape != (len(SEPARATIONS),):
                raise DataFormatError(f"{where}: expected {len(SEPARATIONS)} points of "
                                      f"{len(symbols)} atoms, got coordinates {xyz.shape}")
            monomers, indices = _monomers(symbols, xyz[-1], where)
            positions = xyz * ANGSTROM_TO_NM
            for part in indices:
                _check_rigid(positions, part, where)
            curves.append(DimerCurve(
                name=name, category=_category(index), monomers=monomers, atom_indices=indices,
                positions=positions, energies=(energies - energies[-1]) * HARTREE_TO_KJ_PER_MOL))
    return curves


def curve_energies(curve: DimerCurve, pair: Sequence[ParametrizedMolecule]) -> np.ndarray:
    """(8,) kJ/mol MM energies of the dimer along the curve, relative to the farthest point.

    The System is built by ``openmm.app.ForceField`` from both molecules' ffxml templates
    (vacuum, no cutoff, no constraints) and evaluated on the Reference platform.
    """
    import openmm
    from openmm import app, unit

    from espaloma_like.export.multi_molecule import multi_molecule_system

    system, _ = multi_molecule_system(pair, nonbondedMethod=app.NoCutoff, constraints=None,
                                      removeCMMotion=False)
    order = np.concatenate(curve.atom_indices)
    context = openmm.Context(system, openmm.VerletIntegrator(1e-3),
                             openmm.Platform.getPlatformByName("Reference"))
    energies = []
    for xyz in curve.positions[:, order]:
        context.setPositions(xyz * unit.nanometer)
        state = context.getState(getEnergy=True)
        energies.append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    out = np.asarray(energies)
    return out - out[-1]


def curve_errors(mm: np.ndarray, qm: np.ndarray) -> dict[str, float]:
    """Errors of one curve (kcal/mol): RMSE over the points closer than the farthest, and the
    signed MM - QM error at the equilibrium point and at the 0.90 x wall."""
    error = (np.asarray(mm) - np.asarray(qm)) * KJ_TO_KCAL
    return {"rmse": float(np.sqrt(np.mean(error[:-1] ** 2))),
            "equilibrium_error": float(error[_EQUILIBRIUM]), "wall_error": float(error[_WALL]),
            "qm_equilibrium": float(np.asarray(qm)[_EQUILIBRIUM] * KJ_TO_KCAL)}


def _summary(rows: list[dict[str, Any]]) -> dict[str, float | int]:
    rmse = np.array([r["rmse"] for r in rows])
    eq = np.array([r["equilibrium_error"] for r in rows])
    wall = np.array([r["wall_error"] for r in rows])
    return {"n": len(rows), "rmse": float(np.sqrt(np.mean(rmse ** 2))),
            "mean_equilibrium_error": float(eq.mean()), "mean_abs_equilibrium_error":
            float(np.abs(eq).mean()), "mean_wall_error": float(wall.mean())}


@dataclass(frozen=True)
class DimerBenchmarkConfig:
    """What :func:`run_dimer_benchmark` runs.

    Attributes
    ----------
    out : Path
        Output folder (``dimers.json``, ``dimers.md``).
    data : Path
        The S66x8 HDF5 file.
    models : tuple of str
        Shipped model names or checkpoints, each its own method.
    baselines : tuple of str
        Package baselines (``"sage"``, ``"gaff"``; AM1-BCC charges, cached on disk).
    max_dimers : int, optional
        Only the first dimers of each category (S66 order); all when None.
    """

    out: Path
    data: Path
    models: tuple[str, ...] = ("default",)
    baselines: tuple[str, ...] = ("sage", "gaff")
    max_dimers: int | None = None


def run_dimer_benchmark(config: DimerBenchmarkConfig, progress: bool = True) -> dict[str, Any]:
    """Score every method on the S66x8 curves; write ``dimers.json`` and ``dimers.md``."""
    from tqdm.auto import tqdm

    from espaloma_like.benchmark.provenance import cpu_model, git_state
    from espaloma_like.domain import OutOfDomainWarning

    started = time.perf_counter()
    curves = read_s66x8(config.data)
    if config.max_dimers is not None:
        curves = [c for name, _ in CATEGORIES
                  for c in [c for c in curves if c.category == name][:config.max_dimers]]
    from espaloma_like.benchmark.conformers import method_parametrizers

    methods = method_parametrizers(config.models, config.baselines)
    rows: dict[str, list[dict[str, Any]]] = {label: [] for label in methods}
    # monomers recur across dimers (water in 9 of them): parametrize each (method, atom order) once
    parametrized: dict[tuple[str, str], ParametrizedMolecule] = {}
    for curve in tqdm(curves, desc="dimers", disable=not progress):
        for label, parametrize in methods.items():
            with warnings.catch_warnings():  # recorded per row instead
                warnings.simplefilter("ignore", OutOfDomainWarning)
                for graph in curve.monomers:
                    key = (label, graph.mapped_smiles)
                    if key not in parametrized:
                        parametrized[key] = parametrize(graph)
            pair = [parametrized[(label, graph.mapped_smiles)] for graph in curve.monomers]
            errors = curve_errors(curve_energies(curve, pair), curve.energies)
            rows[label].append({"dimer": curve.name, "category": curve.category,
                                "monomers": [g.smiles for g in curve.monomers],
                                "out_of_domain": any(p.domain_warnings for p in pair), **errors})
    commit, dirty = git_state()
    result: dict[str, Any] = {
        "data": str(config.data), "reference": "wB97X/6-31G(d) (COMP6 S66x8)",
        "separations": list(SEPARATIONS), "git_commit": commit, "git_dirty": dirty,
        "machine": cpu_model(), "seconds": round(time.perf_counter() - started, 1),
        "summary": {label: {"all": _summary(r), **{
            name: _summary([x for x in r if x["category"] == name])
            for name, _ in CATEGORIES if any(x["category"] == name for x in r)}}
            for label, r in rows.items()},
        "curves": rows,
    }
    config.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config.out / "dimers.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(config.out / "dimers.md", dimer_report(result))
    return result


def dimer_report(result: dict[str, Any]) -> str:
    """The markdown report of :func:`run_dimer_benchmark`'s result."""
    summary = result["summary"]
    groups = ["all"] + [name for name, _ in CATEGORIES]
    head = " | ".join(f"{g} (n={next(iter(summary.values())).get(g, {}).get('n', 0)})"
                      for g in groups)
    lines = [
        "# Intermolecular check: S66x8 dimer curves",
        "",
        f"Reference {result['reference']}: 66 dimers x 8 separations, rigid monomers. Energies "
        "along each curve relative to its farthest point (2.0 x the equilibrium distance), for "
        "QM and MM alike. The reference has no dispersion correction and no counterpoise "
        "correction: dispersion-bound dimers are underbound by it and hydrogen bonds overbound, "
        "so compare methods with each other on it rather than reading an error as the method's "
        "alone. Dimer Systems come from each method's ForceField XML templates (vacuum, no "
        "cutoff, Reference platform).",
        "",
        "RMSE over the seven closer points (kcal/mol):",
        "",
        f"| method | {head} |",
        "|---|" + "---|" * len(groups),
    ]
    for label, s in summary.items():
        lines.append(f"| {label} | " + " | ".join(
            f"{s[g]['rmse']:.2f}" if g in s else "-" for g in groups) + " |")
    lines += ["", "Mean signed MM - QM error at the equilibrium point / at the 0.90 x wall "
              "(kcal/mol; negative: MM binds more strongly):", "",
              f"| method | {head} |", "|---|" + "---|" * len(groups)]
    for label, s in summary.items():
        lines.append(f"| {label} | " + " | ".join(
            f"{s[g]['mean_equilibrium_error']:+.2f} / {s[g]['mean_wall_error']:+.2f}"
            if g in s else "-" for g in groups) + " |")
    lines += ["", f"Run: commit {result['git_commit']}{' (dirty)' if result['git_dirty'] else ''}, "
              f"{result['machine']}, {result['seconds']:.0f} s.", ""]
    return "\n".join(lines)
