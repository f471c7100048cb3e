"""The public API: one input is one molecule, bad molecules reported per molecule, isotopes."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from espaloma_like.api import TemplateGenerator, load_model, parametrize, parametrize_many
from espaloma_like.exceptions import (
    MoleculeFileError,
    MoleculeInputError,
    UnparsableSmilesError,
    UnsupportedElementError,
)
from espaloma_like.parametrized import MoleculeFailure, ParametrizationResults


def test_a_single_string_is_one_molecule() -> None:
    results = parametrize_many("CCO")  # was: three molecules (methane, methane, water)
    assert len(results) == 1 and results[0].molecule.n_atoms == 9
    generator = TemplateGenerator("CCO")  # was: registered C, C and O
    assert [m.n_atoms for m in generator._inner.molecules] == [9]


def test_errors_skip_keeps_the_good_molecules() -> None:
    inputs = ["CCO", "C1CC(", "C[Si](C)(C)C", "CC(=O)[O-]"]
    with pytest.raises(UnparsableSmilesError):
        parametrize_many(inputs)  # "raise" stays the default
    results = parametrize_many(inputs, errors="skip")
    assert isinstance(results, ParametrizationResults)
    assert [r.molecule.n_atoms for r in results] == [9, 7]
    assert results.indices == [0, 3]
    assert [(f.index, f.name, type(f.error)) for f in results.failures] == [
        (1, "C1CC(", UnparsableSmilesError), (2, "C[Si](C)(C)C", UnsupportedElementError)]
    assert all(isinstance(f, MoleculeFailure) and str(f).startswith("molecule ")
               for f in results.failures)
    # the good ones are the same as one by one
    alone = parametrize("CC(=O)[O-]")
    assert np.allclose(results[1].charges, alone.charges, atol=1e-6)
    assert parametrize_many(["CCO"], errors="skip").failures == []
    with pytest.raises(ValueError, match="errors"):
        parametrize_many(["CCO"], errors="ignore")  # type: ignore[arg-type]


def test_a_multi_record_file_is_read_in_full_where_many_are_accepted(tmp_path: Path) -> None:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    path = tmp_path / "two.sdf"
    writer = Chem.SDWriter(str(path))
    for seed, smiles in enumerate(("CCO", "CC(=O)[O-]")):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=seed + 1)
        writer.write(mol)
    writer.close()
    assert [r.molecule.n_atoms for r in parametrize_many(path)] == [9, 7]
    assert [r.molecule.n_atoms for r in parametrize_many([str(path), "C"])] == [9, 7, 5]
    with pytest.raises(MoleculeFileError, match="2 molecules where one is expected"):
        parametrize(path)
    assert len(TemplateGenerator(path)._inner.molecules) == 2


def test_whitespace_inside_a_smiles_is_refused() -> None:
    with pytest.raises(MoleculeInputError, match="whitespace"):
        parametrize("CCO\nCCC")  # was: ethanol


def test_isotope_masses_reach_the_system_and_the_ffxml() -> None:
    import openmm
    import openmm.app as app

    result = parametrize("[2H]OC([2H])([2H])[13CH3]")
    masses = result.molecule.masses
    assert masses.tolist()[:6] == pytest.approx(
        [2.014101778, 15.99943, 12.01078, 2.014101778, 2.014101778, 13.00335484])
    system = result.to_openmm_system()
    got = [system.getParticleMass(i).value_in_unit(openmm.unit.dalton)
           for i in range(system.getNumParticles())]
    assert got == pytest.approx(masses.tolist())
    restored = openmm.XmlSerializer.deserialize(result.to_system_xml())
    assert restored.getParticleMass(0).value_in_unit(openmm.unit.dalton) == pytest.approx(2.014101778)

    ffxml = result.to_forcefield_xml()
    type_masses = [float(t.get("mass")) for t in ET.fromstring(ffxml).iter("Type")]
    assert type_masses == pytest.approx(masses.tolist())
    forcefield = app.ForceField(io.StringIO(ffxml))
    ff_system = forcefield.createSystem(result.to_openmm_topology(), nonbondedMethod=app.NoCutoff)
    assert [ff_system.getParticleMass(i).value_in_unit(openmm.unit.dalton)
            for i in range(ff_system.getNumParticles())] == pytest.approx(masses.tolist())
    # the unlabelled molecule keeps OpenMM's standard masses
    plain = parametrize("OCC").to_openmm_system()
    assert plain.getParticleMass(0).value_in_unit(openmm.unit.dalton) == pytest.approx(15.99943)


def test_loaded_model_is_reused() -> None:
    assert load_model() is load_model()
