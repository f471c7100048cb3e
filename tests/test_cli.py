"""The command line: one molecule, many molecules with per-molecule errors, clear messages."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from espaloma_like.cli.main import error_message, main


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "espaloma_like.cli.main", *args],
                          capture_output=True, text=True, timeout=600)


def test_parametrize_one_smiles_with_the_model(tmp_path: Path) -> None:
    import openmm

    out = tmp_path / "paracetamol.xml"
    done = _cli("parametrize", "CC(=O)Nc1ccc(O)cc1", "-o", str(out))
    assert done.returncode == 0, done.stderr
    system = openmm.XmlSerializer.deserialize(out.read_text())
    assert system.getNumParticles() == 20


def test_forcefield_format_loads_in_openmm(tmp_path: Path) -> None:
    import openmm.app as app

    out = tmp_path / "ff.xml"
    assert _cli("parametrize", "CC(=O)[O-]", "-o", str(out), "--format", "forcefield").returncode == 0
    forcefield = app.ForceField(str(out))
    assert len(forcefield._templates) == 1


def _pdb_runs_with(system, pdb_path: Path) -> float:  # type: ignore[no-untyped-def]
    """The PDB matches ``system`` atom for atom (count, element by mass); its energy, kJ/mol."""
    import openmm
    import openmm.app as app
    from openmm import unit

    pdb = app.PDBFile(str(pdb_path))
    atoms = list(pdb.topology.atoms())
    assert len(atoms) == system.getNumParticles()
    for index, atom in enumerate(atoms):
        mass = system.getParticleMass(index).value_in_unit(unit.dalton)
        assert atom.element.mass.value_in_unit(unit.dalton) == pytest.approx(mass, abs=1e-3)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(pdb.positions)
    energy = context.getState(getEnergy=True).getPotentialEnergy()
    return float(energy.value_in_unit(unit.kilojoule_per_mole))


def test_system_xml_comes_with_a_pdb_that_runs(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import math

    import openmm

    out = tmp_path / "paracetamol.xml"
    assert main(["parametrize", "CC(=O)Nc1ccc(O)cc1", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    system = openmm.XmlSerializer.deserialize(out.read_text())
    pdb = tmp_path / "paracetamol.pdb"
    energy = _pdb_runs_with(system, pdb)
    assert math.isfinite(energy) and energy < 1e3  # a sensible conformer, not a clash
    # the same naming and overwrite rules as the XML: an existing PDB stops the run first
    other = tmp_path / "other.xml"
    (tmp_path / "other.pdb").write_text("keep me")
    assert main(["parametrize", "CCO", "-o", str(other)]) == 1
    assert "other.pdb exists" in capsys.readouterr().err
    assert not other.exists() and (tmp_path / "other.pdb").read_text() == "keep me"
    assert main(["parametrize", "CCO", "-o", str(other), "--overwrite"]) == 0
    assert (tmp_path / "other.pdb").read_text().startswith("REMARK")
    # --no-positions: the XML alone
    assert main(["parametrize", "CCO", "-o", str(tmp_path / "alone.xml"), "--no-positions"]) == 0
    assert (tmp_path / "alone.xml").is_file() and not (tmp_path / "alone.pdb").exists()


def test_forcefield_xml_and_pdb_keep_the_input_coordinates(tmp_path: Path) -> None:
    import numpy as np
    import openmm
    import openmm.app as app
    from openmm import unit
    from rdkit import Chem
    from rdkit.Chem import AllChem

    sdf = tmp_path / "in.sdf"
    writer = Chem.SDWriter(str(sdf))
    coordinates = []
    for n, smiles in enumerate(["CC(=O)[O-]", "c1ccccc1O"]):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=n + 3)
        mol.SetProp("_Name", f"m{n}")
        writer.write(mol)
        coordinates.append(mol.GetConformer().GetPositions())
    writer.close()
    out = tmp_path / "ff"
    assert main(["parametrize", str(sdf), "-o", str(out), "--format", "forcefield"]) == 0
    for xml, expected in zip(sorted(out.glob("*.xml")), coordinates, strict=True):
        pdb = app.PDBFile(str(xml.with_suffix(".pdb")))
        xyz = np.array(pdb.positions.value_in_unit(unit.angstrom))
        assert np.abs(xyz - expected).max() < 1e-3  # PDB precision
        # the ForceField template matches the PDB's topology (bonds from CONECT records)
        system = app.ForceField(str(xml)).createSystem(pdb.topology)
        assert isinstance(system, openmm.System)
        assert np.isfinite(_pdb_runs_with(system, xml.with_suffix(".pdb")))


def test_undefined_stereo_writes_the_xml_and_says_why_there_is_no_pdb(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "butanol.xml"
    assert main(["parametrize", "CC(O)CC", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "no PDB written" in err and "stereochemistry" in err and len(err.splitlines()) == 1
    assert out.is_file() and not (tmp_path / "butanol.pdb").exists()


def test_many_molecules_keep_going_past_errors(tmp_path: Path) -> None:
    smiles = tmp_path / "in.smi"
    smiles.write_text("CCO ethanol\nC1CC( broken\nC[Si](C)(C)C silane\nCC(=O)[O-] acetate\n")
    out = tmp_path / "out"
    done = _cli("parametrize", str(smiles), "-o", str(out))
    assert done.returncode == 1
    names = sorted(p.name for p in out.glob("*.xml"))
    assert [n.rsplit("_", 1)[0] for n in names] == ["00000_ethanol", "00003_acetate"]
    assert sorted(p.name for p in out.glob("*.pdb")) == [n[:-4] + ".pdb" for n in names]
    assert "UnparsableSmilesError" in done.stderr and "UnsupportedElementError" in done.stderr
    assert "wrote 2 of 4 molecules" in done.stdout


def test_sdf_with_many_molecules(tmp_path: Path) -> None:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    path = tmp_path / "many.sdf"
    writer = Chem.SDWriter(str(path))
    for n, s in enumerate(["CCO", "c1ccccc1", "CC(=O)[O-]"]):
        mol = Chem.AddHs(Chem.MolFromSmiles(s))
        AllChem.EmbedMolecule(mol, randomSeed=n + 1)
        mol.SetProp("_Name", f"m{n}")
        writer.write(mol)
    writer.close()
    done = _cli("parametrize", str(path), "-o", str(tmp_path / "xml"), "--format", "forcefield")
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "xml").glob("*.xml"))) == 3


def test_bad_input_gives_a_clear_message(tmp_path: Path) -> None:
    done = _cli("parametrize", "C[O]", "-o", str(tmp_path / "x.xml"))
    assert done.returncode == 1
    assert "unpaired electrons" in done.stderr and "Traceback" not in done.stderr
    done = _cli("parametrize", "missing.sdf", "-o", str(tmp_path / "x.xml"))
    assert done.returncode == 1 and "no such molecule file" in done.stderr
    done = _cli("parametrize", "CCO", "-o", str(tmp_path / "x.xml"), "--model", "nope")
    assert done.returncode == 1 and "unknown model" in done.stderr


def test_baseline_method(tmp_path: Path) -> None:
    out = tmp_path / "gaff.xml"
    done = _cli("parametrize", "CCO", "-o", str(out), "--method", "gaff")
    assert done.returncode == 0, done.stderr
    assert "PeriodicTorsionForce" in out.read_text()


def _one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the CLI in-process; it must fail with one line on stderr and no traceback."""
    code = main(list(args))
    captured = capsys.readouterr()
    assert code != 0
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_unreadable_inputs_end_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.sdf"
    empty.write_text("")
    assert "empty" in _one_line_error(capsys, "parametrize", str(empty), "-o", str(tmp_path / "a.xml"))
    binary = tmp_path / "list.smi"
    binary.write_bytes(bytes(range(256)) * 8)
    assert "binary" in _one_line_error(capsys, "parametrize", str(binary), "-o", str(tmp_path / "b.xml"))
    pdb = tmp_path / "ligand.pdb"
    pdb.write_text("ATOM      1  C   LIG A   1       0.000   0.000   0.000\n")
    message = _one_line_error(capsys, "parametrize", str(pdb), "-o", str(tmp_path / "c.xml"))
    assert "unsupported molecule file type '.pdb'" in message and "SMILES" not in message
    assert not list(tmp_path.glob("*.xml"))


def test_one_molecule_into_an_existing_directory_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    message = _one_line_error(capsys, "parametrize", "CCO", "-o", str(tmp_path))
    assert "is a directory" in message
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_not_replaced_without_overwrite(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.xml"
    out.write_text("keep me")
    assert "--overwrite" in _one_line_error(capsys, "parametrize", "CCO", "-o", str(out))
    assert out.read_text() == "keep me"
    assert main(["parametrize", "CCO", "-o", str(out), "--overwrite"]) == 0
    assert "HarmonicBondForce" in out.read_text()


def test_two_runs_into_one_directory_lose_nothing(tmp_path: Path) -> None:
    first, second = tmp_path / "a.smi", tmp_path / "b.smi"
    first.write_text("CCO\nCCC\nCCN\n")
    second.write_text("c1ccccc1\nCC(=O)[O-]\nCOC\n")
    out = tmp_path / "out"
    assert main(["parametrize", str(first), "-o", str(out)]) == 0
    assert main(["parametrize", str(second), "-o", str(out)]) == 0  # was: overwrote all three
    assert len(list(out.glob("*.xml"))) == 6
    # the same run again refuses to replace its files and says so
    assert main(["parametrize", str(first), "-o", str(out)]) == 1
    assert len(list(out.glob("*.xml"))) == 6
    assert not list(out.glob(".*"))  # no temporary files left


def test_read_only_location_ends_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() == 0:  # root writes anywhere on a normal file system: use a pseudo one
        target = Path("/proc/espaloma_like_test/out.xml")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        target = locked / "out.xml"
    message = _one_line_error(capsys, "parametrize", "CCO", "-o", str(target))
    assert str(target.parent) in message


def test_a_file_too_large_for_the_disk_leaves_no_partial_file(tmp_path: Path) -> None:
    import resource
    import signal

    def small_files() -> None:  # like a full disk: writes past 4 kB fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    out = tmp_path / "x.xml"
    done = subprocess.run([sys.executable, "-m", "espaloma_like.cli.main", "parametrize", "CCO",
                           "-o", str(out)], capture_output=True, text=True, timeout=600,
                          preexec_fn=small_files)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert "File too large" in done.stderr and str(out) in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_disk_full_and_permission_messages_are_one_line() -> None:
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/out.xml")
    assert error_message(full) == "no space left on device: /data/out.xml"
    denied = PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/data")
    assert error_message(denied) == "Permission denied: /data"


def test_train_config_errors_end_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("schema_version: 1\noptimizer:\n  learnig_rate: 1.0e-3\n")
    message = _one_line_error(capsys, "train", str(typo))
    assert "optimizer.learnig_rate" in message and "unknown field" in message
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    assert "YAML" in _one_line_error(capsys, "train", str(broken))
    assert "No such file" in _one_line_error(capsys, "train", str(tmp_path / "missing.yaml"))
    missing_data = tmp_path / "missing_data.yaml"
    missing_data.write_text(f"schema_version: 1\ndata:\n  train_files: [{tmp_path / 'none.h5'}]\n"
                            f"output_dir: {tmp_path / 'run'}\ntensorboard: false\n")
    assert "none.h5" in _one_line_error(capsys, "train", str(missing_data))


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    done = _cli("--debug", "parametrize", "C[O]", "-o", str(tmp_path / "x.xml"))
    assert done.returncode != 0 and "Traceback" in done.stderr and "RadicalError" in done.stderr
    done = _cli("parametrize", "C[O]", "-o", str(tmp_path / "x.xml"), "--debug")
    assert "Traceback" in done.stderr
