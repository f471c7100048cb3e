"""Metrics of force-field minima of QM conformers, as OpenFF's Sage benchmark computes them.

OpenFF (``openff-sage/inputs-and-results/benchmarks/qc-opt-geo/03-a-compute-metrics.py``, the
source of ``openff-metrics-NNN.csv``; ``yammbs`` computes the same quantities) scores a force
field by minimizing every QM-optimized conformer with it and comparing the MM minimum with the
QM one:

* ``ddE`` = (E_MM(i) - E_MM(ref)) - (E_QM(i) - E_QM(ref)), kcal/mol, ``ref`` the conformer of
  lowest QM energy in the molecule's group (first one on ties); undefined (None) for ``ref``;
* ``RMSD``: all atoms, symmetry-aware, after optimal overlay, Å (OpenEye ``OERMSD`` with
  automorphisms there; RDKit :func:`rdMolAlign.GetBestRMS` here, which gives the same minimum);
* ``TFD``: RDKit :func:`TorsionFingerprints.GetTFDBetweenMolecules` with its defaults, as the
  RDKit release OpenFF used computed it (:func:`torsion_fingerprint_deviation`; OpenFF's column
  is named ``TDF``); None where RDKit finds no torsion (OpenFF: NaN);
* bond / angle / dihedral / improper RMSDs over geomeTRIC's primitive internal coordinates
  (:func:`internal_coordinates`), built from the QM geometry and evaluated at both geometries:
  Å for bonds, degrees (periodic differences) for the others.

Everything here is pure and deterministic; coordinates are in Å and energies in kcal/mol, the
units of the benchmark's files.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rdkit import Chem

__all__ = [
    "LINEAR_THRESHOLD",
    "METRIC_NAMES",
    "ConformerScore",
    "InternalCoordinates",
    "best_rmsd",
    "internal_coordinate_rmsds",
    "internal_coordinates",
    "relative_energy_errors",
    "score_molecule",
    "torsion_fingerprint_deviation",
]

#: geomeTRIC's ``LinThre``: |cos| above it (about 162 degrees) makes an angle "linear"
LINEAR_THRESHOLD = 0.95
#: per-conformer metrics in report order (attributes of :class:`ConformerScore`)
METRIC_NAMES = ("ddE", "rmsd", "tfd", "bond_rmsd", "angle_rmsd", "dihedral_rmsd", "improper_rmsd")


# --------------------------------------------------------------------------------------------
# ddE
# --------------------------------------------------------------------------------------------


def relative_energy_errors(qm_energies: Sequence[float] | np.ndarray,
                           mm_energies: Sequence[float] | np.ndarray) -> np.ndarray:
    """ddE of every conformer of one molecule, NaN for the reference conformer.

    Parameters
    ----------
    qm_energies, mm_energies : array_like
        (C,) QM energies of the conformers and MM energies of their minima, same unit (the
        result has it; kcal/mol in the benchmark).

    Returns
    -------
    np.ndarray
        (C,) ``(E_MM(i) - E_MM(ref)) - (E_QM(i) - E_QM(ref))`` with ``ref = argmin(E_QM)``
        (the first on ties); NaN at ``ref``.
    """
    qm = np.asarray(qm_energies, dtype=np.float64)
    mm = np.asarray(mm_energies, dtype=np.float64)
    if qm.shape != mm.shape or qm.ndim != 1 or qm.size == 0:
        raise ValueError(f"need two equal non-empty 1-D arrays, got {qm.shape} and {mm.shape}")
    ref = int(np.argmin(qm))
    dde = (mm - mm[ref]) - (qm - qm[ref])
    dde[ref] = np.nan
    return dde


# --------------------------------------------------------------------------------------------
# RMSD and TFD (RDKit)
# --------------------------------------------------------------------------------------------


def _with_coordinates(mol: Chem.Mol, xyz: np.ndarray) -> Chem.Mol:
    """A copy of ``mol`` with one conformer at ``xyz`` (N, 3), Å."""
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.shape != (mol.GetNumAtoms(), 3):
        raise ValueError(f"coordinates of shape {xyz.shape} for {mol.GetNumAtoms()} atoms")
    out = Chem.Mol(mol)
    out.RemoveAllConformers()
    conformer = Chem.Conformer(mol.GetNumAtoms())
    for i, (x, y, z) in enumerate(xyz.tolist()):
        conformer.SetAtomPosition(i, Point3D(x, y, z))
    conformer.Set3D(True)
    out.AddConformer(conformer, assignId=True)
    return out


def best_rmsd(mol: Chem.Mol, reference_xyz: np.ndarray, xyz: np.ndarray) -> float:
    """All-atom RMSD (Å) after the best overlay over the molecule's symmetry-equivalent mappings.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
        The molecule, explicit hydrogens, atoms in the order of the coordinates.
    reference_xyz, xyz : np.ndarray
        (N, 3) coordinates, Å.
    """
    from rdkit.Chem import rdMolAlign

    return float(rdMolAlign.GetBestRMS(_with_coordinates(mol, xyz),
                                       _with_coordinates(mol, reference_xyz)))


def _legacy_connectivity_invariants(mol: Chem.Mol) -> list[int]:
    """RDKit's Morgan connectivity invariants as computed before RDKit 2022.09.

    Those counted hydrogens with ``getTotalNumHs()`` (0 for hydrogens that are atoms of the
    graph); later versions count H neighbours. The hash is RDKit's ``gboost`` vector hash
    (``hash_combine`` in 32 bits), checked against ``GetConnectivityInvariants`` in the tests.
    """
    from rdkit import Chem

    table = Chem.GetPeriodicTable()
    ring_info = mol.GetRingInfo()
    mask = 0xFFFFFFFF
    invariants = []
    for atom in mol.GetAtoms():
        z = atom.GetAtomicNum()
        components = [z, atom.GetTotalDegree(), atom.GetTotalNumHs(), atom.GetFormalCharge() & mask,
                      int(atom.GetMass() - table.GetAtomicWeight(z)) & mask]
        if ring_info.NumAtomRings(atom.GetIdx()):
            components.append(1)
        invariants.append(_vector_hash(components))
    return invariants


def _vector_hash(components: Sequence[int]) -> int:
    """``gboost::hash<std::vector<uint32_t>>`` as RDKit computes it (32-bit ``hash_combine``)."""
    mask = 0xFFFFFFFF
    seed = 0
    for value in components:
        seed = (seed ^ ((value + 0x9E3779B9 + (seed << 6) + (seed >> 2)) & mask)) & mask
    return seed


@dataclass(frozen=True)
class _TorsionSetup:
    """What TFD needs of a molecule, independent of its coordinates."""

    mol: Chem.Mol
    torsions: list[Any]
    ring_torsions: list[Any]
    weights: list[float]


def _torsion_setup(mol: Chem.Mol) -> _TorsionSetup:
    """Torsion lists and weights of ``mol`` as OpenFF's RDKit (before 2022.09) computed them.

    Three differences from today's ``TorsionFingerprints`` decide which reference atom a torsion
    uses and how torsions are weighted, and each changes many TFD values by a few per cent:
    OpenFF's molecules came from ``openff.toolkit.Molecule.to_rdkit`` (MDL aromaticity, so
    five-membered heteroaromatics are kekulized); the Morgan atom invariants counted no
    hydrogen neighbours; and ``_calculateBeta`` tested the end atom of each bond twice
    (``len(nb2) > 1 and len(nb2) > 1``), which later releases fixed.
    """
    from rdkit import Chem
    from rdkit.Chem import TorsionFingerprints as tfp
    from rdkit.Chem import rdFingerprintGenerator

    mol = Chem.Mol(mol)
    Chem.Kekulize(mol, clearAromaticFlags=True)
    Chem.SetAromaticity(mol, Chem.AromaticityModel.AROMATICITY_MDL)

    radius = 2
    generator = rdFingerprintGenerator.GetMorganGenerator(radius, includeRedundantEnvironments=True)
    output = rdFingerprintGenerator.AdditionalOutput()
    output.AllocateBitInfoMap()
    generator.GetSparseCountFingerprint(
        mol, customAtomInvariants=_legacy_connectivity_invariants(mol), additionalOutput=output)
    invariants = [0] * mol.GetNumAtoms()
    for bit, environments in output.GetBitInfoMap().items():
        for atom, r in environments:
            if r == radius:
                invariants[atom] = bit

    bonds = tfp._getBondsForTorsions(mol, True)
    torsions = []
    for a1, a2, nb1, nb2 in bonds:
        d1 = tfp._getIndexforTorsion(nb1, invariants)
        d2 = tfp._getIndexforTorsion(nb2, invariants)
        # maxDev="equal": every non-ring torsion is normalized by 180 degrees
        torsions.append(([(x.GetIdx(), a1, a2, y.GetIdx()) for x in d1 for y in d2], 180.0))
    ring_torsions = []
    for ring in Chem.GetSymmSSSR(mol):
        num = len(ring)
        max_dev = 180.0 if num >= 14 else 180.0 * math.exp(-0.025 * (num - 14) ** 2)
        ring_torsions.append(([tuple(ring[(i + k) % num] for k in range(4)) for i in range(num)],
                              max_dev))

    def heavy_degree(atom: Any) -> int:
        return sum(1 for n in atom.GetNeighbors() if n.GetAtomicNum() != 1)

    distances = Chem.GetDistanceMatrix(mol)
    aid1, aid2 = tfp._findCentralBond(mol, distances)
    d_max = 0.0
    for bond in mol.GetBonds():
        if heavy_degree(bond.GetEndAtom()) > 1:  # sic: the begin atom is not tested (see above)
            d_max = max(d_max, distances[aid1][bond.GetBeginAtomIdx()],
                        distances[aid1][bond.GetEndAtomIdx()])
    beta = -math.log(0.1) / (d_max / 2.0) ** 2

    def bond_distance(b1: int, b2: int) -> float:
        return float(min(distances[aid1][b1], distances[aid1][b2], distances[aid2][b1],
                         distances[aid2][b2]) + 1)

    weights = []
    for b1, b2, _, _ in bonds:
        d = 0.0 if {b1, b2} == {aid1, aid2} else bond_distance(b1, b2)
        weights.append(math.exp(-beta * d * d))
    for ring_bonds in mol.GetRingInfo().BondRings():
        mean = sum(bond_distance(mol.GetBondWithIdx(b).GetBeginAtomIdx(),
                                 mol.GetBondWithIdx(b).GetEndAtomIdx())
                   for b in ring_bonds) / len(ring_bonds)
        weights.append(math.exp(-beta * mean * mean) * len(ring_bonds) / 2.0)
    return _TorsionSetup(mol, torsions, ring_torsions, weights)


def _tfd(setup: _TorsionSetup, reference_xyz: np.ndarray, xyz: np.ndarray) -> float:
    from rdkit.Chem import TorsionFingerprints as tfp

    reference = _with_coordinates(setup.mol, reference_xyz)
    # as GetTFDBetweenMolecules: the second molecule in the atom order of a substructure match
    other = tfp._getSameAtomOrder(reference, _with_coordinates(setup.mol, xyz))
    return float(tfp.CalculateTFD(
        tfp.CalculateTorsionAngles(reference, setup.torsions, setup.ring_torsions),
        tfp.CalculateTorsionAngles(other, setup.torsions, setup.ring_torsions),
        weights=setup.weights))


def _torsion_setup_or_none(mol: Chem.Mol) -> _TorsionSetup | None:
    try:
        return _torsion_setup(mol)
    except (IndexError, ZeroDivisionError):  # no central bond: RDKit raises IndexError
        return None


def torsion_fingerprint_deviation(mol: Chem.Mol, reference_xyz: np.ndarray,
                                  xyz: np.ndarray) -> float | None:
    """Torsion fingerprint deviation between two geometries, exactly as OpenFF's ``TDF`` column.

    RDKit's ``GetTFDBetweenMolecules`` with its defaults (torsion weights, ``maxDev="equal"``,
    ``symmRadius=2``, colinear bonds ignored), in the RDKit version OpenFF used
    (:func:`_torsion_setup` says what changed since). None where RDKit finds no central bond and
    raises ``IndexError`` (OpenFF writes NaN there: no non-terminal rotatable bond or ring).

    Parameters
    ----------
    mol : rdkit.Chem.Mol
        The molecule, explicit hydrogens, atoms in the order of the coordinates.
    reference_xyz, xyz : np.ndarray
        (N, 3) coordinates, Å (the QM conformer first).
    """
    setup = _torsion_setup_or_none(mol)
    return None if setup is None else _tfd(setup, reference_xyz, xyz)


# --------------------------------------------------------------------------------------------
# Internal coordinates (geomeTRIC's primitive rules)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InternalCoordinates:
    """geomeTRIC's primitive internal coordinates of one molecule (the ones OpenFF scores).

    Attributes
    ----------
    bonds : np.ndarray
        (B, 2) int64 bonded pairs.
    angles : np.ndarray
        (A, 3) int64, vertex in the middle; neither near-linear (|cos| >= 0.95) nor replaced
        by an out-of-plane coordinate.
    dihedrals : np.ndarray
        (D, 4) int64, ``a-b-c-d`` with ``b-c`` a bond or two ends of a linear chain.
    impropers : np.ndarray
        (I, 4) int64 out-of-plane coordinates, central atom first.
    """

    bonds: np.ndarray
    angles: np.ndarray
    dihedrals: np.ndarray
    impropers: np.ndarray


def _unit(v: np.ndarray) -> np.ndarray:
    return np.asarray(v / np.linalg.norm(v))


def internal_coordinates(bonds: np.ndarray | Sequence[tuple[int, int]],
                         xyz: np.ndarray) -> InternalCoordinates:
    """The bond, angle, dihedral and out-of-plane primitives geomeTRIC builds for a molecule.

    The rules are those of ``geometric.internal.PrimitiveInternalCoordinates.makePrimitives``
    (which OpenFF's benchmark calls on the QM geometry): an angle for every pair of neighbours
    of an atom unless it is near-linear (|cos| >= 0.95); at an atom with three coplanar
    neighbours (normals of the planes ``b-i-j`` and ``i-j-k`` parallel to |cos| > 0.95, first
    such ordering ``i, j, k`` in sorted order), the angle ``i-b-j`` is replaced by the
    out-of-plane coordinate ``b-i-j-k``; a dihedral ``a-b-c-d`` for every bond ``b-c`` (or pair
    of atoms of a linear chain) and neighbours ``a``, ``d`` off the chain, unless an angle in it
    is near-linear. Translations, rotations and linear-angle coordinates are not scored.

    Parameters
    ----------
    bonds : array_like
        (B, 2) bonded atom pairs.
    xyz : np.ndarray
        (N, 3) the geometry the coordinates are chosen at (the QM one), any length unit.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    n_atoms = xyz.shape[0]
    edges = [(int(min(i, j)), int(max(i, j))) for i, j in np.asarray(bonds).reshape(-1, 2).tolist()]
    neighbors: list[list[int]] = [[] for _ in range(n_atoms)]
    for i, j in edges:
        neighbors[i].append(j)
        neighbors[j].append(i)
    for row in neighbors:
        row.sort()

    def abs_cos(a: int, b: int, c: int) -> float:  # |cos| of the angle a-b-c (vertex b)
        return abs(float(np.clip(np.dot(_unit(xyz[a] - xyz[b]), _unit(xyz[c] - xyz[b])), -1, 1)))

    def normal(a: int, b: int, c: int) -> np.ndarray:
        return _unit(np.cross(_unit(xyz[a] - xyz[b]), _unit(xyz[c] - xyz[b])))

    angles: dict[tuple[int, int, int], None] = {}
    for b in range(n_atoms):
        for a, c in itertools.combinations(neighbors[b], 2):
            if abs_cos(a, b, c) < LINEAR_THRESHOLD:
                angles[(a, b, c)] = None
    impropers: dict[tuple[int, frozenset[int]], tuple[int, int, int, int]] = {}
    for b in range(n_atoms):
        for triple in itertools.combinations(neighbors[b], 3):
            for i, j, k in sorted(itertools.permutations(triple, 3)):
                if abs_cos(b, i, j) > LINEAR_THRESHOLD or abs_cos(i, j, k) > LINEAR_THRESHOLD:
                    continue
                if abs(float(np.dot(normal(b, i, j), normal(i, j, k)))) > LINEAR_THRESHOLD:
                    angles.pop((min(i, j), b, max(i, j)), None)
                    impropers.setdefault((b, frozenset((i, j, k))), (b, i, j, k))
                    break

    # chains of atoms in a straight line, grown from every bond in place as geomeTRIC does
    lines = [list(edge) for edge in edges]
    while True:
        before = copy.deepcopy(lines)
        for line in lines:
            first, last = line[0], line[-1]
            for atom in neighbors[first]:
                if atom not in line and all(abs_cos(atom, first, other) > LINEAR_THRESHOLD
                                            for other in line[1:] if other != first):
                    line.insert(0, atom)
            for atom in neighbors[last]:
                if atom not in line and all(abs_cos(other, last, atom) > LINEAR_THRESHOLD
                                            for other in line[:-1] if other != last):
                    line.append(atom)
        if lines == before:
            break
    dihedrals: dict[tuple[int, int, int, int], None] = {}
    for chain in dict.fromkeys(tuple(line) for line in lines):
        for b, c in itertools.combinations(chain, 2):
            b, c = min(b, c), max(b, c)
            for a in neighbors[b]:
                for d in neighbors[c]:
                    if a in chain or d in chain or a == d:
                        continue
                    if abs_cos(a, b, c) > LINEAR_THRESHOLD or abs_cos(b, c, d) > LINEAR_THRESHOLD:
                        continue
                    quad = (a, b, c, d)
                    if quad[::-1] not in dihedrals:
                        dihedrals[quad] = None

    def array(rows: Any, width: int) -> np.ndarray:
        return np.asarray(list(rows), dtype=np.int64).reshape(-1, width)

    return InternalCoordinates(bonds=array(edges, 2), angles=array(angles, 3),
                               dihedrals=array(dihedrals, 4), impropers=array(impropers.values(), 4))


def _distances(xyz: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.asarray(np.linalg.norm(xyz[idx[:, 0]] - xyz[idx[:, 1]], axis=1))


def _angles(xyz: np.ndarray, idx: np.ndarray) -> np.ndarray:
    u = xyz[idx[:, 0]] - xyz[idx[:, 1]]
    v = xyz[idx[:, 2]] - xyz[idx[:, 1]]
    cos = (u * v).sum(1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    return np.asarray(np.arccos(np.clip(cos, -1.0, 1.0)))


def _dihedrals(xyz: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """geomeTRIC's dihedral (and out-of-plane) value, radians in (-pi, pi]."""
    v1 = xyz[idx[:, 1]] - xyz[idx[:, 0]]
    v2 = xyz[idx[:, 2]] - xyz[idx[:, 1]]
    v3 = xyz[idx[:, 3]] - xyz[idx[:, 2]]
    cross1 = np.cross(v2, v3)
    cross2 = np.cross(v1, v2)
    arg1 = (v1 * cross1).sum(1) * np.linalg.norm(v2, axis=1)
    arg2 = (cross1 * cross2).sum(1)
    return np.asarray(np.arctan2(arg1, arg2))


def _rmsd(reference: np.ndarray, values: np.ndarray, period: float | None = None) -> float | None:
    """ForceBalance's ``compute_rmsd``: sqrt(mean(diff^2)), differences wrapped to the period."""
    if reference.size == 0:
        return None
    diff = reference - values
    if period is not None:
        diff = (diff + 0.5 * period) % period - 0.5 * period
    return float(np.sqrt(np.mean(diff**2)))


def internal_coordinate_rmsds(coordinates: InternalCoordinates, reference_xyz: np.ndarray,
                              xyz: np.ndarray) -> dict[str, float | None]:
    """RMS differences of the internal coordinates between two geometries.

    Parameters
    ----------
    coordinates : InternalCoordinates
        From :func:`internal_coordinates` (of the reference geometry).
    reference_xyz, xyz : np.ndarray
        (N, 3) geometries, Å.

    Returns
    -------
    dict
        ``bond_rmsd`` (Å), ``angle_rmsd``, ``dihedral_rmsd``, ``improper_rmsd`` (degrees,
        differences wrapped to [-180, 180)); None for a kind the molecule has none of.
    """
    ref = np.asarray(reference_xyz, dtype=np.float64)
    new = np.asarray(xyz, dtype=np.float64)
    degrees = 180.0 / math.pi
    return {
        "bond_rmsd": _rmsd(_distances(ref, coordinates.bonds), _distances(new, coordinates.bonds)),
        "angle_rmsd": _rmsd(_angles(ref, coordinates.angles) * degrees,
                            _angles(new, coordinates.angles) * degrees, 360.0),
        "dihedral_rmsd": _rmsd(_dihedrals(ref, coordinates.dihedrals) * degrees,
                               _dihedrals(new, coordinates.dihedrals) * degrees, 360.0),
        "improper_rmsd": _rmsd(_dihedrals(ref, coordinates.impropers) * degrees,
                               _dihedrals(new, coordinates.impropers) * degrees, 360.0),
    }


# --------------------------------------------------------------------------------------------
# One molecule
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConformerScore:
    """The metrics of one QM conformer minimized with one method.

    Attributes
    ----------
    record_id : str
        QCArchive record id of the QM conformer.
    qm_energy, mm_energy : float
        QM energy of the conformer and MM energy of its MM minimum, kcal/mol.
    ddE : float or None
        kcal/mol; None for the molecule's reference (lowest-QM-energy) conformer.
    rmsd : float
        All-atom symmetry-aware RMSD after overlay, Å.
    tfd : float or None
        Torsion fingerprint deviation (None: no torsions).
    bond_rmsd : float or None
        Å.
    angle_rmsd, dihedral_rmsd, improper_rmsd : float or None
        Degrees; None where the molecule has no coordinate of that kind.
    """

    record_id: str
    qm_energy: float
    mm_energy: float
    ddE: float | None
    rmsd: float
    tfd: float | None
    bond_rmsd: float | None
    angle_rmsd: float | None
    dihedral_rmsd: float | None
    improper_rmsd: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def score_molecule(mol: Chem.Mol, record_ids: Sequence[str], qm_xyz: np.ndarray,
                   qm_energies: np.ndarray, mm_xyz: np.ndarray,
                   mm_energies: np.ndarray) -> list[ConformerScore]:
    """Score the MM minima of every QM conformer of one molecule.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
        The molecule (explicit hydrogens, sanitized), atoms in the order of the coordinates.
    record_ids : sequence of str
        (C,) record ids, one per conformer.
    qm_xyz, mm_xyz : np.ndarray
        (C, N, 3) QM conformers and their MM minima, Å.
    qm_energies, mm_energies : np.ndarray
        (C,) QM energies and MM energies of the minima, kcal/mol.

    Returns
    -------
    list of ConformerScore
        One per conformer, input order; ddE relative to the lowest-QM-energy conformer.
    """
    qm_xyz = np.asarray(qm_xyz, dtype=np.float64)
    mm_xyz = np.asarray(mm_xyz, dtype=np.float64)
    n_conf = len(record_ids)
    if qm_xyz.shape != mm_xyz.shape or qm_xyz.shape[0] != n_conf:
        raise ValueError(f"{n_conf} record ids, QM {qm_xyz.shape} and MM {mm_xyz.shape} coordinates")
    dde = relative_energy_errors(qm_energies, mm_energies)
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    torsion_setup = _torsion_setup_or_none(mol)
    scores = []
    for c in range(n_conf):
        ics = internal_coordinates(bonds, qm_xyz[c])
        scores.append(ConformerScore(
            record_id=str(record_ids[c]),
            qm_energy=float(qm_energies[c]),
            mm_energy=float(mm_energies[c]),
            ddE=None if math.isnan(dde[c]) else float(dde[c]),
            rmsd=best_rmsd(mol, qm_xyz[c], mm_xyz[c]),
            tfd=None if torsion_setup is None else _tfd(torsion_setup, qm_xyz[c], mm_xyz[c]),
            **internal_coordinate_rmsds(ics, qm_xyz[c], mm_xyz[c]),
        ))
    return scores
