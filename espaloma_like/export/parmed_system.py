"""A whole OpenMM System (ligand, water, ions, protein) as a ParmEd ``Structure``, checked first.

``parmed.openmm.load_topology`` reads any System, but GROMACS and Amber files can hold only
part of what a System can say, and ParmEd does not always refuse the rest: a Urey-Bradley
spring that OpenMM's ``ForceField`` puts into the bond force becomes a false bond (with false
exclusions, and an H-H "bond" that ``HBonds`` would constrain), a ``CustomNonbondedForce`` is
dropped with a warning, an exception between distant atoms is lost in a prmtop. Here the
System is checked and normalized before ParmEd sees it, and anything that the files would
not reproduce exactly is an :class:`ExportError` that says why:

* **Forces.** ``HarmonicBondForce``, ``HarmonicAngleForce``, ``PeriodicTorsionForce`` and one
  ``NonbondedForce`` (no parameter offsets, no virtual sites); ``CMMotionRemover``,
  barostats and thermostats are run settings and are left out, and so are bonded forces
  without terms. Anything else (CHARMM's ``LennardJonesForce``, CMAP, custom forces) is
  refused.
* **Bond terms.** Every bond of the Topology needs a harmonic term. Terms between the outer
  atoms of an angle are Urey-Bradley springs (written as GROMACS angle function 5 and as
  chamber-prmtop Urey-Bradley terms, never as bonds); a term between any other unbonded pair
  is refused.
* **Constraints** are a run setting in both formats (GROMACS ``constraints`` and
  ``[ settles ]``, Amber SHAKE / SETTLE, OpenMM's ``constraints`` / ``rigidWater`` when it
  reads the files). A constrained bond or water angle with no harmonic term (a System built
  with ``constraints=HBonds`` or ``rigidWater=True``) has no parameters to write: refused,
  with the fix (``constraints=None, rigidWater=False``, or ``flexibleConstraints=True``).
* **Nonbonded exceptions** must be what the formats derive from the bond graph: 1-2 and 1-3
  pairs excluded, every 1-4 pair an exception (any scales: ParmEd writes the Amber
  ``SCEE`` / ``SCNB`` of each torsion and the GROMACS ``[ pairs ]`` with explicit sigma and
  epsilon), no exception between atoms further apart. GROMACS has one ``fudgeQQ`` per
  system, so a GROMACS file needs one Coulomb 1-4 scale for all 1-4 pairs.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like.exceptions import EspalomaLikeError

if TYPE_CHECKING:
    import openmm
    import openmm.app
    import parmed

#: Forces whose terms the files carry.
WRITTEN_FORCES = ("HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce",
                  "NonbondedForce")
#: Forces that are run settings (or thermostats / barostats), not parameters: left out.
RUN_SETTING_FORCES = ("CMMotionRemover", "AndersenThermostat", "MonteCarloBarostat",
                      "MonteCarloAnisotropicBarostat", "MonteCarloMembraneBarostat",
                      "MonteCarloFlexibleBarostat")
#: Relative spread allowed between the Coulomb 1-4 scales of a GROMACS file's pairs.
SCALE_TOLERANCE = 1e-6
_SHOWN = 5  # examples quoted in an error message


class ExportError(EspalomaLikeError, ValueError):
    """A System holds something the GROMACS or Amber file would not reproduce exactly."""


def _rows_nm(value: Any) -> np.ndarray:
    """Rows of floats in nm from a Quantity, a sequence of Quantities (Vec3 or not) or plain
    numbers in nm."""
    from openmm import unit

    if hasattr(value, "value_in_unit"):
        value = value.value_in_unit(unit.nanometer)
    rows = [row.value_in_unit(unit.nanometer) if hasattr(row, "value_in_unit") else row
            for row in value]
    return np.array([[float(x) for x in row] for row in rows], dtype=np.float64)


def positions_nm(positions: Any, n_atoms: int) -> np.ndarray:
    """(N, 3) float64 coordinates in nm from an ``openmm.unit.Quantity`` (any length unit),
    a list of Quantities, or an array-like in nm."""
    xyz = _rows_nm(positions)
    if xyz.shape != (n_atoms, 3):
        raise ValueError(f"positions must have shape ({n_atoms}, 3), got {xyz.shape}")
    return xyz


def box_vectors_nm(box_vectors: Any) -> np.ndarray:
    """(3, 3) box vectors in nm from a Quantity, three Vec3 (Quantities or nm) or an array in
    nm, in OpenMM's reduced form."""
    box = _rows_nm(box_vectors)
    if box.shape != (3, 3) or box[0, 1] or box[0, 2] or box[1, 2] or min(np.diag(box)) <= 0:
        raise ValueError("box_vectors must be in OpenMM's form: a = (ax, 0, 0), b = (bx, by, 0), "
                         f"c = (cx, cy, cz) with ax, by, cz > 0; got {box.tolist()}")
    return box


def _angle(u: np.ndarray, v: np.ndarray) -> float:
    """Angle between two vectors, degrees."""
    cosine = u @ v / np.linalg.norm(u) / np.linalg.norm(v)
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def lengths_and_angles(box: np.ndarray) -> np.ndarray:
    """ParmEd's box of (3, 3) vectors in nm: (a, b, c) in angstrom and (alpha, beta, gamma) in
    degrees."""
    a, b, c = box
    return np.array([*(np.linalg.norm(box, axis=1) * 10.0), _angle(b, c), _angle(a, c),
                     _angle(a, b)])


def canonical_box(lengths_angles: np.ndarray) -> np.ndarray:
    """(3, 3) box vectors in nm, a along x and b in the xy plane, from ParmEd's box (angstrom,
    degrees): the construction of OpenMM's ``computePeriodicBoxVectors`` before reduction."""
    a, b, c = np.asarray(lengths_angles[:3], dtype=np.float64) / 10.0
    alpha, beta, gamma = np.radians(np.asarray(lengths_angles[3:], dtype=np.float64))
    cx = c * np.cos(beta)
    cy = c * (np.cos(alpha) - np.cos(beta) * np.cos(gamma)) / np.sin(gamma)
    return np.array([[a, 0.0, 0.0], [b * np.cos(gamma), b * np.sin(gamma), 0.0],
                     [cx, cy, np.sqrt(c * c - cx * cx - cy * cy)]])


def amber_frame(box: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """ParmEd's box (angstrom, degrees) of the lattice of ``box`` ((3, 3) nm) with three equal
    angles, and the rotation (3, 3) to apply to the coordinates (row vectors), or None.

    A prmtop stores one box angle, which readers (OpenMM's ``AmberPrmtopFile``, Amber's
    truncated octahedron of 109.47 degrees) take for all three. OpenMM's truncated octahedron
    has angles (70.5, 109.5, 70.5) and its rhombic dodecahedron (60, 60, 90); each lattice
    has a right-handed basis of three equal angles (109.5; 60), but in another orientation,
    so the coordinates are rotated with it (a rigid rotation of the periodic system, which
    changes no energy). Rectangular boxes, and boxes whose angles are equal, stay as they are.

    Raises
    ------
    ExportError
        The lattice has no basis of short vectors with three equal angles (a general
        triclinic box): a prmtop cannot hold it.
    """
    import itertools

    current = lengths_and_angles(box)
    if np.ptp(current[3:]) < 1e-6:
        return current, None
    volume = np.linalg.det(box)
    candidates = [np.array(c) @ box for c in itertools.product((-1, 0, 1), repeat=3) if any(c)]
    best: np.ndarray | None = None
    for triple in itertools.permutations(candidates, 3):
        basis = np.array(triple)
        if abs(np.linalg.det(basis) - volume) > 1e-9 * abs(volume):
            continue  # not a right-handed basis of the same lattice
        described = lengths_and_angles(basis)
        if np.ptp(described[3:]) < 1e-6 and (
                best is None or described[:3].sum() < lengths_and_angles(best)[:3].sum() - 1e-9):
            best = basis
    if best is None:
        raise ExportError(
            f"the box (angles {', '.join(f'{a:.2f}' for a in current[3:])} degrees) has no basis "
            "with three equal angles; a prmtop stores one box angle for all three (rectangular "
            "boxes, truncated octahedra and rhombic dodecahedra can be written)")
    described = lengths_and_angles(best)
    rotation = np.linalg.solve(best, canonical_box(described))  # best @ rotation = canonical
    return described, rotation


def _distances(n_atoms: int, bonds: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """``{(i, j): d}`` for i < j at bond-graph distance d = 1, 2 or 3 (the shortest path)."""
    neighbours: list[list[int]] = [[] for _ in range(n_atoms)]
    for i, j in bonds:
        neighbours[i].append(j)
        neighbours[j].append(i)
    found: dict[tuple[int, int], int] = {}
    for start in range(n_atoms):
        if not neighbours[start]:
            continue
        seen = {start}
        frontier = [start]
        for depth in (1, 2, 3):
            frontier = [b for a in frontier for b in neighbours[a] if b not in seen]
            frontier = list(dict.fromkeys(frontier))
            seen.update(frontier)
            for other in frontier:
                if other > start:
                    found[(start, other)] = depth
    return found


def _examples(items: list[Any]) -> str:
    shown = ", ".join(str(item) for item in items[:_SHOWN])
    return shown + (f" (and {len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")


def _force_name(force: openmm.Force) -> str:
    return type(force).__name__


def _empty(force: openmm.Force) -> bool:
    """A bonded force without terms (CHARMM's CMAP force in a System without protein):
    leaving it out changes nothing."""
    for counter in ("getNumBonds", "getNumAngles", "getNumTorsions"):
        if hasattr(force, counter):
            return bool(getattr(force, counter)() == 0)
    return False


def normalized_system(topology: openmm.app.Topology, system: openmm.System) -> openmm.System:
    """A copy of ``system`` in the shape ParmEd reads as intended, after the checks of the
    module notes: one HarmonicBondForce of the Topology's bonds first, the angle forces,
    then (when there are any) one HarmonicBondForce of Urey-Bradley springs, the torsions and
    the NonbondedForce; run-setting forces and constraints left out.

    Raises
    ------
    ExportError
        Something the files would not reproduce (see the module notes).
    """
    import openmm

    n_atoms = topology.getNumAtoms()
    if system.getNumParticles() != n_atoms:
        raise ExportError(f"the Topology has {n_atoms} atoms but the System "
                          f"{system.getNumParticles()} particles")
    virtual = [i for i in range(n_atoms) if system.isVirtualSite(i)]
    if virtual:
        raise ExportError(f"the System has {len(virtual)} virtual sites (4- or 5-site water, "
                          "extra points); they are not exported")
    unknown = sorted({_force_name(f) for f in system.getForces() if not _empty(f)}
                     - set(WRITTEN_FORCES) - set(RUN_SETTING_FORCES))
    if unknown:
        raise ExportError(
            f"the System has {', '.join(unknown)}, which GROMACS and Amber files made by ParmEd "
            "cannot hold exactly (CHARMM's LennardJonesForce and NBFIX are CustomNonbondedForce "
            "and CustomBondForce; so are the default model's corrections within the molecule: "
            "build the System with the 'portable' model for these files); exportable forces: "
            f"{', '.join(WRITTEN_FORCES)}")
    nonbonded = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]
    if len(nonbonded) > 1:
        raise ExportError(f"the System has {len(nonbonded)} NonbondedForces; one can be exported")
    if nonbonded and (nonbonded[0].getNumParticleParameterOffsets()
                      or nonbonded[0].getNumExceptionParameterOffsets()):
        raise ExportError("the NonbondedForce has parameter offsets (alchemical "
                          "parameters); they are not exported")

    topology_bonds = sorted({(min(a.index, b.index), max(a.index, b.index))
                             for a, b in topology.bonds()})
    distances = _distances(n_atoms, topology_bonds)
    angle_terms = {(min(i, k), max(i, k)) for force in system.getForces()
                   if isinstance(force, openmm.HarmonicAngleForce)
                   for i, _j, k, *_ in (force.getAngleParameters(n)
                                        for n in range(force.getNumAngles()))}
    bonds, springs = openmm.HarmonicBondForce(), openmm.HarmonicBondForce()
    bonded: set[tuple[int, int]] = set()
    sprung: set[tuple[int, int]] = set()
    strays: list[tuple[int, int]] = []
    for force in system.getForces():
        if not isinstance(force, openmm.HarmonicBondForce):
            continue
        for n in range(force.getNumBonds()):
            i, j, length, k = force.getBondParameters(n)
            pair = (min(i, j), max(i, j))
            # a pair may hold a bond and a spring (3-membered rings): the first term is the bond
            if distances.get(pair) == 1 and pair not in bonded:
                bonds.addBond(i, j, length, k)
                bonded.add(pair)
            elif pair in angle_terms and pair not in sprung:
                springs.addBond(i, j, length, k)
                sprung.add(pair)
            else:
                strays.append(pair)
    if strays:
        raise ExportError(
            f"{len(strays)} harmonic bond terms join atoms that are neither bonded in the "
            "Topology nor the outer atoms of an angle (or repeat a term): "
            f"{_examples(strays)}; the files would turn them into bonds")
    unparametrized = sorted(set(topology_bonds) - bonded)
    _check_constraints(system, unparametrized, bonded, angle_terms)
    if unparametrized:
        raise ExportError(f"{len(unparametrized)} bonds of the Topology have no harmonic term: "
                          f"{_examples(unparametrized)}")
    if nonbonded:
        _check_exceptions(nonbonded[0], distances)

    clean = openmm.System()
    for i in range(n_atoms):
        clean.addParticle(system.getParticleMass(i))
    clean.setDefaultPeriodicBoxVectors(*system.getDefaultPeriodicBoxVectors())
    ordered = [bonds]
    ordered += [openmm.XmlSerializer.clone(f) for f in system.getForces()
                if isinstance(f, openmm.HarmonicAngleForce)]
    if springs.getNumBonds():
        ordered.append(springs)
    ordered += [openmm.XmlSerializer.clone(f) for f in system.getForces()
                if isinstance(f, openmm.PeriodicTorsionForce)]
    ordered += [openmm.XmlSerializer.clone(f) for f in nonbonded]
    for force in ordered:
        clean.addForce(force)
    return clean


def _check_constraints(system: openmm.System, unparametrized: list[tuple[int, int]],
                       bonded: set[tuple[int, int]], angle_terms: set[tuple[int, int]]) -> None:
    """Constraints are left to the run settings, so each must keep a harmonic term."""
    if not system.getNumConstraints():
        return
    bare = []
    for n in range(system.getNumConstraints()):
        i, j, _ = system.getConstraintParameters(n)
        pair = (min(i, j), max(i, j))
        if pair not in bonded and pair not in angle_terms:
            bare.append(pair)
    if bare or unparametrized:
        raise ExportError(
            f"the System has {system.getNumConstraints()} constraints, and "
            f"{len(bare) + len(unparametrized)} constrained bonds or angles have no harmonic "
            "term to write (a System made with constraints=HBonds or rigidWater=True). The "
            "files keep harmonic terms and leave constraints to the run settings: create the "
            "System for export with constraints=None, rigidWater=False (or "
            "flexibleConstraints=True), and choose constraints when the files are read")


def _check_exceptions(force: openmm.NonbondedForce, distances: dict[tuple[int, int], int]) -> None:
    """Exceptions as the file formats derive them from the bond graph (module notes)."""
    from openmm import unit

    excepted: set[tuple[int, int]] = set()
    distant, not_excluded = [], []
    for n in range(force.getNumExceptions()):
        i, j, qq, _sigma, epsilon = force.getExceptionParameters(n)
        pair = (min(i, j), max(i, j))
        excepted.add(pair)
        d = distances.get(pair)
        if d is None:
            distant.append(pair)
        elif d < 3 and (qq.value_in_unit(unit.elementary_charge**2) != 0.0
                        or epsilon.value_in_unit(unit.kilojoule_per_mole) != 0.0):
            not_excluded.append(pair)
    if distant:
        raise ExportError(
            f"{len(distant)} nonbonded exceptions join atoms more than three bonds apart "
            f"(NBFIX pairs or extra exclusions): {_examples(distant)}; the files derive "
            "exclusions and 1-4 pairs from the bond graph and would lose them")
    if not_excluded:
        raise ExportError(
            f"{len(not_excluded)} 1-2 or 1-3 pairs interact (their exceptions are not zero): "
            f"{_examples(not_excluded)}; the files exclude every 1-2 and 1-3 pair")
    missing = sorted(pair for pair in distances if pair not in excepted)
    if missing:
        raise ExportError(
            f"{len(missing)} 1-2, 1-3 or 1-4 pairs have no nonbonded exception: "
            f"{_examples(missing)}; the files exclude 1-2 and 1-3 pairs and give 1-4 pairs "
            "their own parameters, so the System must as well")


def coulomb_14_scales(structure: parmed.Structure) -> list[float]:
    """The distinct Coulomb 1-4 scales of ``structure``'s 1-4 pairs (within
    :data:`SCALE_TOLERANCE`), in order of first appearance."""
    scales: list[float] = []
    for adjust in structure.adjusts:
        scale = adjust.type.chgscale
        if scale is None or adjust.atom1.charge * adjust.atom2.charge == 0.0:
            continue
        if not any(abs(scale - s) <= SCALE_TOLERANCE * max(abs(s), 1e-12) for s in scales):
            scales.append(float(scale))
    return scales


def to_parmed_system(topology: openmm.app.Topology, system: openmm.System, positions: Any,
                     box_vectors: Any = None) -> parmed.Structure:
    """A parametrized ParmEd ``Structure`` of a whole System (see the module notes).

    Parameters
    ----------
    topology : openmm.app.Topology
        Atoms, residues and bonds, in the System's particle order (``Modeller.topology``).
    system : openmm.System
        Its parameters: NoCutoff, cutoff or PME alike (the files hold no nonbonded method).
        Created without constraints (see the module notes).
    positions : openmm.unit.Quantity or array-like
        (N, 3) coordinates; nm when plain numbers.
    box_vectors : Quantity, three Vec3 or (3, 3) array (nm), optional
        The periodic box; else the Topology's, else the System's default box when the System
        is periodic; no box when none of them.

    Returns
    -------
    parmed.Structure
        Coordinates in angstrom, ``box`` as lengths (angstrom) and angles (degrees); angles with
        a Urey-Bradley spring carry GROMACS function 5.

    Raises
    ------
    ExportError
        The System holds something the files would not reproduce.
    """
    import parmed

    n_atoms = topology.getNumAtoms()
    xyz = positions_nm(positions, n_atoms)
    clean = normalized_system(topology, system)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", parmed.exceptions.OpenMMWarning)
        structure = parmed.openmm.load_topology(topology, clean, xyz=xyz * 10.0)
    problems = [str(w.message) for w in caught if issubclass(w.category, parmed.exceptions.OpenMMWarning)]
    if problems or structure.unknown_functional:
        # the checks above should have caught it; never write a file ParmEd doubts
        raise ExportError("ParmEd could not read the System exactly: " + "; ".join(problems))
    if box_vectors is None:
        box_vectors = topology.getPeriodicBoxVectors()
    if box_vectors is None and system.usesPeriodicBoundaryConditions():
        box_vectors = system.getDefaultPeriodicBoxVectors()
    structure.box = None if box_vectors is None else lengths_and_angles(box_vectors_nm(box_vectors))
    if structure.urey_bradleys:
        springs = {frozenset((ub.atom1.idx, ub.atom2.idx)) for ub in structure.urey_bradleys}
        for angle in structure.angles:
            if frozenset((angle.atom1.idx, angle.atom3.idx)) in springs:
                angle.funct = 5  # GROMACS: harmonic angle + Urey-Bradley
    return structure


def water_residues(structure: parmed.Structure) -> list[Any]:
    """Three-atom residues of one oxygen bonded to two hydrogens."""
    found = []
    for residue in structure.residues:
        atoms = list(residue.atoms)
        oxygens = [a for a in atoms if a.atomic_number == 8]
        hydrogens = [a for a in atoms if a.atomic_number == 1]
        if len(atoms) == 3 and len(oxygens) == 1 and len(hydrogens) == 2 and all(
                h in oxygens[0].bond_partners for h in hydrogens):
            found.append(residue)
    return found


def add_water_hh_bonds(structure: parmed.Structure) -> int:
    """Give each water an H-H bond of force constant 0 at the rigid H-H distance.

    Amber's topology convention (LEaP's TIP3P has an HW-HW bond): SHAKE / SETTLE in sander
    and pmemd, and ``rigidWater`` in OpenMM's ``AmberPrmtopFile``, make a water rigid by
    constraining its three bonds; without the H-H bond only the O-H bonds are constrained and
    the H-O-H angle stays flexible. The force constant 0 leaves a flexible water's energy as
    it was. Returns the number of bonds added.
    """
    import math

    import parmed

    added = 0
    types: dict[float, parmed.BondType] = {}
    for residue in water_residues(structure):
        oxygen = next(a for a in residue.atoms if a.atomic_number == 8)
        h1, h2 = (a for a in residue.atoms if a.atomic_number == 1)
        if h2 in h1.bond_partners:
            continue
        lengths = [next(b for b in oxygen.bonds if h in b).type.req for h in (h1, h2)]
        angle = next((a for a in oxygen.angles if h1 in a and h2 in a and a.atom2 is oxygen), None)
        if angle is None:
            continue
        theta = math.radians(angle.type.theteq)
        hh = math.sqrt(lengths[0]**2 + lengths[1]**2 - 2 * lengths[0] * lengths[1] * math.cos(theta))
        key = round(hh, 10)
        if key not in types:
            types[key] = parmed.BondType(0.0, hh, list=structure.bond_types)
            structure.bond_types.append(types[key])
        structure.bonds.append(parmed.Bond(h1, h2, type=types[key]))
        added += 1
    return added

