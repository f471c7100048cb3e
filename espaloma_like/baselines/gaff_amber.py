"""GAFF-2.11 baseline: antechamber atom types, parmchk2 estimates, tleap, read back via OpenMM.

The recipe is the usual Amber one, pinned to GAFF 2.11 (``gaff211.dat``) rather than whatever
``leaprc.gaff2`` loads (2.2.x in current AmberTools):

1. one ETKDG conformer written as SDF (atom order of the graph);
2. ``antechamber -at gaff2 -c rc``: GAFF2 atom types, the given charges read in (no sqm run);
3. ``parmchk2 -p gaff211.dat``: missing terms estimated against GAFF 2.11 (current antechamber
   assigns some GAFF 2.2 atom types, e.g. ``ns`` or ``c5``, which 2.11 lacks);
4. ``tleap``: the atom-type block of ``leaprc.gaff2``, ``gaff211.dat``, the frcmod, the mol2,
   ``saveamberparm``;
5. ``openmm.app.AmberPrmtopFile(...).createSystem`` and its forces converted into a
   :class:`ParameterSet`, checked term by term against the graph.

Impropers are Amber ones (one torsion, central atom third), so the ParameterSet has
``impropers.trefoil = False``. Which prmtop dihedrals are impropers is read from the prmtop's
own flag (negative fourth atom pointer), not guessed from connectivity, which is ambiguous in
three-membered rings. tleap writes some impropers reversed (central atom second, whenever atom 0
would be third or fourth); they are turned back, which leaves the dihedral angle unchanged.
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like.exceptions import ExternalToolError, ParametrizationError
from espaloma_like.molecule import MoleculeGraph, generate_conformers
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
    import openmm

GAFF_VERSION = "gaff-2.11"
GAFF_PARAMETER_FILE = "gaff211.dat"

#: Lines of tleap output that mean the prmtop is missing or wrong although tleap exited 0.
_LEAP_ERROR = re.compile(
    r"error|fatal|could not (find|open)|failed|does not have a type|not saved", re.IGNORECASE
)
_LEAP_NO_ERRORS = re.compile(r"Errors\s*=\s*0\b")


def amber_data_file(*parts: str) -> Path:
    """Path of a file under ``$AMBERHOME/dat`` of the AmberTools in use."""
    from espaloma_like.baselines._tools import amber_environment

    path = Path(amber_environment()["AMBERHOME"]).joinpath("dat", *parts)
    if not path.is_file():
        raise ExternalToolError(f"AmberTools data file {path} not found")
    return path


def gaff2_atom_types_block() -> str:
    """The ``addAtomTypes { ... }`` block of the installed ``leaprc.gaff2``."""
    text = amber_data_file("leap", "cmd", "leaprc.gaff2").read_text()
    start = text.find("addAtomTypes")
    if start < 0:
        raise ExternalToolError("leaprc.gaff2 has no addAtomTypes block")
    depth = 0
    for position in range(text.index("{", start), len(text)):
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        if depth == 0:
            return text[start : position + 1]
    raise ExternalToolError("unbalanced braces in the addAtomTypes block of leaprc.gaff2")


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _write_charges(charges: np.ndarray, path: Path) -> None:
    # antechamber -c rc reads free-format numbers; it writes them back with 6 decimals.
    rows = [" ".join(f"{q:.10f}" for q in charges[i : i + 8]) for i in range(0, len(charges), 8)]
    path.write_text("\n".join(rows) + "\n")


def build_gaff_prmtop(
    graph: MoleculeGraph, charges: np.ndarray, work: Path, timeout: float = 600.0
) -> Path:
    """Run antechamber, parmchk2 and tleap in the directory ``work``; the GAFF-2.11 prmtop.

    Parameters
    ----------
    graph : MoleculeGraph
        The molecule; one ETKDG conformer (or its own positions) is written for antechamber.
        Undefined stereochemistry is allowed: the parameters do not depend on it.
    charges : np.ndarray
        (N,) partial charges, e, written into the mol2 (6 decimals) and so into the prmtop.
    work : pathlib.Path
        An existing directory; ``in.sdf``, ``typed.mol2``, ``missing.frcmod``, ``leap.in``,
        ``leap.log``, ``mol.prmtop`` and ``mol.inpcrd`` are left there.
    timeout : float
        Seconds allowed to each program.

    Returns
    -------
    pathlib.Path
        ``work / "mol.prmtop"``.
    """
    from espaloma_like.baselines._tools import run_tool
    from espaloma_like.baselines.am1bcc import write_sdf

    # GAFF types and parameters depend on the graph only, not on the stereoisomer embedded.
    positions = generate_conformers(graph, n_conformers=1, seed=0, allow_undefined_stereo=True)[0]
    write_sdf(graph, positions, work / "in.sdf")
    _write_charges(charges, work / "charges.txt")
    run_tool(
        ["antechamber", "-i", "in.sdf", "-fi", "sdf", "-o", "typed.mol2", "-fo", "mol2",
         "-at", "gaff2", "-c", "rc", "-cf", "charges.txt", "-nc", str(graph.total_charge),
         "-pf", "y", "-dr", "no"],
        cwd=work, timeout=timeout,
    )
    if not (work / "typed.mol2").is_file():
        raise ExternalToolError("antechamber wrote no typed.mol2")
    gaff211 = amber_data_file("leap", "parm", GAFF_PARAMETER_FILE)
    run_tool(
        ["parmchk2", "-i", "typed.mol2", "-f", "mol2", "-o", "missing.frcmod", "-s", "gaff2",
         "-p", str(gaff211)],
        cwd=work, timeout=timeout,
    )
    if not (work / "missing.frcmod").is_file():
        raise ExternalToolError("parmchk2 wrote no missing.frcmod")
    frcmod = (work / "missing.frcmod").read_text()
    if "ATTN" in frcmod:  # parmchk2 found no analogue at all for some term
        raise ParametrizationError(
            f"parmchk2 could not estimate every GAFF term of {graph.name!r}:\n"
            + "\n".join(line for line in frcmod.splitlines() if "ATTN" in line)
        )
    (work / "leap.in").write_text(
        "logFile leap.log\n"
        f"{gaff2_atom_types_block()}\n"
        f'loadamberparams "{gaff211}"\n'
        "loadamberparams missing.frcmod\n"
        "mol = loadmol2 typed.mol2\n"
        "check mol\n"
        "saveamberparm mol mol.prmtop mol.inpcrd\n"
        "quit\n"
    )
    prmtop = work / "mol.prmtop"
    prmtop.unlink(missing_ok=True)
    output = run_tool(["tleap", "-s", "-f", "leap.in"], cwd=work, timeout=timeout)
    log = (work / "leap.log").read_text() if (work / "leap.log").is_file() else output
    problems = leap_errors(log)
    if problems or not prmtop.is_file() or prmtop.stat().st_size == 0:
        detail = "\n".join(problems[:20]) if problems else _tail(log)
        raise ExternalToolError(f"tleap failed for {graph.name!r}:\n{detail}")
    return prmtop


def leap_errors(log: str) -> list[str]:
    """Error lines of a tleap log, each with the line after it (tleap puts the reason there).

    tleap exits 0 after errors such as missing parameters; it then skips or truncates the
    prmtop, so the log has to be read.
    """
    lines = log.splitlines()
    found: dict[str, None] = {}
    for index, line in enumerate(lines):
        if _LEAP_ERROR.search(line) and not _LEAP_NO_ERRORS.search(line):
            following = lines[index + 1].strip() if index + 1 < len(lines) else ""
            found[f"{line.strip()} {following}".strip()] = None
    return list(found)


def read_prmtop_flag(text: str, flag: str) -> list[str]:
    """The raw values of ``%FLAG flag`` of a prmtop's ``text`` (fixed-width fields)."""
    match = re.search(rf"^%FLAG {re.escape(flag)}\s*\n%FORMAT\((\d+)[a-zA-Z](\d+)", text, re.M)
    if match is None:
        return []
    width = int(match.group(2))
    values: list[str] = []
    for line in text[match.end():].split("\n")[1:]:
        if line.startswith("%"):
            break
        values.extend(
            line[i : i + width].strip() for i in range(0, len(line), width)
            if line[i : i + width].strip()
        )
    return values


def _improper_flags(prmtop_text: str) -> list[tuple[tuple[int, int, int, int], bool]]:
    """(quadruple, is_improper) of every prmtop dihedral, in OpenMM's order (with H first)."""
    pointers = [
        int(x) for flag in ("DIHEDRALS_INC_HYDROGEN", "DIHEDRALS_WITHOUT_HYDROGEN")
        for x in read_prmtop_flag(prmtop_text, flag)
    ]
    out = []
    for i in range(0, len(pointers), 5):
        a, b, c, d = pointers[i : i + 4]
        out.append(((a // 3, b // 3, abs(c) // 3, abs(d) // 3), d < 0))
    return out


def _md(quantity: Any) -> float:
    """An OpenMM Quantity in MD units (nm, kJ/mol, rad, e) as a float."""
    from openmm import unit

    return float(quantity.value_in_unit_system(unit.md_unit_system))


def _force(system: openmm.System, kind: type) -> Any:
    found = [f for f in system.getForces() if isinstance(f, kind)]
    if len(found) != 1:
        raise ParametrizationError(f"expected one {kind.__name__} in the prmtop system")
    return found[0]


def _add_torsion_term(
    rows: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]],
    quad: tuple[int, ...], periodicity: int, phase: float, k: float,
) -> None:
    if not 1 <= periodicity <= N_PERIODICITIES:
        raise ParametrizationError(f"torsion {quad} has periodicity {periodicity}")
    k_row, phase_row = rows.setdefault(
        quad, (np.zeros(N_PERIODICITIES), np.zeros(N_PERIODICITIES))
    )
    column = periodicity - 1
    if k == 0.0:
        return  # GAFF's zero-barrier terms (e.g. X-c2-c3-X n=2) contribute nothing
    if k_row[column] != 0.0 and not math.isclose(phase_row[column], phase, abs_tol=1e-6):
        raise ParametrizationError(
            f"torsion {quad}: periodicity {periodicity} given twice with different phases"
        )
    k_row[column] += k  # same phase twice: the energies simply add
    phase_row[column] = phase


def _central_third(
    quad: tuple[int, int, int, int], bonded: set[tuple[int, ...]]
) -> tuple[int, int, int, int]:
    """An Amber improper with its central atom third.

    tleap reverses a dihedral whose third or fourth atom is atom 0 (the prmtop flags those
    positions by sign, and -0 = 0), which moves an improper's central atom to second place.
    Reversal leaves the dihedral angle unchanged, so undoing it changes no energy.
    """
    for candidate in (quad, quad[::-1]):
        centre = candidate[2]
        if all((min(a, centre), max(a, centre)) in bonded for a in candidate if a != centre):
            return candidate
    raise ParametrizationError(f"GAFF improper {quad} has no atom bonded to the other three")


def _check_order(graph: MoleculeGraph, prmtop: Any) -> None:
    atoms = list(prmtop.topology.atoms())
    elements = np.asarray([a.element.atomic_number for a in atoms], dtype=np.int64)
    if len(atoms) != graph.n_atoms or not np.array_equal(elements, graph.atomic_numbers):
        raise ParametrizationError(
            f"tleap changed the atoms of {graph.name!r}: elements {elements.tolist()} != "
            f"{graph.atomic_numbers.tolist()}"
        )
    prmtop_bonds = {tuple(sorted((b[0].index, b[1].index))) for b in prmtop.topology.bonds()}
    graph_bonds = {tuple(sorted(b)) for b in graph.bonds.tolist()}
    if prmtop_bonds != graph_bonds:
        raise ParametrizationError(
            f"tleap changed the bonds of {graph.name!r}: extra "
            f"{sorted(prmtop_bonds - graph_bonds)}, missing {sorted(graph_bonds - prmtop_bonds)}"
        )


def scale_factors_14(prmtop_text: str) -> tuple[float, float]:
    """Uniform (Coulomb, LJ) 1-4 scale factors, ``1/SCEE`` and ``1/SCNB``, of a prmtop.

    Only the dihedral types of dihedrals that carry a 1-4 pair count: impropers and dihedrals
    whose end pair is counted elsewhere have SCEE = SCNB = 0 in tleap's output. Without any 1-4
    pair, Amber's defaults (1/1.2, 1/2) are returned.
    """
    pointers = [
        int(x) for flag in ("DIHEDRALS_INC_HYDROGEN", "DIHEDRALS_WITHOUT_HYDROGEN")
        for x in read_prmtop_flag(prmtop_text, flag)
    ]
    types = {pointers[i + 4] - 1 for i in range(0, len(pointers), 5)
             if pointers[i + 2] > 0 and pointers[i + 3] > 0}
    scales = []
    for flag, default in (("SCEE_SCALE_FACTOR", 1.2), ("SCNB_SCALE_FACTOR", 2.0)):
        values = read_prmtop_flag(prmtop_text, flag)
        found = {float(values[t]) for t in types} if types and values else {default}
        if len(found) != 1 or 0.0 in found:
            raise ParametrizationError(f"prmtop {flag} is not uniform: {sorted(found)}")
        scales.append(1.0 / found.pop())
    return scales[0], scales[1]


def gaff_parameters(
    graph: MoleculeGraph, charges: np.ndarray, timeout: float = 600.0
) -> ParameterSet:
    """A :class:`ParameterSet` with GAFF-2.11 valence and LJ parameters and the given charges.

    Parameters
    ----------
    graph : MoleculeGraph
        The molecule; its atom order is kept.
    charges : np.ndarray
        (N,) partial charges, e (usually AM1-BCC). They are also written into the prmtop, but
        the ParameterSet takes them from here, unrounded.
    timeout : float
        Seconds allowed to each AmberTools program.

    Returns
    -------
    ParameterSet
        See :func:`parameters_from_prmtop`.

    Raises
    ------
    ExternalToolError
        antechamber, parmchk2 or tleap failed.
    ParametrizationError
        The prmtop does not match the graph (atom order, bonds, terms) or holds terms the
        ParameterSet cannot represent.
    """
    charges = np.asarray(charges, dtype=np.float64)
    if charges.shape != (graph.n_atoms,):
        raise ValueError(f"charges must have shape ({graph.n_atoms},), got {charges.shape}")
    with tempfile.TemporaryDirectory(prefix="espaloma_like_gaff_") as scratch:
        prmtop = build_gaff_prmtop(graph, charges, Path(scratch), timeout)
        return parameters_from_prmtop(graph, prmtop, charges)


def prmtop_system(path: Path) -> tuple[Any, openmm.System]:
    """``(AmberPrmtopFile, System)`` of a prmtop: vacuum, no cutoff, no constraints, no CM motion
    removal -- the System :func:`parameters_from_prmtop` converts."""
    from openmm.app import AmberPrmtopFile, NoCutoff

    prmtop = AmberPrmtopFile(str(path))
    system = prmtop.createSystem(
        nonbondedMethod=NoCutoff, constraints=None, rigidWater=False, removeCMMotion=False
    )
    return prmtop, system


def parameters_from_prmtop(graph: MoleculeGraph, path: Path, charges: np.ndarray) -> ParameterSet:
    """Convert the GAFF prmtop at ``path``, built for ``graph``, into a :class:`ParameterSet`.

    Parameters
    ----------
    graph : MoleculeGraph
        The molecule the prmtop was built for, in the prmtop's atom order (checked).
    path : pathlib.Path
        The prmtop file.
    charges : np.ndarray
        (N,) partial charges, e, stored as given; the prmtop's must agree to 1e-5 e.

    Returns
    -------
    ParameterSet
        Bonds and angles in the canonical order of :func:`enumerate_terms`, propers in canonical
        orientation (all periodicities of a quadruple in one row), Amber impropers with the
        central atom third (``trefoil=False``), 1-4 scaling ``1/SCEE`` (Coulomb) and ``1/SCNB``
        (LJ), i.e. 1/1.2 and 1/2.
    """
    import torch
    from openmm import (
        HarmonicAngleForce,
        HarmonicBondForce,
        NonbondedForce,
        PeriodicTorsionForce,
    )

    charges = np.asarray(charges, dtype=np.float64)
    prmtop_text = Path(path).read_text()
    prmtop, system = prmtop_system(Path(path))
    _check_order(graph, prmtop)
    terms = enumerate_terms(graph)

    bond_force = _force(system, HarmonicBondForce)
    bonds: dict[tuple[int, ...], tuple[float, float]] = {}
    for index in range(bond_force.getNumBonds()):
        i, j, length, k = bond_force.getBondParameters(index)
        key = (min(i, j), max(i, j))
        if key in bonds:
            raise ParametrizationError(f"GAFF bond {key} of {graph.name!r} given twice")
        bonds[key] = (_md(k), _md(length))  # kJ/mol/nm^2, nm
    angle_force = _force(system, HarmonicAngleForce)
    angles: dict[tuple[int, ...], tuple[float, float]] = {}
    for index in range(angle_force.getNumAngles()):
        i, j, m, theta, k = angle_force.getAngleParameters(index)
        triple = (min(i, m), j, max(i, m))
        if triple in angles:
            raise ParametrizationError(f"GAFF angle {triple} of {graph.name!r} given twice")
        angles[triple] = (_md(k), _md(theta))
    for name, found, expected in (("bonds", bonds, terms.bonds), ("angles", angles, terms.angles)):
        wanted = {tuple(row) for row in expected.tolist()}
        if set(found) != wanted:
            raise ParametrizationError(
                f"GAFF {name} of {graph.name!r} do not match the graph: extra "
                f"{sorted(set(found) - wanted)}, missing {sorted(wanted - set(found))}"
            )

    torsion_force = _force(system, PeriodicTorsionForce)
    flags = _improper_flags(prmtop_text)
    if len(flags) != torsion_force.getNumTorsions():
        raise ParametrizationError("prmtop dihedral list and OpenMM torsions differ in length")
    bonded = {tuple(b) for b in terms.bonds.tolist()}
    propers: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
    impropers: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
    for index, (flag_quad, is_improper) in enumerate(flags):
        i, j, m, n, periodicity, phase, k = torsion_force.getTorsionParameters(index)
        quad = (i, j, m, n)
        if quad != flag_quad:
            raise ParametrizationError(f"OpenMM torsion {quad} != prmtop dihedral {flag_quad}")
        if is_improper:
            quad = _central_third(quad, bonded)
            _add_torsion_term(impropers, quad, periodicity, _md(phase), _md(k))
        else:
            canonical = min(quad, quad[::-1])
            _add_torsion_term(propers, canonical, periodicity, _md(phase), _md(k))
    wanted_propers = {tuple(row) for row in terms.propers.tolist()}
    for extra_quad in set(propers) - wanted_propers:
        if not propers[extra_quad][0].any():
            del propers[extra_quad]  # zero-barrier torsion through a linear centre (X-c1-c1-X)
    if set(propers) != wanted_propers:
        extra, missing = set(propers) - wanted_propers, wanted_propers - set(propers)
        raise ParametrizationError(
            f"GAFF propers of {graph.name!r} do not match the graph: extra {sorted(extra)}, "
            f"missing {sorted(missing)}"
        )

    nonbonded = _force(system, NonbondedForce)
    sigma = np.zeros(graph.n_atoms)
    epsilon = np.zeros(graph.n_atoms)
    prmtop_charges = np.zeros(graph.n_atoms)
    for index in range(graph.n_atoms):
        q, s, e = nonbonded.getParticleParameters(index)
        prmtop_charges[index], sigma[index], epsilon[index] = _md(q), _md(s), _md(e)
    deviation = float(np.abs(prmtop_charges - charges).max(initial=0.0))
    if deviation > 1e-5:  # antechamber keeps 6 decimals; more means a reordering
        raise ParametrizationError(
            f"the prmtop charges of {graph.name!r} differ from the given ones by {deviation:.2g} e"
        )
    coulomb_14_scale, lj_14_scale = scale_factors_14(prmtop_text)
    _check_exceptions(
        graph, nonbonded, terms.exclusions, terms.pairs_14, prmtop_charges, sigma, epsilon,
        coulomb_14_scale, lj_14_scale,
    )

    f64 = torch.float64

    def long(rows: Any, width: int) -> torch.Tensor:
        return torch.as_tensor(np.asarray(rows, dtype=np.int64).reshape(-1, width))

    def real(values: Any, width: int | None = None) -> torch.Tensor:
        array = np.array(values, dtype=np.float64)  # a writable copy (inputs may be read-only)
        return torch.as_tensor(array.reshape(-1, width) if width else array, dtype=f64)

    def torsions(rows: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]]) -> TorsionParameters:
        quads = sorted(rows)
        return TorsionParameters(
            long(quads, 4),
            real([rows[q][0] for q in quads], N_PERIODICITIES),
            real([rows[q][1] for q in quads], N_PERIODICITIES),
            trefoil=False,
        )

    bond_rows = [bonds[tuple(b)] for b in terms.bonds.tolist()]
    angle_rows = [angles[tuple(a)] for a in terms.angles.tolist()]
    return ParameterSet(
        atomic_numbers=graph.atomic_numbers.copy(),
        bonds=BondParameters(
            long(terms.bonds, 2), real([r[0] for r in bond_rows]), real([r[1] for r in bond_rows])
        ),
        angles=AngleParameters(
            long(terms.angles, 3),
            real([r[0] for r in angle_rows]), real([r[1] for r in angle_rows]),
        ),
        propers=torsions(propers),
        impropers=torsions(impropers),
        nonbonded=NonbondedParameters(
            charges=real(charges), sigma=real(sigma), epsilon=real(epsilon),
            pairs_full=long(terms.pairs_full, 2), pairs_14=long(terms.pairs_14, 2),
            exclusions=long(terms.exclusions, 2),
            coulomb_14_scale=coulomb_14_scale, lj_14_scale=lj_14_scale,
        ),
        provenance={"method": "gaff", "forcefield": GAFF_VERSION, "charges": "am1bcc"},
    )


def _check_exceptions(
    graph: MoleculeGraph, nonbonded: Any, exclusions: np.ndarray, pairs_14: np.ndarray,
    charges: np.ndarray, sigma: np.ndarray, epsilon: np.ndarray,
    coulomb_14_scale: float, lj_14_scale: float,
) -> None:
    """The prmtop's exceptions are exactly the graph's exclusions and scaled 1-4 pairs."""
    excluded = {tuple(p) for p in exclusions.tolist()}
    one_four = {tuple(p) for p in pairs_14.tolist()}
    found: dict[tuple[int, int], tuple[float, float, float]] = {}
    for index in range(nonbonded.getNumExceptions()):
        i, j, qq, s, e = nonbonded.getExceptionParameters(index)
        found[(min(i, j), max(i, j))] = (_md(qq), _md(s), _md(e))
    if set(found) != excluded | one_four:
        raise ParametrizationError(
            f"prmtop nonbonded exceptions of {graph.name!r} are not the 1-2, 1-3 and 1-4 pairs"
        )
    for (i, j), (qq, s, e) in found.items():
        if (i, j) in excluded:
            expected = (0.0, None, 0.0)
        else:
            expected = (
                coulomb_14_scale * charges[i] * charges[j],
                0.5 * (sigma[i] + sigma[j]),
                lj_14_scale * math.sqrt(epsilon[i] * epsilon[j]),
            )
        ok = math.isclose(qq, expected[0], rel_tol=1e-6, abs_tol=1e-9) and math.isclose(
            e, expected[2], rel_tol=1e-6, abs_tol=1e-9
        )
        if expected[1] is not None and expected[2] != 0.0:
            ok = ok and math.isclose(s, expected[1], rel_tol=1e-6)
        if not ok:
            raise ParametrizationError(
                f"prmtop exception {(i, j)} of {graph.name!r} is {(qq, s, e)}, expected {expected}"
            )
