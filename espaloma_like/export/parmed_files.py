"""GROMACS (``.top`` + ``.gro``) and Amber (``prmtop`` + ``inpcrd``) files, written through ParmEd.

Two entry points: one parametrized molecule in vacuum (:func:`write_gromacs`,
:func:`write_amber`), and any OpenMM System with its Topology, positions and box, such as a
ligand in a water box or a protein-ligand complex made by
:class:`~espaloma_like.export.system_generator.SystemGenerator`
(:func:`write_system_gromacs`, :func:`write_system_amber`). Both go through
:func:`~espaloma_like.export.parmed_system.to_parmed_system`, which checks the System and
refuses what the files would not reproduce (see that module), and through ParmEd's writers,
with the fixes that make the files reproduce the System term by term:

* **1-4 pairs.** ParmEd keeps the System's scaled 1-4 exceptions as explicit pair parameters.
  GROMACS gets them as a ``[ pairs ]`` list with explicit sigma and epsilon (``gen-pairs no``,
  ``fudgeLJ 1``) and ``fudgeQQ`` the one Coulomb 1-4 scale (0.8333 for the model and Amber
  force fields); Amber gets ``SCEE`` / ``SCNB`` per torsion.
* **Urey-Bradley springs** (a HarmonicBondForce term between the outer atoms of an angle: a
  force of their own in the model's vacuum System, inside the bond force in a System from
  ``ForceField``) become ParmEd Urey-Bradley terms. GROMACS writes them as angles of function
  type 5 (harmonic angle plus Urey-Bradley). A standard Amber prmtop has no Urey-Bradley term,
  so a System with springs is written as a *chamber* prmtop (the CHARMM-style prmtop of
  Amber's ``chamber`` and ParmEd), which OpenMM's ``AmberPrmtopFile``, ParmEd, sander and
  pmemd read; springs are never folded into bonds, which would add false 1-3 bonds to the
  topology (and constrain H-H pairs under ``constraints=HBonds``). Without springs the prmtop
  is a standard Amber one.
* **Impropers** (SMIRNOFF trefoil, central atom first) are periodic torsions: they go out as
  periodic dihedrals that generate no 1-4 pair, so their energy is unchanged.
* **Water.** GROMACS: ParmEd writes each water's bonds and angle under ``#ifdef FLEXIBLE``
  and a ``[ settles ]`` line otherwise (GROMACS's own convention). Amber: water residues are
  named ``WAT`` and get an H-H bond of force constant 0 at the rigid H-H distance, LEaP's
  convention, so that SHAKE / SETTLE and OpenMM's ``rigidWater`` keep them rigid while a
  flexible water's energy stays as it was.
* **Box.** Written to the ``.gro`` and to the prmtop and ``inpcrd`` (lengths and angles).
* **Precision.** ParmEd writes GROMACS bond lengths to 1e-5 nm, which moves the bond energy by
  ~1e-4 relative; the ``[ bonds ]`` lines are rewritten at full precision.

What the files do not hold is the run: nonbonded method, cutoff, Ewald tolerance, switching,
dispersion correction and constraints go into the ``.mdp``, the ``mdin`` or the arguments of
``createSystem`` when the files are read, and must match the System's own to reproduce its
energies.

Each file is written under a temporary name in its directory and moved into place, so a
failure leaves no partial file and an existing file untouched.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like.export.parmed_system import (
    ExportError,
    add_water_hh_bonds,
    amber_frame,
    canonical_box,
    coulomb_14_scales,
    to_parmed_system,
    water_residues,
)
from espaloma_like.molecule import MoleculeGraph
from espaloma_like.parameters import ParameterSet

if TYPE_CHECKING:
    import openmm
    import openmm.app
    import parmed

__all__ = ["ExportError", "molecule_positions", "to_parmed_structure", "write_amber",
           "write_gromacs", "write_system_amber", "write_system_gromacs"]

#: Digits after the decimal point of ``.gro`` coordinates (nm): the standard 3, since OpenMM's
#: ``GromacsGroFile`` (unlike GROMACS) reads only the standard column layout.
GRO_PRECISION = 3
#: Amber's residue name for water (LEaP's, and the one sander and pmemd SETTLE by default).
AMBER_WATER = "WAT"


def _molecule_system(graph: MoleculeGraph, parameters: ParameterSet, residue_name: str,
                     ) -> tuple[openmm.app.Topology, openmm.System]:
    from espaloma_like.export.ffxml import to_openmm_topology
    from espaloma_like.export.openmm_system import to_openmm_system
    from espaloma_like.termkinds import export_order

    system_only = [kind.name for kind, _ in export_order(parameters) if kind.system_only]
    if system_only:
        model = parameters.provenance.get("model", "this model")
        raise ExportError(
            f"{model} gives term kinds ({', '.join(system_only)}) that GROMACS and Amber files "
            "made by ParmEd cannot hold (custom OpenMM forces); parametrize with "
            "model='portable' (command line: --model portable; every term a plain one) for "
            "these files, or keep this model "
            "in OpenMM (to_openmm_system(), the ForceField XML file, the template generator)")

    return to_openmm_topology(graph, residue_name), to_openmm_system(parameters, graph.masses)


def to_parmed_structure(graph: MoleculeGraph, parameters: ParameterSet,
                        positions: np.ndarray | None = None, residue_name: str = "MOL",
                        ) -> parmed.Structure:
    """A parametrized ParmEd ``Structure`` of one molecule.

    Parameters
    ----------
    graph : MoleculeGraph
        The molecule; its atom order is kept.
    parameters : ParameterSet
        Its parameters, OpenMM units.
    positions : np.ndarray, optional
        (N, 3) coordinates, nm; ``graph.positions`` or one ETKDG conformer when None.
    residue_name : str
        Residue (and GROMACS molecule type) name.

    Returns
    -------
    parmed.Structure
        Bonds, angles, Urey-Bradley terms, dihedrals (propers and impropers), atom types with
        Lennard-Jones parameters, charges and explicit scaled 1-4 pairs; coordinates in
        angstrom.

    Raises
    ------
    UndefinedStereoError
        No positions were given, the graph has none, and its stereochemistry is undefined.
    """
    xyz = molecule_positions(graph, positions)
    topology, system = _molecule_system(graph, parameters, residue_name)
    return to_parmed_system(topology, system, xyz)


def molecule_positions(graph: MoleculeGraph, positions: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) coordinates in nm: ``positions``, else the graph's, else one ETKDG conformer."""
    from espaloma_like.molecule import generate_conformers

    if positions is None:
        positions = generate_conformers(graph, n_conformers=1)[0]
    xyz = np.asarray(positions, dtype=np.float64)
    if xyz.shape != (graph.n_atoms, 3):
        raise ValueError(f"positions must have shape ({graph.n_atoms}, 3), got {xyz.shape}")
    return xyz


def write_gromacs(graph: MoleculeGraph, parameters: ParameterSet, top_path: str | os.PathLike[str],
                  gro_path: str | os.PathLike[str], positions: np.ndarray | None = None,
                  residue_name: str = "MOL", header: str = "") -> tuple[Path, Path]:
    """Write a standalone GROMACS topology (``.top``) and coordinates (``.gro``) of one molecule.

    Parameters
    ----------
    graph, parameters, positions, residue_name
        As for :func:`to_parmed_structure`.
    top_path, gro_path : str or os.PathLike
        Output files; their directories must exist.
    header : str
        Lines written as ``;`` comments at the top of the ``.top`` (provenance).

    Returns
    -------
    tuple of Path
        ``(top_path, gro_path)``.
    """
    xyz = molecule_positions(graph, positions)
    topology, system = _molecule_system(graph, parameters, residue_name)
    return write_system_gromacs(topology, system, xyz, top_path, gro_path, header=header)


def write_amber(graph: MoleculeGraph, parameters: ParameterSet, prmtop_path: str | os.PathLike[str],
                inpcrd_path: str | os.PathLike[str], positions: np.ndarray | None = None,
                residue_name: str = "MOL") -> tuple[Path, Path]:
    """Write an Amber topology (``prmtop``) and coordinates (``inpcrd``, ASCII restart format)
    of one molecule.

    A standard Amber prmtop when the parameters have no Urey-Bradley springs; a chamber
    (CHARMM-style) prmtop, which carries them, when they do (see the module notes).

    Parameters
    ----------
    graph, parameters, positions, residue_name
        As for :func:`to_parmed_structure`.
    prmtop_path, inpcrd_path : str or os.PathLike
        Output files; their directories must exist.

    Returns
    -------
    tuple of Path
        ``(prmtop_path, inpcrd_path)``.
    """
    xyz = molecule_positions(graph, positions)
    topology, system = _molecule_system(graph, parameters, residue_name)
    return write_system_amber(topology, system, xyz, prmtop_path, inpcrd_path, title=residue_name)


def write_system_gromacs(topology: openmm.app.Topology, system: openmm.System, positions: Any,
                         top_path: str | os.PathLike[str], gro_path: str | os.PathLike[str],
                         box_vectors: Any = None, header: str = "") -> tuple[Path, Path]:
    """Write a GROMACS topology (``.top``) and coordinates (``.gro``, with the box) of a System.

    Parameters
    ----------
    topology : openmm.app.Topology
        Atoms, residues and bonds in the System's order (``Modeller.topology``); every
        molecule becomes a ``[ moleculetype ]``, identical molecules (waters, ions) one.
    system : openmm.System
        Its parameters, created without constraints: e.g. ``SystemGenerator.create_system``
        or ``ForceField.createSystem`` with ``constraints=None, rigidWater=False``, any
        nonbonded method. See :mod:`espaloma_like.export.parmed_system` for what is refused.
    positions : openmm.unit.Quantity or array-like
        (N, 3) coordinates (nm when plain numbers).
    top_path, gro_path : str or os.PathLike
        Output files; their directories must exist.
    box_vectors : Quantity, three Vec3 or (3, 3) array (nm), optional
        Periodic box; the Topology's (else the periodic System's) when None.
    header : str
        Lines written as ``;`` comments at the top of the ``.top`` (provenance).

    Returns
    -------
    tuple of Path
        ``(top_path, gro_path)``.

    Raises
    ------
    ExportError
        The System holds something the file would not reproduce, or its 1-4 pairs have more
        than one Coulomb scale (GROMACS has a single ``fudgeQQ``).
    """
    from parmed.gromacs import GromacsGroFile, GromacsTopologyFile

    structure = to_parmed_system(topology, system, positions, box_vectors)
    scales = coulomb_14_scales(structure)
    if len(scales) > 1:
        raise ExportError(
            f"the 1-4 pairs have {len(scales)} Coulomb scales ({', '.join(f'{s:.6g}' for s in scales)}); "
            "a GROMACS topology has one fudgeQQ for the whole system (write an Amber prmtop, "
            "which has one scale per torsion)")
    gromacs = GromacsTopologyFile.from_structure(structure)
    top, gro = Path(top_path), Path(gro_path)
    with tempfile.TemporaryDirectory(prefix=".espaloma_like-", dir=top.parent) as scratch:
        staged_top = Path(scratch) / top.name
        gromacs.write(str(staged_top))
        text = _exact_bonds(staged_top.read_text(), gromacs)
        if header:
            text = "".join(f"; {line}\n" for line in header.splitlines()) + text
        staged_top.write_text(text)
        with tempfile.TemporaryDirectory(prefix=".espaloma_like-", dir=gro.parent) as scratch_gro:
            staged_gro = Path(scratch_gro) / gro.name
            GromacsGroFile.write(structure, str(staged_gro), precision=GRO_PRECISION)
            os.replace(staged_top, top)
            os.replace(staged_gro, gro)
    return top, gro


def write_system_amber(topology: openmm.app.Topology, system: openmm.System, positions: Any,
                       prmtop_path: str | os.PathLike[str], inpcrd_path: str | os.PathLike[str],
                       box_vectors: Any = None, title: str = "") -> tuple[Path, Path]:
    """Write an Amber topology (``prmtop``) and coordinates (``inpcrd``, ASCII restart format,
    with the box) of a System.

    A standard Amber prmtop when the System has no Urey-Bradley springs, a chamber prmtop when
    it has (the model's by default). Water residues are renamed ``WAT`` and get an H-H bond
    of force constant 0 (see the module notes).

    Parameters
    ----------
    topology, system, positions, box_vectors
        As for :func:`write_system_gromacs`.
    prmtop_path, inpcrd_path : str or os.PathLike
        Output files; their directories must exist.
    title : str
        Title of the prmtop and of the restart file.

    Returns
    -------
    tuple of Path
        ``(prmtop_path, inpcrd_path)``.

    Raises
    ------
    ExportError
        The System holds something the file would not reproduce.
    """
    from parmed.amber import AmberParm, ChamberParm, Rst7

    structure = to_parmed_system(topology, system, positions, box_vectors)
    if structure.box is not None:
        structure.box, rotation = amber_frame(canonical_box(structure.box))
        if rotation is not None:
            structure.coordinates = np.asarray(structure.coordinates) @ rotation
    for residue in water_residues(structure):
        residue.name = AMBER_WATER
    add_water_hh_bonds(structure)
    try:
        parm = (ChamberParm if structure.urey_bradleys else AmberParm).from_structure(structure)
    except TypeError as err:  # ParmEd: "Cannot translate exceptions" and the like
        raise ExportError(f"ParmEd cannot write this System as an Amber prmtop: {err}") from err
    if isinstance(parm, ChamberParm):
        # a chamber prmtop takes each 1-4 pair's Lennard-Jones from its 1-4 table, which ParmEd
        # fills from the System's exceptions (scaled already); but the zero torsions ParmEd adds
        # for 1-4 pairs without one (torsions of force constant 0 are not in the System) get
        # Amber's SCNB (2 for the model), which would scale them twice. Ignored pairs keep 1e10.
        for dihedral_type in parm.dihedral_types:
            if dihedral_type.scnb < 1e9:
                dihedral_type.scnb = 1.0
    if title:
        parm.title = title
    restart = Rst7(natom=len(structure.atoms), title=title or "espaloma_like")
    restart.coordinates = np.asarray(structure.coordinates)
    if structure.box is not None:
        restart.box = np.asarray(structure.box)
    prmtop, inpcrd = Path(prmtop_path), Path(inpcrd_path)
    with tempfile.TemporaryDirectory(prefix=".espaloma_like-", dir=prmtop.parent) as scratch:
        staged_prmtop = Path(scratch) / prmtop.name
        parm.write_parm(str(staged_prmtop))
        with tempfile.TemporaryDirectory(prefix=".espaloma_like-", dir=inpcrd.parent) as scratch_crd:
            staged_inpcrd = Path(scratch_crd) / inpcrd.name
            restart.write(str(staged_inpcrd))
            os.replace(staged_prmtop, prmtop)
            os.replace(staged_inpcrd, inpcrd)
    return prmtop, inpcrd


def _exact_bonds(top_text: str, gromacs: Any) -> str:
    """``top_text`` with the parameters of its ``[ bonds ]`` lines at full precision.

    ParmEd writes one ``[ moleculetype ]`` per molecule of ``gromacs.split()``, in that order,
    with atom indices local to the molecule; the exact values come from those molecules.
    """
    from openmm import unit

    to_kj_nm2 = (unit.kilocalorie_per_mole / unit.angstrom**2).conversion_factor_to(
        unit.kilojoule_per_mole / unit.nanometer**2) * 2
    molecules = [molecule for molecule, _ in gromacs.split()]
    lines = top_text.splitlines(keepends=True)
    section, molecule = "", -1
    exact: dict[tuple[int, int], tuple[float, float]] = {}
    for n, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.strip("[] ").lower()
            if section == "moleculetype":
                molecule += 1
                exact = {} if molecule >= len(molecules) else {
                    (min(b.atom1.idx, b.atom2.idx), max(b.atom1.idx, b.atom2.idx)):
                    (b.type.req / 10.0, b.type.k * to_kj_nm2)
                    for b in molecules[molecule].bonds if b.type is not None}
            continue
        if section != "bonds" or not stripped or stripped[0] in ";#":
            continue
        words = stripped.split()
        i, j, funct = int(words[0]) - 1, int(words[1]) - 1, int(words[2])
        key = (min(i, j), max(i, j))
        if funct == 1 and len(words) >= 5 and key in exact:
            r0, k = exact[key]
            lines[n] = f"{i + 1:7d} {j + 1:6d} {funct:5d} {r0:.10f} {k:.6f}\n"
    return "".join(lines)


def provenance_lines(provenance: dict[str, str]) -> str:
    """``key: value`` lines of a provenance dict (``espaloma_like`` first), for file headers."""
    return "\n".join(f"{key}: {' '.join(str(value).split())}"
                     for key, value in sorted(provenance.items()))


def with_provenance_comment(system_xml: str, provenance: dict[str, str]) -> str:
    """Serialized System XML with ``provenance`` as a comment, the root element's first child.

    OpenMM's ``XmlSerializer.deserialize`` takes the object type from the first element, so the
    comment goes inside ``<System>``, not before it.
    """
    if not provenance:
        return system_xml
    body = provenance_lines(provenance).replace("--", "- -")  # "--" may not occur in a comment
    start = system_xml.find("<System")
    end = system_xml.find(">", start) + 1 if start >= 0 else 0
    if end <= 0:
        return system_xml
    comment = "\n\t<!--\n" + "".join(f"\t{line}\n" for line in body.splitlines()) + "\t-->"
    return system_xml[:end] + comment + system_xml[end:]
