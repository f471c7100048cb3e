"""GROMACS (``.top`` + ``.gro``) and Amber (``prmtop`` + ``inpcrd``) files, written through ParmEd.

The OpenMM System of the parameters (:func:`~espaloma_like.export.openmm_system.to_openmm_system`)
is read by ``parmed.openmm.load_topology`` and written by ParmEd's writers, with the fixes that
make the files reproduce that System term by term:

* **1-4 pairs.** ParmEd keeps the System's scaled 1-4 exceptions as explicit pair parameters.
  GROMACS gets them as a ``[ pairs ]`` list with explicit sigma and epsilon (``gen-pairs no``,
  ``fudgeLJ 1``) and ``fudgeQQ`` the model's Coulomb 1-4 scale (0.8333).
* **Urey-Bradley springs** (a second HarmonicBondForce, in the angle force group) become
  ParmEd Urey-Bradley terms. GROMACS writes them as angles of function type 5 (harmonic angle
  plus Urey-Bradley). A standard Amber prmtop has no Urey-Bradley term, so a model with springs
  is written as a *chamber* prmtop (the CHARMM-style prmtop of Amber's ``chamber`` and ParmEd),
  which OpenMM's ``AmberPrmtopFile``, ParmEd, sander and pmemd read; springs are never folded
  into bonds, which would add false 1-3 bonds to the topology (and constrain H-H pairs under
  ``constraints=HBonds``). Without springs the prmtop is a standard Amber one.
* **Impropers** (SMIRNOFF trefoil, central atom first) are periodic torsions: they go out as
  periodic dihedrals that generate no 1-4 pair, so their energy is unchanged.
* **Precision.** ParmEd writes GROMACS bond lengths to 1e-5 nm, which moves the bond energy by
  ~1e-4 relative; the ``[ bonds ]`` lines are rewritten at full precision.

Each file is written under a temporary name in its directory and moved into place, so a
failure leaves no partial file and an existing file untouched.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from espaloma_like.molecule import MoleculeGraph
from espaloma_like.parameters import ParameterSet

if TYPE_CHECKING:
    import parmed

#: Digits after the decimal point of ``.gro`` coordinates (nm): the standard 3, since OpenMM's
#: ``GromacsGroFile`` (unlike GROMACS) reads only the standard column layout.
GRO_PRECISION = 3


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
    import parmed

    from espaloma_like.export.ffxml import to_openmm_topology
    from espaloma_like.export.openmm_system import to_openmm_system

    xyz = molecule_positions(graph, positions)
    system = to_openmm_system(parameters, graph.masses)
    topology = to_openmm_topology(graph, residue_name)
    with warnings.catch_warnings():
        # ParmEd warns when a System's forces come in an order it does not expect; ours are
        # bond, angle, Urey-Bradley, torsions, nonbonded, which it maps as intended
        warnings.simplefilter("ignore", parmed.exceptions.OpenMMWarning)
        structure = parmed.openmm.load_topology(topology, system, xyz=xyz * 10.0)
    if structure.urey_bradleys:
        spring_pairs = {frozenset((ub.atom1.idx, ub.atom2.idx)) for ub in structure.urey_bradleys}
        for angle in structure.angles:
            if frozenset((angle.atom1.idx, angle.atom3.idx)) in spring_pairs:
                angle.funct = 5  # GROMACS: harmonic angle + Urey-Bradley
    return structure


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
    """Write a standalone GROMACS topology (``.top``) and coordinates (``.gro``).

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
    from parmed.gromacs import GromacsGroFile, GromacsTopologyFile

    structure = to_parmed_structure(graph, parameters, positions, residue_name)
    top, gro = Path(top_path), Path(gro_path)
    with tempfile.TemporaryDirectory(prefix=".espaloma_like-", dir=top.parent) as scratch:
        staged_top = Path(scratch) / top.name
        GromacsTopologyFile.from_structure(structure).write(str(staged_top))
        text = _exact_bonds(staged_top.read_text(), parameters)
        if header:
            text = "".join(f"; {line}\n" for line in header.splitlines()) + text
        staged_top.write_text(text)
        with tempfile.TemporaryDirectory(prefix=".espaloma_like-", dir=gro.parent) as scratch_gro:
            staged_gro = Path(scratch_gro) / gro.name
            GromacsGroFile.write(structure, str(staged_gro), precision=GRO_PRECISION)
            os.replace(staged_top, top)
            os.replace(staged_gro, gro)
    return top, gro


def write_amber(graph: MoleculeGraph, parameters: ParameterSet, prmtop_path: str | os.PathLike[str],
                inpcrd_path: str | os.PathLike[str], positions: np.ndarray | None = None,
                residue_name: str = "MOL") -> tuple[Path, Path]:
    """Write an Amber topology (``prmtop``) and coordinates (``inpcrd``, ASCII restart format).

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
    from parmed.amber import AmberParm, ChamberParm, Rst7

    structure = to_parmed_structure(graph, parameters, positions, residue_name)
    if structure.urey_bradleys:
        parm = ChamberParm.from_structure(structure)
        # chamber: the 1-4 Lennard-Jones table already holds the scaled 1-4 epsilons (ParmEd
        # builds it from the System's exceptions), so no further LJ scaling; Coulomb 1-4 pairs
        # are divided by SCEE
        for dihedral_type in parm.dihedral_types:
            dihedral_type.scee = 1.0 / float(parameters.nonbonded.coulomb_14_scale)
            dihedral_type.scnb = 1.0
    else:
        parm = AmberParm.from_structure(structure)
    restart = Rst7(natom=len(structure.atoms), title=residue_name)
    restart.coordinates = np.asarray(structure.coordinates)
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


def _exact_bonds(top_text: str, parameters: ParameterSet) -> str:
    """``top_text`` with its ``[ bonds ]`` parameters written at full precision."""
    p = parameters.numpy()
    exact = {(int(i), int(j)): (r0, k) for (i, j), r0, k in
             zip(p["bonds.indices"].tolist(), p["bonds.length"].tolist(), p["bonds.k"].tolist(),
                 strict=True)}
    lines = top_text.splitlines(keepends=True)
    section = ""
    for n, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.strip("[] ").lower()
            continue
        if section != "bonds" or not stripped or stripped.startswith(";"):
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
