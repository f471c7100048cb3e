"""Conformations for QM labelling, in the spirit of SPICE: ETKDG, minima, hot MD, torsion scans.

Every function returns ``(C, N, 3)`` float64 positions in nm, atoms in the order of the given
:class:`~espaloma_like.molecule.MoleculeGraph`, and is deterministic for a given seed (OpenMM
runs on the Reference platform: deterministic, and faster than CPU for molecules this small).

Sampling only needs plausible geometries, not accurate energies, so the force field is Sage
valence and Lennard-Jones terms with cheap charges (:func:`sampling_charges`: Gasteiger charges
shifted to sum to the net charge), never AM1-BCC (seconds to minutes per molecule).

:func:`sample_molecule` puts it together: ``n_etkdg`` ETKDG conformers, each minimized, each
minimum the start of a short Langevin run at ``md_temperature`` (SPICE uses 500 K) from which
``n_md_per_conformer`` snapshots are taken, and relaxed torsion scans of up to
``max_scans_per_molecule`` rotatable bonds. Broken geometries (atoms closer than 0.07 nm that
are not bonded, bonds stretched beyond 1.5 times their Sage length) are dropped and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from espaloma_like.molecule import MoleculeGraph, generate_conformers
from espaloma_like.termkinds import FORCE_GROUPS

if TYPE_CHECKING:
    import openmm

    from espaloma_like.parameters import ParameterSet

__all__ = [
    "SampledConformations",
    "SamplingConfig",
    "dihedral_angles",
    "etkdg_conformers",
    "md_snapshots",
    "minimize",
    "rotatable_torsions",
    "sample_molecule",
    "sampling_charges",
    "sampling_parameters",
    "torsion_scan",
    "valid_geometries",
]

#: Force group of the scan restraint (the exporter uses the term kinds' groups, 0-4).
_RESTRAINT_GROUP = 10
_MM_GROUPS = set(FORCE_GROUPS.values())


class SamplingConfig(BaseModel):
    """How many conformations of which kind :func:`sample_molecule` makes.

    Attributes
    ----------
    schema_version : 1
    n_etkdg : int
        ETKDG conformers asked for (RDKit prunes near-duplicates at 0.1 A RMSD, so there may be
        fewer).
    include_etkdg, include_minimized : bool
        Keep the raw ETKDG geometries / their Sage minima in the output.
    n_md_per_conformer : int
        MD snapshots taken from each minimized conformer (0: no MD).
    md_temperature : float
        Langevin temperature, K.
    md_interval_steps : int
        MD steps between snapshots (the first snapshot is taken after one interval).
    md_step_fs : float
        MD time step, fs (no constraints, so keep it at 1 fs).
    md_friction_per_ps : float
        Langevin friction, 1/ps.
    torsion_scan : bool
        Run relaxed torsion scans.
    n_scan_points : int
        Grid points per scan, evenly over 360 degrees.
    max_scans_per_molecule : int
        Rotatable bonds scanned per molecule (picked with the seed when there are more).
    scan_restraint_k : float
        Harmonic dihedral restraint, kJ/mol/rad^2.
    minimize_tolerance : float
        RMS force at which minimization stops, kJ/mol/nm.
    minimize_max_iterations : int
        Cap on L-BFGS iterations per minimization (0: until converged).
    min_nonbonded_distance : float
        Conformations with two non-bonded atoms closer than this (nm) are rejected.
    max_bond_stretch : float
        Conformations with a bond longer than this times its Sage length are rejected.
    allow_undefined_stereo : bool
        Embed molecules with undefined stereo (ETKDG then picks an isomer at random).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    n_etkdg: int = Field(default=8, ge=1)
    include_etkdg: bool = True
    include_minimized: bool = True
    n_md_per_conformer: int = Field(default=2, ge=0)
    md_temperature: float = Field(default=500.0, gt=0.0)
    md_interval_steps: int = Field(default=500, ge=1)
    md_step_fs: float = Field(default=1.0, gt=0.0, le=4.0)
    md_friction_per_ps: float = Field(default=1.0, gt=0.0)
    torsion_scan: bool = True
    n_scan_points: int = Field(default=24, ge=2)
    max_scans_per_molecule: int = Field(default=1, ge=0)
    scan_restraint_k: float = Field(default=5000.0, gt=0.0)
    minimize_tolerance: float = Field(default=10.0, gt=0.0)
    minimize_max_iterations: int = Field(default=2000, ge=0)
    min_nonbonded_distance: float = Field(default=0.07, ge=0.0)
    max_bond_stretch: float = Field(default=1.5, gt=1.0)
    allow_undefined_stereo: bool = False


@dataclass(frozen=True)
class SampledConformations:
    """Conformations of one molecule and where each came from.

    Attributes
    ----------
    positions : np.ndarray
        (C, N, 3) float64, nm, atom order of the graph.
    kinds : tuple of str
        (C,) origin of each conformation: ``"etkdg"``, ``"minimized"``, ``"md500K"`` (the MD
        temperature in K), or ``"scan:i-j-k-l:<angle>"`` for a scan point restrained at dihedral
        ``(i, j, k, l)`` = ``angle`` **degrees** (one decimal).
    rejected : tuple of str
        Kinds of the conformations rejected as broken (see :func:`valid_geometries`).
    """

    positions: np.ndarray
    kinds: tuple[str, ...]
    rejected: tuple[str, ...] = ()

    @property
    def n_conformations(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_rejected(self) -> int:
        return len(self.rejected)


# --------------------------------------------------------------------------------------------
# Force field for sampling
# --------------------------------------------------------------------------------------------


def sampling_charges(graph: MoleculeGraph) -> np.ndarray:
    """Cheap partial charges for sampling: Gasteiger, shifted to sum to the net charge.

    Returns
    -------
    np.ndarray
        (N,) charges, e. Falls back to the net charge spread evenly if RDKit's Gasteiger
        charges are not finite (unparametrized elements or hypervalent atoms).
    """
    from rdkit import Chem
    from rdkit.Chem import rdPartialCharges

    mol = Chem.Mol(graph.rdkit_mol)
    try:
        rdPartialCharges.ComputeGasteigerCharges(mol, throwOnParamFailure=True)
        q = np.array([a.GetDoubleProp("_GasteigerCharge") for a in mol.GetAtoms()])
    except (ValueError, RuntimeError, KeyError):
        q = np.zeros(graph.n_atoms)
    if not np.all(np.isfinite(q)):
        q = np.zeros(graph.n_atoms)
    return q + (graph.total_charge - q.sum()) / graph.n_atoms


def sampling_parameters(graph: MoleculeGraph) -> ParameterSet:
    """Sage 2.2.1 valence and LJ parameters with :func:`sampling_charges` (about 0.5 s)."""
    from espaloma_like.baselines.sage_labels import sage_parameters

    parameters = sage_parameters(graph, sampling_charges(graph))
    return replace(parameters, provenance={**parameters.provenance, "charges": "gasteiger"})


# --------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------


def dihedral_angles(positions: np.ndarray, quad: tuple[int, int, int, int]) -> np.ndarray:
    """Dihedral angle ``(i, j, k, l)`` in rad, in (-pi, pi], OpenMM's sign convention.

    Parameters
    ----------
    positions : np.ndarray
        (C, N, 3) or (N, 3) coordinates.

    Returns
    -------
    np.ndarray
        (C,) angles (a 0-d array for (N, 3) input).
    """
    x = np.asarray(positions, dtype=np.float64)
    i, j, k, l_ = quad
    b0 = x[..., j, :] - x[..., i, :]
    b1 = x[..., k, :] - x[..., j, :]
    b2 = x[..., l_, :] - x[..., k, :]
    n1 = np.cross(b0, b1)
    n2 = np.cross(b1, b2)
    m = np.cross(n1, b1 / np.linalg.norm(b1, axis=-1, keepdims=True))
    return -np.arctan2(np.sum(m * n2, axis=-1), np.sum(n1 * n2, axis=-1))


def valid_geometries(
    positions: np.ndarray, bonds: np.ndarray, reference_lengths: np.ndarray,
    min_distance: float = 0.07, max_stretch: float = 1.5,
) -> np.ndarray:
    """Which conformations are chemically intact.

    Parameters
    ----------
    positions : np.ndarray
        (C, N, 3) nm.
    bonds : np.ndarray
        (B, 2) bonded pairs.
    reference_lengths : np.ndarray
        (B,) reference bond lengths, nm (e.g. Sage equilibrium lengths).
    min_distance : float
        Smallest allowed distance between atoms that are not bonded, nm.
    max_stretch : float
        Largest allowed ratio of a bond length to its reference.

    Returns
    -------
    np.ndarray
        (C,) bool, True where finite, no non-bonded pair is closer than ``min_distance`` and no
        bond is stretched beyond ``max_stretch``.
    """
    x = np.asarray(positions, dtype=np.float64)
    n = x.shape[1]
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    ok = np.all(np.isfinite(x), axis=(1, 2))
    lengths = np.linalg.norm(x[:, bonds[:, 0]] - x[:, bonds[:, 1]], axis=-1)
    ok &= np.all(lengths <= max_stretch * np.asarray(reference_lengths)[None], axis=1)
    nonbonded = ~np.eye(n, dtype=bool)
    nonbonded[bonds[:, 0], bonds[:, 1]] = False
    nonbonded[bonds[:, 1], bonds[:, 0]] = False
    iu = np.triu_indices(n, 1)
    pair_mask = nonbonded[iu]
    distances = np.linalg.norm(x[:, iu[0][pair_mask]] - x[:, iu[1][pair_mask]], axis=-1)
    if distances.shape[1]:
        ok &= distances.min(axis=1) >= min_distance
    return ok


def _moving_atoms(graph: MoleculeGraph, j: int, k: int) -> np.ndarray:
    """Atoms on the ``k`` side of bond ``j-k`` (``k`` included); the bond must not be in a ring."""
    neighbours: list[list[int]] = [[] for _ in range(graph.n_atoms)]
    for a, b in graph.bonds.tolist():
        neighbours[a].append(b)
        neighbours[b].append(a)
    seen = {k}
    stack = [k]
    while stack:
        atom = stack.pop()
        for other in neighbours[atom]:
            if other == j and atom == k:
                continue
            if other not in seen:
                seen.add(other)
                stack.append(other)
    if j in seen:
        raise ValueError(f"bond {j}-{k} is in a ring; it cannot be scanned by rotation")
    return np.array(sorted(seen), dtype=np.int64)


def _rotate(x: np.ndarray, moving: np.ndarray, j: int, k: int, angle: float) -> np.ndarray:
    """Rotate ``moving`` atoms by ``angle`` (rad) about the axis ``j -> k`` (right-handed)."""
    axis = x[k] - x[j]
    axis = axis / np.linalg.norm(axis)
    c, s = math.cos(angle), math.sin(angle)
    v = x[moving] - x[k]
    rotated = v * c + np.cross(axis, v) * s + np.outer(v @ axis, axis) * (1.0 - c)
    out = x.copy()
    out[moving] = rotated + x[k]
    return out


# --------------------------------------------------------------------------------------------
# OpenMM plumbing
# --------------------------------------------------------------------------------------------


def _context(system: openmm.System, integrator: openmm.Integrator) -> openmm.Context:
    """A context on the Reference platform.

    Why not CPU: for molecules of tens of atoms in vacuum without cutoff, one force evaluation
    on Reference takes about a quarter of the time it takes on the CPU platform with one thread
    (0.07 ms vs 0.29 ms for 45 atoms), and Reference is deterministic on every machine.
    """
    import openmm

    return openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))


def _openmm_seed(seed: int) -> int:
    """OpenMM reads a seed of 0 as "pick one at random": map every int to 1 .. 2**31 - 1."""
    return int(seed) % (2**31 - 1) + 1


def _as_batch(graph: MoleculeGraph, parameters: ParameterSet, positions: np.ndarray) -> np.ndarray:
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[1:] != (graph.n_atoms, 3):
        raise ValueError(f"positions must be (C, {graph.n_atoms}, 3) or ({graph.n_atoms}, 3) "
                         f"nm, got {np.shape(positions)}")
    if parameters.n_atoms != graph.n_atoms:
        raise ValueError(f"parameters are for {parameters.n_atoms} atoms, the graph has "
                         f"{graph.n_atoms}")
    return x


def _positions(context: openmm.Context) -> np.ndarray:
    import openmm

    state = context.getState(getPositions=True)
    return np.asarray(state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer))


def _mm_energy(context: openmm.Context) -> float:
    import openmm

    state = context.getState(getEnergy=True, groups=_MM_GROUPS)
    return float(state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole))


# --------------------------------------------------------------------------------------------
# Samplers
# --------------------------------------------------------------------------------------------


def etkdg_conformers(graph: MoleculeGraph, n: int, seed: int = 0,
                     allow_undefined_stereo: bool = False) -> np.ndarray:
    """Up to ``n`` ETKDGv3 conformers, (C, N, 3) nm (C <= n after RMSD pruning).

    Unlike :func:`~espaloma_like.molecule.generate_conformers`, coordinates the graph carries
    are never returned in their place: sampling wants fresh conformers.

    Raises
    ------
    UndefinedStereoError
        Undefined stereo and ``allow_undefined_stereo`` is False.
    """
    if graph.positions is not None:
        graph = replace(graph, positions=None)
    # RDKit takes a C int and reads -1 as "random": fold every seed into 0 .. 2**31 - 2
    return generate_conformers(graph, n_conformers=n, seed=int(seed) % (2**31 - 1),
                               allow_undefined_stereo=allow_undefined_stereo)


def minimize(graph: MoleculeGraph, positions: np.ndarray, parameters: ParameterSet,
             tolerance: float = 10.0, max_iterations: int = 2000) -> np.ndarray:
    """Local energy minima (OpenMM L-BFGS) of ``parameters``, one per starting conformation.

    Parameters
    ----------
    graph : MoleculeGraph
    positions : np.ndarray
        (C, N, 3) or (N, 3) starting coordinates, nm.
    parameters : ParameterSet
        Force field, e.g. :func:`sampling_parameters`.
    tolerance : float
        RMS force at which to stop, kJ/mol/nm.
    max_iterations : int
        Iteration cap per conformation (0: none).

    Returns
    -------
    np.ndarray
        (C, N, 3) minimized coordinates, nm.
    """
    import openmm

    from espaloma_like.export.openmm_system import to_openmm_system

    x = _as_batch(graph, parameters, positions)
    context = _context(to_openmm_system(parameters), openmm.VerletIntegrator(0.001))
    out = np.empty_like(x)
    for c in range(x.shape[0]):
        context.setPositions(x[c])
        openmm.LocalEnergyMinimizer.minimize(context, tolerance, max_iterations)
        out[c] = _positions(context)
    return out


def md_snapshots(
    graph: MoleculeGraph, positions: np.ndarray, parameters: ParameterSet,
    temperature: float = 500.0, n_snapshots: int = 2, interval_steps: int = 500,
    step_fs: float = 1.0, seed: int = 0, friction_per_ps: float = 1.0,
) -> np.ndarray:
    """Snapshots of a short vacuum Langevin run (LangevinMiddleIntegrator), no constraints.

    Parameters
    ----------
    graph : MoleculeGraph
    positions : np.ndarray
        (N, 3) start, nm; a minimized conformer is best.
    parameters : ParameterSet
    temperature : float
        K; high (500 K) to reach strained geometries.
    n_snapshots : int
        Snapshots returned, one every ``interval_steps`` steps.
    interval_steps : int
    step_fs : float
        Time step, fs.
    seed : int
        Seeds the initial velocities and the integrator's random forces.
    friction_per_ps : float

    Returns
    -------
    np.ndarray
        (n_snapshots, N, 3) nm.
    """
    import openmm
    from openmm import unit

    from espaloma_like.export.openmm_system import to_openmm_system

    x = _as_batch(graph, parameters, positions)
    if x.shape[0] != 1:
        raise ValueError("md_snapshots takes one starting conformation, (N, 3)")
    integrator = openmm.LangevinMiddleIntegrator(
        temperature * unit.kelvin, friction_per_ps / unit.picosecond, step_fs * unit.femtosecond
    )
    integrator.setRandomNumberSeed(_openmm_seed(seed))
    context = _context(to_openmm_system(parameters), integrator)
    context.setPositions(x[0])
    context.setVelocitiesToTemperature(temperature * unit.kelvin, _openmm_seed(seed))
    out = np.empty((n_snapshots, graph.n_atoms, 3))
    for s in range(n_snapshots):
        integrator.step(interval_steps)
        out[s] = _positions(context)
    return out


def rotatable_torsions(graph: MoleculeGraph) -> list[tuple[int, int, int, int]]:
    """One heavy-atom dihedral ``(i, j, k, l)`` per rotatable bond ``j-k``, by bond order.

    A bond is rotatable when it is a single, non-ring bond between atoms that each have another
    heavy neighbour (so terminal -CH3, -NH2, -OH, -SH, -X rotors are out, as in RDKit's
    rotatable-bond SMARTS) and it is not:

    * an amide-like C(=O/S)-N bond (high barrier, cis/trans is a different molecule for sampling);
    * next to a linear (sp) atom, where the dihedral is undefined;
    * the axis of a symmetric three-fold terminal rotor (-CF3, -CCl3, -C(CH3)3, ...): all three
      other neighbours of one end are equivalent and terminal.

    ``i`` (``l``) is the heavy neighbour of ``j`` (``k``) with the largest atomic number, the
    lowest index breaking ties.
    """
    from rdkit import Chem

    mol = graph.rdkit_mol
    amide = Chem.MolFromSmarts("[CX3](=[O,S])-[NX3]")
    amide_bonds = {frozenset(m[0::2]) for m in mol.GetSubstructMatches(amide)}
    ranks = graph.symmetry_classes

    def heavy(atom: Chem.Atom, exclude: int) -> list[Chem.Atom]:
        return [a for a in atom.GetNeighbors() if a.GetAtomicNum() > 1 and a.GetIdx() != exclude]

    def terminal(atom: Chem.Atom, centre: int) -> bool:
        """A single atom (H, F, Cl...) or a group of it and hydrogens only (a methyl)."""
        return all(n.GetAtomicNum() == 1 for n in atom.GetNeighbors() if n.GetIdx() != centre)

    def symmetric_rotor(atom: Chem.Atom, exclude: int) -> bool:
        others = [a for a in atom.GetNeighbors() if a.GetIdx() != exclude]
        return (len(others) == 3 and len({int(ranks[a.GetIdx()]) for a in others}) == 1
                and all(terminal(a, atom.GetIdx()) for a in others))

    out = []
    for bond in sorted(mol.GetBonds(), key=lambda b: sorted((b.GetBeginAtomIdx(),
                                                              b.GetEndAtomIdx()))):
        if bond.GetBondType() != Chem.BondType.SINGLE or bond.IsInRing():
            continue
        a, b = sorted((bond.GetBeginAtom(), bond.GetEndAtom()), key=lambda t: t.GetIdx())
        j, k = a.GetIdx(), b.GetIdx()
        if frozenset((j, k)) in amide_bonds:
            continue
        if Chem.HybridizationType.SP in (a.GetHybridization(), b.GetHybridization()):
            continue
        side_j, side_k = heavy(a, k), heavy(b, j)
        if not side_j or not side_k:
            continue
        if symmetric_rotor(a, k) or symmetric_rotor(b, j):
            continue
        i = min(side_j, key=lambda t: (-t.GetAtomicNum(), t.GetIdx())).GetIdx()
        l_ = min(side_k, key=lambda t: (-t.GetAtomicNum(), t.GetIdx())).GetIdx()
        out.append((i, j, k, l_))
    return out


def _restraint(quad: tuple[int, int, int, int], k: float) -> openmm.CustomTorsionForce:
    import openmm

    force = openmm.CustomTorsionForce(
        "0.5*k_scan*dtheta^2; dtheta = min(d, 2*pi_scan - d); d = abs(theta - theta0_scan)"
    )
    force.addGlobalParameter("k_scan", k)
    force.addGlobalParameter("theta0_scan", 0.0)
    force.addGlobalParameter("pi_scan", math.pi)
    force.addTorsion(*quad, [])
    force.setForceGroup(_RESTRAINT_GROUP)
    return force


def torsion_scan(
    graph: MoleculeGraph, positions: np.ndarray, parameters: ParameterSet,
    dihedral: tuple[int, int, int, int], n_points: int = 24, restraint_k: float = 5000.0,
    tolerance: float = 10.0, max_iterations: int = 2000,
) -> tuple[np.ndarray, np.ndarray]:
    """Relaxed scan of a rotatable dihedral over 360 degrees.

    The grid is ``-pi + 2 pi m / n_points`` (m = 0 .. n-1). Two sweeps start at the grid point
    nearest the starting dihedral and walk around the circle, one each way; at every point the
    moving side of bond ``j-k`` is first rotated rigidly onto the target, then everything is
    minimized under a harmonic restraint ``0.5 k dtheta^2`` on the dihedral. Of the two sweeps'
    geometries at each point the lower MM energy (restraint excluded) is kept, which removes
    most of the hysteresis of a one-way scan. There is no randomness, hence no seed.

    Parameters
    ----------
    graph : MoleculeGraph
    positions : np.ndarray
        (N, 3) start (a minimized conformer), nm.
    parameters : ParameterSet
    dihedral : (int, int, int, int)
        Atoms ``(i, j, k, l)``; ``j-k`` must not be in a ring.
    n_points : int
    restraint_k : float
        kJ/mol/rad^2.
    tolerance, max_iterations
        As in :func:`minimize`.

    Returns
    -------
    positions : np.ndarray
        (n_points, N, 3) nm, in grid order.
    angles : np.ndarray
        (n_points,) target dihedrals, rad.
    """
    import openmm

    from espaloma_like.export.openmm_system import to_openmm_system

    x0 = _as_batch(graph, parameters, positions)
    if x0.shape[0] != 1:
        raise ValueError("torsion_scan takes one starting conformation, (N, 3)")
    quad = tuple(int(a) for a in dihedral)
    if len(quad) != 4 or len(set(quad)) != 4:
        raise ValueError(f"dihedral must be four distinct atoms, got {dihedral}")
    i, j, k, l_ = quad
    moving = _moving_atoms(graph, j, k)
    system = to_openmm_system(parameters)
    system.addForce(_restraint((i, j, k, l_), restraint_k))
    context = _context(system, openmm.VerletIntegrator(0.001))

    grid = -math.pi + 2.0 * math.pi * np.arange(n_points) / n_points
    start_angle = float(dihedral_angles(x0[0], (i, j, k, l_)))
    wrapped = (grid - start_angle + math.pi) % (2.0 * math.pi) - math.pi
    start = int(np.argmin(np.abs(wrapped)))
    best = np.full(n_points, np.inf)
    out = np.empty((n_points, graph.n_atoms, 3))
    for direction in (1, -1):
        x = x0[0]
        for step in range(n_points):
            m = (start + direction * step) % n_points
            current = float(dihedral_angles(x, (i, j, k, l_)))
            delta = (grid[m] - current + math.pi) % (2.0 * math.pi) - math.pi
            x = _rotate(x, moving, j, k, delta)
            context.setParameter("theta0_scan", float(grid[m]))
            context.setPositions(x)
            openmm.LocalEnergyMinimizer.minimize(context, tolerance, max_iterations)
            x = _positions(context)
            energy = _mm_energy(context)
            if energy < best[m]:
                best[m] = energy
                out[m] = x
    return out, grid


# --------------------------------------------------------------------------------------------
# All together
# --------------------------------------------------------------------------------------------


def sample_molecule(graph: MoleculeGraph, config: SamplingConfig | None = None, seed: int = 0,
                    parameters: ParameterSet | None = None) -> SampledConformations:
    """Conformations of one molecule: ETKDG, minima, hot-MD snapshots, torsion scans.

    Parameters
    ----------
    graph : MoleculeGraph
    config : SamplingConfig, optional
        Defaults to ``SamplingConfig()``.
    seed : int
        Non-negative (any size); seeds ETKDG, the MD runs and the choice of scanned torsions.
    parameters : ParameterSet, optional
        Force field for minimization, MD and scans; :func:`sampling_parameters` if not given.

    Returns
    -------
    SampledConformations
        Valid conformations in the order etkdg, minimized, MD (by starting conformer), scans;
        broken ones are listed in ``rejected``.
    """
    config = config or SamplingConfig()
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if parameters is None:
        parameters = sampling_parameters(graph)
    rng = np.random.default_rng(seed)
    blocks: list[np.ndarray] = []
    kinds: list[str] = []

    etkdg = etkdg_conformers(graph, config.n_etkdg, seed=seed,
                             allow_undefined_stereo=config.allow_undefined_stereo)
    minima = minimize(graph, etkdg, parameters, config.minimize_tolerance,
                      config.minimize_max_iterations)
    if config.include_etkdg:
        blocks.append(etkdg)
        kinds += ["etkdg"] * len(etkdg)
    if config.include_minimized:
        blocks.append(minima)
        kinds += ["minimized"] * len(minima)

    md_seeds = rng.integers(0, 2**31 - 2, size=len(minima))
    if config.n_md_per_conformer:
        label = f"md{config.md_temperature:g}K"
        for start, md_seed in zip(minima, md_seeds, strict=True):
            snaps = md_snapshots(
                graph, start, parameters, temperature=config.md_temperature,
                n_snapshots=config.n_md_per_conformer, interval_steps=config.md_interval_steps,
                step_fs=config.md_step_fs, seed=int(md_seed),
                friction_per_ps=config.md_friction_per_ps,
            )
            blocks.append(snaps)
            kinds += [label] * len(snaps)

    torsions = rotatable_torsions(graph) if config.torsion_scan else []
    if torsions and config.max_scans_per_molecule:
        picked = rng.permutation(len(torsions))[: config.max_scans_per_molecule]
        lowest = minima[_lowest_energy(minima, parameters)]
        for index in sorted(picked.tolist()):
            quad = torsions[index]
            scan, angles = torsion_scan(
                graph, lowest, parameters, quad, n_points=config.n_scan_points,
                restraint_k=config.scan_restraint_k, tolerance=config.minimize_tolerance,
                max_iterations=config.minimize_max_iterations,
            )
            blocks.append(scan)
            tag = "-".join(str(a) for a in quad)
            kinds += [f"scan:{tag}:{math.degrees(a):.1f}" for a in angles]

    positions = np.concatenate(blocks) if blocks else np.zeros((0, graph.n_atoms, 3))
    ok = valid_geometries(
        positions, parameters.bonds.indices.numpy(), parameters.bonds.length.numpy(),
        config.min_nonbonded_distance, config.max_bond_stretch,
    )
    return SampledConformations(
        positions=positions[ok],
        kinds=tuple(kind for kind, good in zip(kinds, ok, strict=True) if good),
        rejected=tuple(kind for kind, good in zip(kinds, ok, strict=True) if not good),
    )


def _lowest_energy(positions: np.ndarray, parameters: ParameterSet) -> int:
    """Index of the conformation of lowest MM energy."""
    import openmm

    from espaloma_like.export.openmm_system import to_openmm_system

    context = _context(to_openmm_system(parameters), openmm.VerletIntegrator(0.001))
    energies = []
    for x in positions:
        context.setPositions(x)
        energies.append(_mm_energy(context))
    return int(np.argmin(energies))
