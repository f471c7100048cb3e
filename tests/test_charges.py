"""charges="keep": the partial charges the input carries, or a clear refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from espaloma_like.api import TemplateGenerator, parametrize, parametrize_many
from espaloma_like.exceptions import MoleculeInputError

DATA = Path(__file__).parent / "data"


def _system_charges(result) -> np.ndarray:  # type: ignore[no-untyped-def]
    import openmm
    from openmm import unit

    system = result.to_openmm_system()
    force = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    return np.array([force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
                     for i in range(force.getNumParticles())])


def _acetate_openff():  # type: ignore[no-untyped-def]
    from openff.toolkit import Molecule

    molecule = Molecule.from_smiles("CC(=O)[O-]")
    molecule.assign_partial_charges("gasteiger")
    return molecule


def test_openff_partial_charges_are_kept() -> None:
    molecule = _acetate_openff()
    given = molecule.partial_charges.m_as("elementary_charge")
    kept = parametrize(molecule, charges="keep")
    model = parametrize(molecule)
    assert np.allclose(kept.charges, given, atol=1e-12)
    assert np.allclose(_system_charges(kept), given, atol=1e-12)
    assert not np.allclose(model.charges, given, atol=1e-3)  # the default is still the model
    assert kept.parameters.provenance["charges"] == "user-supplied (kept)"
    assert "user-supplied" in kept.to_forcefield_xml()
    # everything but the charges is the model's
    assert np.allclose(kept.parameters.numpy()["bonds.k"], model.parameters.numpy()["bonds.k"])


def test_rdkit_gasteiger_charges_are_kept_and_implicit_hydrogens_refused() -> None:
    from rdkit import Chem
    from rdkit.Chem import rdPartialCharges

    mol = Chem.AddHs(Chem.MolFromSmiles("c1ccccc1O"))
    rdPartialCharges.ComputeGasteigerCharges(mol)
    given = [a.GetDoubleProp("_GasteigerCharge") for a in mol.GetAtoms()]
    assert np.allclose(parametrize(mol, charges="keep").charges, given)

    implicit = Chem.MolFromSmiles("c1ccccc1O")
    rdPartialCharges.ComputeGasteigerCharges(implicit)
    with pytest.raises(MoleculeInputError, match="have no partial charge"):
        parametrize(implicit, charges="keep")

    # PartialCharge wins over nothing; a sum off the formal charge is refused
    for atom in mol.GetAtoms():
        atom.SetDoubleProp("PartialCharge", 0.01)
    with pytest.raises(MoleculeInputError, match="not to its formal charge 0"):
        parametrize(mol, charges="keep")


def test_charges_from_sdf_and_mol2_files(tmp_path: Path) -> None:
    molecule = _acetate_openff()
    molecule.generate_conformers(n_conformers=1)
    sdf = tmp_path / "acetate.sdf"
    molecule.to_file(str(sdf), "sdf")  # writes atom.dprop.PartialCharge
    given = molecule.partial_charges.m_as("elementary_charge")
    assert np.allclose(parametrize(sdf, charges="keep").charges, given, atol=1e-12)

    no_charges = DATA / "ethanol.mol2"  # charge type NO_CHARGES, all zeros
    with pytest.raises(MoleculeInputError, match="NO_CHARGES"):
        parametrize(no_charges, charges="keep")
    text = no_charges.read_text().replace("NO_CHARGES", "USER_CHARGES")
    charges = [-0.18, 0.14, -0.6, 0.06, 0.06, 0.06, 0.04, 0.04, 0.38]
    lines = text.splitlines()
    start = lines.index("@<TRIPOS>ATOM") + 1
    for n, q in enumerate(charges):
        fields = lines[start + n].split()
        fields[-1] = f"{q:.4f}"
        lines[start + n] = " ".join(fields)
    charged = tmp_path / "ethanol.mol2"
    charged.write_text("\n".join(lines) + "\n")
    assert np.allclose(parametrize(charged, charges="keep").charges, charges)


def test_molecules_without_charges_are_refused_clearly() -> None:
    with pytest.raises(MoleculeInputError, match="carries no partial charges"):
        parametrize("CCO", charges="keep")
    with pytest.raises(ValueError, match="charges must be 'model' or 'keep'"):
        parametrize("CCO", charges="am1bcc")  # type: ignore[arg-type]
    results = parametrize_many(["CCO", _acetate_openff()], charges="keep", errors="skip")
    assert results.indices == [1] and len(results.failures) == 1
    assert "no partial charges" in str(results.failures[0].error)
    with pytest.raises(MoleculeInputError):
        TemplateGenerator("CCO", charges="keep")


def test_template_generator_keeps_charges_in_the_template() -> None:
    import openmm
    import openmm.app as app
    from openmm import unit

    molecule = _acetate_openff()
    given = molecule.partial_charges.m_as("elementary_charge")
    generator = TemplateGenerator(molecule, charges="keep")
    forcefield = app.ForceField("amber14/tip3p.xml")
    forcefield.registerTemplateGenerator(generator.generator)
    topology = parametrize(molecule).to_openmm_topology("ACT")
    system = forcefield.createSystem(topology)
    force = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    charges = [force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
               for i in range(force.getNumParticles())]
    assert np.allclose(charges, given, atol=1e-12)
