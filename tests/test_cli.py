"""The command line: one molecule, many molecules with per-molecule errors, clear messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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


def test_many_molecules_keep_going_past_errors(tmp_path: Path) -> None:
    smiles = tmp_path / "in.smi"
    smiles.write_text("CCO ethanol\nC1CC( broken\nC[Si](C)(C)C silane\nCC(=O)[O-] acetate\n")
    out = tmp_path / "out"
    done = _cli("parametrize", str(smiles), "-o", str(out))
    assert done.returncode == 1
    assert sorted(p.name for p in out.iterdir()) == ["00000_ethanol.xml", "00003_acetate.xml"]
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
