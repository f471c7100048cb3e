"""GROMACS and Amber exports (ParmEd): the files read back by ParmEd and by OpenMM reproduce the
OpenMM System term by term (bond, angle + Urey-Bradley, torsion, nonbonded) to 1e-4 relative."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import parmed
import pytest
from export_energy_helpers import TERMS, relative_differences, term_energies

import espaloma_like
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


@pytest.fixture(scope="module", params=["default", "sage-fit"])
def results(request: pytest.FixtureRequest) -> dict[str, ParametrizedMolecule]:
    """The shipped default model (Urey-Bradley springs) and sage-fit (none)."""
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
        result = espaloma_like.parametrize("CCO")
    result.to_amber(tmp_path / "a.prmtop", tmp_path / "a.inpcrd")
    xyz = app.AmberInpcrdFile(str(tmp_path / "a.inpcrd")).getPositions(asNumpy=True)._value
    # a real conformer: C-O bond near 0.143 nm
    assert abs(np.linalg.norm(xyz[1] - xyz[2]) - 0.143) < 0.01
    sdf = Path(__file__).parent / "data" / "ethanol.mol2"
    graph = read_molecule(sdf)
    from_file = espaloma_like.parametrize(graph)
    from_file.to_gromacs(tmp_path / "b.top", tmp_path / "b.gro")
    gro = app.GromacsGroFile(str(tmp_path / "b.gro")).getPositions(asNumpy=True)._value
    assert graph.positions is not None
    assert np.abs(gro - graph.positions).max() <= 5.1e-4  # .gro: 3 decimals, nm


def test_cli_writes_both_files_and_refuses_to_replace(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "espaloma_like.cli.main", "parametrize",
               "CC(=O)Nc1ccc(O)cc1"]
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
