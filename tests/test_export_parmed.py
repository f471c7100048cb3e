"""GROMACS and Amber exports (ParmEd): the files read back by ParmEd and by OpenMM reproduce the
OpenMM System term by term (bond, angle + Urey-Bradley, torsion, nonbonded) to 1e-4 relative."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openmm
import openmm.app as app
import parmed
import pytest
from export_energy_helpers import TERMS, relative_differences, term_energies
from openmm import unit

import espaloma_like
from espaloma_like.export.parmed_system import ExportError
from espaloma_like.molecule import generate_conformers
from espaloma_like.parametrized import ParametrizedMolecule

TOLERANCE = 1e-4
MOLECULES = {
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "isopropylammonium": "CC(C)[NH3+]",  # charged
    "acetate": "CC(=O)[O-]",  # charged
    "zwitterion": "[NH3+][C@@H](Cc1ccccc1)C(=O)[O-]",
    "sulfonamide": "Nc1ccc(Cl)cc1S(=O)(=O)N",
}
#: OpenMM's AmberPrmtopFile divides every prmtop's CHARGE by Amber's 18.2223, also in chamber
#: files, whose charges are scaled by CHARMM's sqrt(332.0716) (as Amber's chamber program and
#: ParmEd write them): its charges come out 2.9e-5 too large
CHAMBER_CHARGE_RATIO = math.sqrt(332.0716) / 18.2223


def _read_back(kind: str, paths: tuple[Path, Path], reader: str) -> openmm.System:
    if reader == "parmed":
        return parmed.load_file(str(paths[0])).createSystem(nonbondedMethod=app.NoCutoff)
    options = dict(nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    if kind == "gromacs":
        return app.GromacsTopFile(str(paths[0])).createSystem(**options)
    return app.AmberPrmtopFile(str(paths[0])).createSystem(**options)


def _scale_charges(system: openmm.System, factor: float) -> None:
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            for i in range(force.getNumParticles()):
                q, sigma, eps = force.getParticleParameters(i)
                force.setParticleParameters(i, q / factor, sigma, eps)
            for n in range(force.getNumExceptions()):
                i, j, qq, sigma, eps = force.getExceptionParameters(n)
                force.setExceptionParameters(n, i, j, qq / factor**2, sigma, eps)


def _write(result: ParametrizedMolecule, kind: str, directory: Path,
           positions: np.ndarray) -> tuple[Path, Path]:
    if kind == "gromacs":
        paths = (directory / "mol.top", directory / "mol.gro")
        result.to_gromacs(*paths, positions=positions)
    else:
        paths = (directory / "mol.prmtop", directory / "mol.inpcrd")
        result.to_amber(*paths, positions=positions)
    return paths


@pytest.fixture(scope="module", params=["portable", "sage-fit"])
def results(request: pytest.FixtureRequest) -> dict[str, ParametrizedMolecule]:
    """The shipped portable model (Urey-Bradley springs) and sage-fit (none); the default's
    LJ and Coulomb within the molecule have no file form (test_default_model_is_refused...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: espaloma_like.parametrize(smiles, model=request.param)
                for name, smiles in MOLECULES.items()}


@pytest.mark.parametrize("reader", ["parmed", "openmm"])
@pytest.mark.parametrize("kind", ["gromacs", "amber"])
def test_files_reproduce_the_system_energy_per_term(
        results: dict[str, ParametrizedMolecule], kind: str, reader: str, tmp_path: Path) -> None:
    worst = dict.fromkeys(TERMS, 0.0)
    for name, result in results.items():
        xyz = generate_conformers(result.molecule, n_conformers=1, seed=1)[0]
        reference = term_energies(result.to_openmm_system(), xyz, result.molecule.bonds)
        assert abs(reference["nonbonded"]) > 1.0 and abs(reference["angle"]) > 1.0
        directory = tmp_path / name
        directory.mkdir()
        paths = _write(result, kind, directory, xyz)
        system = _read_back(kind, paths, reader)
        chamber = kind == "amber" and result.parameters.angles.urey_bradley_k is not None
        if chamber and reader == "openmm":
            _scale_charges(system, CHAMBER_CHARGE_RATIO)
        energies = term_energies(system, xyz, result.molecule.bonds)
        for term, value in relative_differences(reference, energies).items():
            worst[term] = max(worst[term], value)
    assert max(worst.values()) < TOLERANCE, worst


def test_urey_bradley_springs_are_written_as_such(
        results: dict[str, ParametrizedMolecule], tmp_path: Path) -> None:
    result = results["paracetamol"]
    has_springs = result.parameters.angles.urey_bradley_k is not None
    xyz = generate_conformers(result.molecule)[0]
    top, _ = _write(result, "gromacs", tmp_path, xyz)
    prmtop, _ = _write(result, "amber", tmp_path, xyz)
    angles = top.read_text().split("[ angles ]")[1].split("[")[0].splitlines()[2:]
    functions = {line.split()[3] for line in angles if line.strip()}
    text = prmtop.read_text()
    if has_springs:
        assert functions == {"5"}
        assert "%FLAG CHARMM_UREY_BRADLEY_COUNT" in text
        structure = parmed.load_file(str(prmtop))
        assert len(structure.urey_bradleys) == len(result.parameters.angles.indices)
        # never folded into bonds: the topology keeps the molecule's bonds only
        assert len(structure.bonds) == len(result.molecule.bonds)
    else:
        assert functions == {"1"}
        assert "CHARMM" not in text
    assert "fudgeQQ" in top.read_text() and " 0.83333" in top.read_text()


def test_positions_from_a_generated_conformer_or_the_molecule(tmp_path: Path) -> None:
    from espaloma_like.molecule import read_molecule

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = espaloma_like.parametrize("CCO", model="portable")
    result.to_amber(tmp_path / "a.prmtop", tmp_path / "a.inpcrd")
    xyz = app.AmberInpcrdFile(str(tmp_path / "a.inpcrd")).getPositions(asNumpy=True)._value
    # a real conformer: C-O bond near 0.143 nm
    assert abs(np.linalg.norm(xyz[1] - xyz[2]) - 0.143) < 0.01
    sdf = Path(__file__).parent / "data" / "ethanol.mol2"
    graph = read_molecule(sdf)
    from_file = espaloma_like.parametrize(graph, model="portable")
    from_file.to_gromacs(tmp_path / "b.top", tmp_path / "b.gro")
    gro = app.GromacsGroFile(str(tmp_path / "b.gro")).getPositions(asNumpy=True)._value
    assert graph.positions is not None
    assert np.abs(gro - graph.positions).max() <= 5.1e-4  # .gro: 3 decimals, nm


def test_cli_writes_both_files_and_refuses_to_replace(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "espaloma_like.cli.main", "parametrize",
               "CC(=O)Nc1ccc(O)cc1", "--model", "portable"]
    done = subprocess.run([*command, "-o", str(tmp_path / "para.top"), "--format", "gromacs"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "para.top").is_file() and (tmp_path / "para.gro").is_file()
    topology = app.GromacsTopFile(str(tmp_path / "para.top"))
    assert topology.topology.getNumAtoms() == 20
    done = subprocess.run([*command, "-o", str(tmp_path / "para"), "--format", "amber"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    prmtop = app.AmberPrmtopFile(str(tmp_path / "para.prmtop"))
    inpcrd = app.AmberInpcrdFile(str(tmp_path / "para.inpcrd"))
    assert prmtop.topology.getNumAtoms() == len(inpcrd.getPositions()) == 20
    before = (tmp_path / "para.prmtop").read_bytes()
    done = subprocess.run([*command, "-o", str(tmp_path / "para.prmtop"), "--format", "amber"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "--overwrite" in done.stderr
    assert (tmp_path / "para.prmtop").read_bytes() == before
    # no temporary files left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "para.gro", "para.inpcrd", "para.prmtop", "para.top"]


# --- periodic systems: protein, ligand, water and ions from a SystemGenerator --------------------

#: The nonbonded settings of the System, given again when the files are read: with the same
#: cutoff, Ewald tolerance and box, OpenMM picks the same PME grid and alpha on both sides.
PME = {"nonbondedMethod": app.PME, "nonbondedCutoff": 0.8 * unit.nanometer,
       "ewaldErrorTolerance": 5e-4}
FLEXIBLE = {"constraints": None, "rigidWater": False, "removeCMMotion": False}
RIGID = {"constraints": app.HBonds, "rigidWater": True, "removeCMMotion": False}
BOX_NM = 2.6
PARACETAMOL = MOLECULES["paracetamol"]


@dataclass(frozen=True)
class Solvated:
    """ALA-ALA, paracetamol (the model's), TIP3P water and a NaCl pair in a periodic box."""

    model: str
    topology: app.Topology
    positions: np.ndarray  # (N, 3) nm, briefly minimized
    flexible: openmm.System  # PME, no constraints: what is exported
    rigid: openmm.System  # PME, HBonds + rigid water: what a user runs
    ligand: ParametrizedMolecule

    @property
    def bonds(self) -> np.ndarray:
        return np.array([(a.index, b.index) for a, b in self.topology.bonds()])

    def ligand_atoms(self) -> list[int]:
        (residue,) = (r for r in self.topology.residues() if r.name == "LIG")
        return [atom.index for atom in residue.atoms()]


@pytest.fixture(scope="module", params=["portable", "sage-fit"])
def solvated(request: pytest.FixtureRequest) -> Solvated:
    """Built in one call per System by the package's SystemGenerator (amber14 + TIP3P), ~1600
    atoms; the portable model has Urey-Bradley springs, sage-fit none."""
    from openmm_system_helpers import dialanine

    from espaloma_like import SystemGenerator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ligand = espaloma_like.parametrize(PARACETAMOL, model=request.param)
        generator = SystemGenerator(["amber14-all.xml", "amber14/tip3p.xml"],
                                    small_molecule_forcefield=request.param,
                                    molecules=[PARACETAMOL], forcefield_kwargs=FLEXIBLE,
                                    periodic_forcefield_kwargs=PME)
    topology, xyz = dialanine()
    modeller = app.Modeller(topology, xyz * unit.nanometer)
    ligand_xyz = generate_conformers(ligand.molecule, 1, seed=0)[0]
    ligand_xyz = ligand_xyz - ligand_xyz.mean(0) + xyz.mean(0) + np.array([0.7, 0.0, 0.0])
    modeller.add(ligand.to_openmm_topology("LIG"), ligand_xyz * unit.nanometer)
    modeller.addSolvent(generator.forcefield, model="tip3p",
                        boxSize=openmm.Vec3(BOX_NM, BOX_NM, BOX_NM) * unit.nanometer,
                        ionicStrength=0.1 * unit.molar,
                        residueTemplates=generator.residue_templates(modeller.topology))
    flexible = generator.create_system(modeller.topology)
    rigid = generator.create_system(modeller.topology, **RIGID)
    context = openmm.Context(flexible, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    context.setPositions(modeller.positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 100)  # no clashes left to dominate
    positions = context.getState(getPositions=True).getPositions(asNumpy=True)
    return Solvated(request.param, modeller.topology, positions.value_in_unit(unit.nanometer),
                    flexible, rigid, ligand)


def _write_system(solvated: Solvated, kind: str, directory: Path) -> tuple[Path, Path]:
    from espaloma_like.export.parmed_files import write_system_amber, write_system_gromacs

    if kind == "gromacs":
        paths = (directory / "complex.top", directory / "complex.gro")
        write_system_gromacs(solvated.topology, solvated.flexible, solvated.positions, *paths)
    else:
        paths = (directory / "complex.prmtop", directory / "complex.inpcrd")
        write_system_amber(solvated.topology, solvated.flexible, solvated.positions, *paths)
    return paths


def _read_system(kind: str, paths: tuple[Path, Path], reader: str,
                 options: dict[str, Any]) -> openmm.System:
    """The System of the files, created with ``options`` and the PME settings."""
    if reader == "parmed":
        structure = parmed.load_file(str(paths[0]), xyz=str(paths[1]))
        settings = {k: v for k, v in options.items() if k != "removeCMMotion"}
        return structure.createSystem(**PME, **settings)
    if kind == "gromacs":
        box = app.GromacsGroFile(str(paths[1])).getPeriodicBoxVectors()
        return app.GromacsTopFile(str(paths[0]), periodicBoxVectors=box).createSystem(
            **PME, **options)
    return app.AmberPrmtopFile(str(paths[0])).createSystem(**PME, **options)


def _chamber(solvated: Solvated) -> bool:
    return solvated.ligand.parameters.angles.urey_bradley_k is not None


def _pme_parameters(system: openmm.System) -> tuple[float, tuple[int, ...]]:
    context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    force = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    alpha, nx, ny, nz = force.getPMEParametersInContext(context)
    return alpha, (nx, ny, nz)


@pytest.mark.parametrize("reader", ["parmed", "openmm"])
@pytest.mark.parametrize("kind", ["gromacs", "amber"])
def test_periodic_files_reproduce_the_system_energy_per_term(
        solvated: Solvated, kind: str, reader: str, tmp_path: Path) -> None:
    reference = term_energies(solvated.flexible, solvated.positions, solvated.bonds)
    assert reference["nonbonded"] < -1e4 and reference["torsion"] != 0.0
    paths = _write_system(solvated, kind, tmp_path)
    system = _read_system(kind, paths, reader, FLEXIBLE)
    if kind == "amber" and reader == "openmm" and _chamber(solvated):
        _scale_charges(system, CHAMBER_CHARGE_RATIO)
    # same box, cutoff and tolerance: the same reciprocal-space grid and alpha
    box = np.array([v.value_in_unit(unit.nanometer) for v in system.getDefaultPeriodicBoxVectors()])
    assert np.abs(box - np.eye(3) * BOX_NM).max() < 1e-6
    alpha, grid = _pme_parameters(solvated.flexible)
    alpha_read, grid_read = _pme_parameters(system)
    assert grid_read == grid and alpha_read == pytest.approx(alpha, rel=1e-6)
    energies = term_energies(system, solvated.positions, solvated.bonds)
    assert max(relative_differences(reference, energies).values()) < TOLERANCE, (
        reference, energies)


@pytest.mark.parametrize("kind", ["gromacs", "amber"])
def test_rigid_water_and_hbond_constraints_come_back_from_the_files(
        solvated: Solvated, kind: str, tmp_path: Path) -> None:
    """Constraints are a run setting in both formats: read with constraints=HBonds and
    rigidWater=True, the files give the constraints and energies of the System made so."""
    paths = _write_system(solvated, kind, tmp_path)
    system = _read_system(kind, paths, "openmm", RIGID)
    if kind == "amber" and _chamber(solvated):
        _scale_charges(system, CHAMBER_CHARGE_RATIO)

    def constraints(s: openmm.System) -> dict[tuple[int, int], float]:
        found = {}
        for n in range(s.getNumConstraints()):
            i, j, d = s.getConstraintParameters(n)
            found[(min(i, j), max(i, j))] = d.value_in_unit(unit.nanometer)
        return found

    expected, found = constraints(solvated.rigid), constraints(system)
    n_waters = sum(r.name == "HOH" for r in solvated.topology.residues())
    assert n_waters > 400 and len(expected) > 3 * n_waters
    assert found.keys() == expected.keys()
    assert max(abs(found[pair] - expected[pair]) for pair in expected) < 1e-8
    # positions that satisfy the constraints: the water angles the files keep are then at rest
    context = openmm.Context(solvated.rigid, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(solvated.positions)
    context.applyConstraints(1e-10)
    xyz = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(
        unit.nanometer)
    reference = term_energies(solvated.rigid, xyz, solvated.bonds)
    energies = term_energies(system, xyz, solvated.bonds)
    assert max(relative_differences(reference, energies).values()) < TOLERANCE, (
        reference, energies)


def test_water_model_and_14_scales_in_the_files(solvated: Solvated, tmp_path: Path) -> None:
    top, _ = _write_system(solvated, "gromacs", tmp_path)
    prmtop, _ = _write_system(solvated, "amber", tmp_path)
    text = top.read_text()
    defaults = text.split("[ defaults ]")[1].split("[")[0].splitlines()[2].split()
    assert defaults[2:] == ["no", "1", "0.83333333"]  # gen-pairs, fudgeLJ, fudgeQQ
    # TIP3P: rigid by default (SETTLE with its O-H and H-H distances), flexible on request
    assert "#ifdef FLEXIBLE" in text
    settles = text.split("[ settles ]")[1].split("#endif")[0].splitlines()[2].split()
    assert float(settles[2]) == pytest.approx(0.09572, abs=1e-8)
    assert float(settles[3]) == pytest.approx(0.15139, abs=1e-5)
    # every 1-4 pair of the ligand and of the peptide is a GROMACS pair with its own LJ
    gromacs = parmed.load_file(str(top))
    pairs_14 = len(solvated.ligand.parameters.numpy()["nonbonded.pairs_14"])
    ligand_type = next(m for m, _ in gromacs.split() if m.residues[0].name == "LIG")
    assert len(ligand_type.adjusts) == pairs_14

    amber = parmed.load_file(str(prmtop))
    assert {r.name for r in amber.residues} == {"WAT", "LIG", "ALA", "NA", "CL"}
    water = next(r for r in amber.residues if r.name == "WAT")
    hh = next(b for b in water.atoms[1].bonds if b.atom1.element == b.atom2.element == 1)
    assert hh.type.k == 0.0 and hh.type.req == pytest.approx(1.5139, abs=1e-3)
    # SCEE 1.2 (0.8333) on every torsion that carries a 1-4 pair; SCNB 2 (0.5) in a standard
    # prmtop, 1 in a chamber one (its 1-4 Lennard-Jones table holds the scaled values)
    ends = [d.type for d in amber.dihedrals if not d.ignore_end and not d.improper]
    assert ends and {round(t.scee, 6) for t in ends} == {1.2}
    assert {round(t.scnb, 6) for t in ends} == ({1.0} if _chamber(solvated) else {2.0})


def test_urey_bradley_springs_of_a_forcefield_system_are_not_bonds(
        solvated: Solvated, tmp_path: Path) -> None:
    """ForceField puts the model's springs into the bond force; the files keep them springs."""
    n_springs = 0
    if _chamber(solvated):
        n_springs = int(np.count_nonzero(solvated.ligand.parameters.numpy()["angles.urey_bradley_k"]))
    bonded = {frozenset(map(int, pair)) for pair in solvated.bonds.tolist()}
    (bond_force,) = (f for f in solvated.flexible.getForces()
                     if isinstance(f, openmm.HarmonicBondForce))
    in_bond_force = sum(frozenset(bond_force.getBondParameters(n)[:2]) not in bonded
                        for n in range(bond_force.getNumBonds()))
    assert in_bond_force == n_springs

    top, _ = _write_system(solvated, "gromacs", tmp_path)
    prmtop, _ = _write_system(solvated, "amber", tmp_path)
    gromacs = parmed.load_file(str(top))
    assert len(gromacs.bonds) == len(bonded)
    assert sum(angle.funct == 5 for angle in gromacs.angles) == n_springs
    assert len(gromacs.urey_bradleys) == n_springs
    amber = parmed.load_file(str(prmtop))
    n_waters = sum(r.name == "WAT" for r in amber.residues)
    assert len(amber.bonds) == len(bonded) + n_waters  # and the water H-H bonds of k 0
    assert len(amber.urey_bradleys) == n_springs
    assert ("%FLAG CHARMM_UREY_BRADLEY_COUNT" in prmtop.read_text()) == (n_springs > 0)


def test_mixed_14_scales_go_to_amber_and_are_refused_by_gromacs(
        solvated: Solvated, tmp_path: Path) -> None:
    """A ligand with 1-4 scales 0.5 / 1.0 (as OPLS or GLYCAM) beside Amber's 0.8333 / 0.5."""
    from espaloma_like.export.parmed_files import (
        ExportError,
        write_system_amber,
        write_system_gromacs,
    )

    system = openmm.XmlSerializer.clone(solvated.flexible)
    nonbonded = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    ligand = set(solvated.ligand_atoms())
    pairs = {tuple(int(a) + min(ligand) for a in pair)
             for pair in solvated.ligand.parameters.numpy()["nonbonded.pairs_14"].tolist()}
    changed = 0
    for n in range(nonbonded.getNumExceptions()):
        i, j = nonbonded.getExceptionParameters(n)[:2]
        if (min(i, j), max(i, j)) in pairs:
            qi, si, ei = nonbonded.getParticleParameters(i)
            qj, sj, ej = nonbonded.getParticleParameters(j)
            nonbonded.setExceptionParameters(n, i, j, 0.5 * qi * qj, 0.5 * (si + sj),
                                             (ei * ej).sqrt())
            changed += 1
    assert changed == len(pairs) > 0
    with pytest.raises(ExportError, match="fudgeQQ"):
        write_system_gromacs(solvated.topology, system, solvated.positions,
                             tmp_path / "mixed.top", tmp_path / "mixed.gro")
    assert not list(tmp_path.iterdir())
    paths = (tmp_path / "mixed.prmtop", tmp_path / "mixed.inpcrd")
    write_system_amber(solvated.topology, system, solvated.positions, *paths)
    reference = term_energies(system, solvated.positions, solvated.bonds)
    for reader in ("parmed", "openmm"):
        read = _read_system("amber", paths, reader, FLEXIBLE)
        if reader == "openmm" and _chamber(solvated):
            _scale_charges(read, CHAMBER_CHARGE_RATIO)
        energies = term_energies(read, solvated.positions, solvated.bonds)
        assert max(relative_differences(reference, energies).values()) < TOLERANCE, reader


def _ethanol() -> tuple[app.Topology, openmm.System, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = espaloma_like.parametrize("CCO", model="portable")
    xyz = generate_conformers(result.molecule, n_conformers=1, seed=0)[0]
    return result.to_openmm_topology("ETH"), result.to_openmm_system(), xyz


def _same_lattice(box: np.ndarray, other: np.ndarray, tolerance: float = 2e-5) -> bool:
    """Whether two (3, 3) bases (nm) span the same lattice: integer combinations of each
    other, to ``tolerance`` nm."""
    combination = np.linalg.solve(box.T, other.T).T  # other = combination @ box
    integral = np.round(combination)
    return (abs(abs(np.linalg.det(integral)) - 1) < 1e-9
            and np.abs((combination - integral) @ box).max() < tolerance)


BOXES = {  # OpenMM's reduced forms (Modeller._computeBoxVectors), 3 nm
    "octahedron": np.array([[1, 0, 0], [1 / 3, 2 * math.sqrt(2) / 3, 0],
                            [-1 / 3, math.sqrt(2) / 3, math.sqrt(6) / 3]]) * 3.0,
    "dodecahedron": np.array([[1, 0, 0], [0, 1, 0], [0.5, 0.5, 0.5 * math.sqrt(2)]]) * 3.0,
    "brick": np.diag([2.5, 3.0, 3.5]),
}


def _rotation(reference: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """The rotation R (rows) with ``moved - mean = (reference - mean) @ R`` (Kabsch)."""
    p, q = reference - reference.mean(0), moved - moved.mean(0)
    u, _, vt = np.linalg.svd(p.T @ q)
    if np.linalg.det(u @ vt) < 0:
        u[:, -1] *= -1
    return u @ vt


@pytest.mark.parametrize("shape", sorted(BOXES))
def test_box_is_written_for_any_nonbonded_method_and_box_shape(shape: str, tmp_path: Path) -> None:
    """A box given to a NoCutoff System comes back from the .gro, the prmtop and the inpcrd.

    A prmtop stores one box angle: a truncated octahedron or rhombic dodecahedron goes out
    with three equal angles (Amber's 109.47 degrees for the octahedron), in the orientation
    that the readers build from them, and the coordinates are rotated with it."""
    from espaloma_like.export.parmed_files import write_system_amber, write_system_gromacs

    topology, system, xyz = _ethanol()
    box = BOXES[shape]
    assert not system.usesPeriodicBoundaryConditions()
    _, gro = write_system_gromacs(topology, system, xyz, tmp_path / "e.top", tmp_path / "e.gro",
                                  box_vectors=box)
    prmtop, inpcrd = write_system_amber(topology, system, xyz, tmp_path / "e.prmtop",
                                        tmp_path / "e.inpcrd", box_vectors=box * unit.nanometer)
    from_gro = app.GromacsGroFile(str(gro))
    assert _same_lattice(box, np.array(from_gro.getPeriodicBoxVectors().value_in_unit(unit.nanometer)))
    assert np.abs(from_gro.getPositions(asNumpy=True).value_in_unit(unit.nanometer) - xyz).max() < 6e-4
    restart = app.AmberInpcrdFile(str(inpcrd))
    amber_xyz = restart.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    rotation = _rotation(xyz, amber_xyz)
    assert np.abs((xyz - xyz.mean(0)) @ rotation - (amber_xyz - amber_xyz.mean(0))).max() < 1e-7
    assert (shape == "brick") == bool(np.allclose(rotation, np.eye(3), atol=1e-6))
    for vectors in (restart.getBoxVectors(),
                    app.AmberPrmtopFile(str(prmtop)).topology.getPeriodicBoxVectors()):
        assert _same_lattice(box @ rotation, np.array(vectors.value_in_unit(unit.nanometer)))
    angles = [float(a) for a in inpcrd.read_text().splitlines()[-1].split()[3:]]
    assert angles == {"octahedron": [109.4712206] * 3, "dodecahedron": [60.0] * 3,
                      "brick": [90.0] * 3}[shape]


def test_box_none_and_a_box_a_prmtop_cannot_hold(tmp_path: Path) -> None:
    from espaloma_like.export.parmed_files import (
        ExportError,
        write_system_amber,
        write_system_gromacs,
    )

    topology, system, xyz = _ethanol()
    write_system_amber(topology, system, xyz, tmp_path / "n.prmtop", tmp_path / "n.inpcrd")
    assert app.AmberPrmtopFile(str(tmp_path / "n.prmtop")).topology.getPeriodicBoxVectors() is None
    assert app.AmberInpcrdFile(str(tmp_path / "n.inpcrd")).boxVectors is None
    skewed = np.array([[3.0, 0, 0], [0.5, 2.5, 0], [0.2, 0.7, 2.0]])
    with pytest.raises(ExportError, match="one box angle"):
        write_system_amber(topology, system, xyz, tmp_path / "s.prmtop", tmp_path / "s.inpcrd",
                           box_vectors=skewed)
    _, gro = write_system_gromacs(topology, system, xyz, tmp_path / "s.top", tmp_path / "s.gro",
                                  box_vectors=skewed)
    from_gro = app.GromacsGroFile(str(gro)).getPeriodicBoxVectors().value_in_unit(unit.nanometer)
    assert _same_lattice(skewed, np.array(from_gro))


def _with_custom_nonbonded(system: openmm.System) -> None:
    force = openmm.CustomNonbondedForce("0")  # as CHARMM's LennardJonesForce (NBFIX)
    for _ in range(system.getNumParticles()):
        force.addParticle([])
    system.addForce(force)


def _with_restraint(system: openmm.System) -> None:
    bonds = next(f for f in system.getForces() if isinstance(f, openmm.HarmonicBondForce))
    bonds.addBond(0, system.getNumParticles() - 1, 0.5, 100.0)  # ends of ethanol: 1-4 or more


def _with_constraints(system: openmm.System) -> None:
    """A constrained bond whose harmonic term is gone, as createSystem(constraints=...) does."""
    index = next(n for n, f in enumerate(system.getForces())
                 if isinstance(f, openmm.HarmonicBondForce))
    bonds = system.getForce(index)
    kept = openmm.HarmonicBondForce()
    for n in range(bonds.getNumBonds()):
        i, j, length, k = bonds.getBondParameters(n)
        if n == 0:
            system.addConstraint(i, j, length)
        else:
            kept.addBond(i, j, length, k)
    system.removeForce(index)
    system.addForce(kept)


def _with_distant_exception(system: openmm.System) -> None:
    nonbonded = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    far = [(i, j) for i in range(system.getNumParticles()) for j in range(i)]
    excepted = {tuple(sorted(nonbonded.getExceptionParameters(n)[:2]))
                for n in range(nonbonded.getNumExceptions())}
    i, j = next(pair for pair in far if tuple(sorted(pair)) not in excepted)
    nonbonded.addException(i, j, 0.0, 0.3, 0.0)


@pytest.mark.parametrize(("change", "message"), [
    (_with_custom_nonbonded, "CustomNonbondedForce"),
    (_with_restraint, "neither bonded"),
    (_with_constraints, "constraints=None, rigidWater=False"),
    (_with_distant_exception, "more than three bonds apart"),
])
@pytest.mark.parametrize("kind", ["gromacs", "amber"])
def test_what_the_files_cannot_hold_is_an_error_and_no_file(
        change: Any, message: str, kind: str, tmp_path: Path) -> None:
    from espaloma_like.exceptions import EspalomaLikeError
    from espaloma_like.export.parmed_files import (
        ExportError,
        write_system_amber,
        write_system_gromacs,
    )

    topology, system, xyz = _ethanol()
    change(system)
    write = write_system_gromacs if kind == "gromacs" else write_system_amber
    with pytest.raises(ExportError, match=message) as raised:
        write(topology, system, xyz, tmp_path / "x.top", tmp_path / "x.gro")
    assert isinstance(raised.value, EspalomaLikeError)
    assert not list(tmp_path.iterdir())


def test_empty_forces_are_left_out(tmp_path: Path) -> None:
    """A bonded force without terms (CHARMM's CMAP in a System without protein) changes no
    energy: the export leaves it out instead of refusing the System."""
    from espaloma_like.export.parmed_files import write_system_gromacs

    topology, system, xyz = _ethanol()
    bonds = np.array([(a.index, b.index) for a, b in topology.bonds()])
    reference = term_energies(system, xyz, bonds)
    system.addForce(openmm.CMAPTorsionForce())
    system.addForce(openmm.CustomTorsionForce("k*theta^2"))
    top, _ = write_system_gromacs(topology, system, xyz, tmp_path / "e.top", tmp_path / "e.gro")
    read = app.GromacsTopFile(str(top)).createSystem(nonbondedMethod=app.NoCutoff, **FLEXIBLE)
    assert max(relative_differences(reference, term_energies(read, xyz, bonds)).values()) < 1e-6


@pytest.mark.slow  # loading charmm36.xml: ~4 s
def test_a_charmm36_system_is_refused_with_the_reason(tmp_path: Path) -> None:
    """CHARMM's Lennard-Jones lives in a CustomNonbondedForce (NBFIX) and CustomBondForce:
    ParmEd would drop it with a warning; the export says so and writes nothing."""
    from espaloma_like import SystemGenerator
    from espaloma_like.export.parmed_files import ExportError, write_system_amber

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generator = SystemGenerator(["charmm36.xml"], molecules=[PARACETAMOL],
                                    forcefield_kwargs=FLEXIBLE)
        ligand = espaloma_like.parametrize(PARACETAMOL, model="portable")
    topology = ligand.to_openmm_topology("LIG")
    system = generator.create_system(topology)
    xyz = generate_conformers(ligand.molecule, n_conformers=1, seed=0)[0]
    with pytest.raises(ExportError, match="CustomNonbondedForce"):
        write_system_amber(topology, system, xyz, tmp_path / "c.prmtop", tmp_path / "c.inpcrd")
    assert not list(tmp_path.iterdir())


def test_default_model_is_refused_with_the_portable_one_named(tmp_path: Path) -> None:
    """The default's LJ and Coulomb within the molecule are custom forces no GROMACS or Amber
    file made by ParmEd holds: refused before anything is written, naming the way out."""
    molecule = espaloma_like.parametrize("CC(=O)[O-]")
    for write, names in ((molecule.to_gromacs, ("m.top", "m.gro")),
                         (molecule.to_amber, ("m.prmtop", "m.inpcrd"))):
        with pytest.raises(ExportError, match=r"intramolecular_lj, intramolecular_coulomb.*"
                                              r"model='portable'"):
            write(*(tmp_path / name for name in names))
    assert not any(tmp_path.iterdir())
    portable = espaloma_like.parametrize("CC(=O)[O-]", model="portable")
    portable.to_gromacs(tmp_path / "m.top", tmp_path / "m.gro")
    assert (tmp_path / "m.top").stat().st_size > 0
