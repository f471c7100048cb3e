"""ForceField XML files of models with System-only term kinds (``<EspalomaLikeMolecule>``).

The file loads in ``openmm.app.ForceField`` after ``import espaloma_like`` (either import
order), gives the System of ``to_openmm_system()`` and of the template generator, also beside
amber14 and with several copies; without the package OpenMM stops with "No template found"
instead of leaving terms out; malformed elements are refused.
"""

from __future__ import annotations

import io
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import openmm_energy_forces, openmm_group_energies

from espaloma_like.api import TemplateGenerator, parametrize
from espaloma_like.export.system_only import WRAPPER_TAG, unwrap_template
from espaloma_like.molecule import generate_conformers

MODEL = "form-intramolecular-nonbonded"
ACETATE = "CC(=O)[O-]"


@pytest.fixture(scope="module")
def acetate():  # type: ignore[no-untyped-def]
    return parametrize(ACETATE, model=MODEL)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_file_loads_after_import_in_either_order_and_fails_loudly_without(
        acetate, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "acetate.xml"
    path.write_text(acetate.to_forcefield_xml())
    build = (f"ff = app.ForceField({str(path)!r}); "
             "import espaloma_like.export.ffxml as x; import espaloma_like as e; "
             f"m = e.parametrize({ACETATE!r}, model={MODEL!r}); "
             "s = ff.createSystem(x.to_openmm_topology(m.molecule)); "
             "print(sorted(type(f).__name__ for f in s.getForces()))")
    first = _run("import sys, espaloma_like; assert 'openmm' not in sys.modules; "
                 f"import openmm.app as app; {build}")
    second = _run(f"import openmm.app as app; import espaloma_like; {build}")
    for done in (first, second):
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("CustomBondForce") == 2, done.stdout
    bare = _run("import openmm.app as app; from openmm.app import Topology, Element; "
                f"ff = app.ForceField({str(path)!r}); t = Topology(); "
                "r = t.addResidue('MOL', t.addChain()); "
                "[t.addAtom(n, Element.getBySymbol(n[0]), r) for n in "
                "('C1','C2','O1','O2','H1','H2','H3')]; ff.createSystem(t)")
    assert bare.returncode != 0
    assert "No template found" in bare.stderr
    assert "No template found" in acetate.to_forcefield_xml().split("</Info>")[0]  # the note


def test_the_file_gives_the_system_of_every_other_route(acetate) -> None:  # type: ignore[no-untyped-def]
    import openmm.app as app

    xml = acetate.to_forcefield_xml()
    forcefield = app.ForceField(io.StringIO(xml))
    topology = acetate.to_openmm_topology()
    created = forcefield.createSystem(topology, removeCMMotion=False)
    generated = app.ForceField()
    generated.registerTemplateGenerator(TemplateGenerator(ACETATE, model=MODEL).generator)
    via_generator = generated.createSystem(topology, removeCMMotion=False)
    direct = acetate.to_openmm_system()
    xyz = generate_conformers(acetate.molecule, 1, seed=0)[0]
    e_ref, f_ref = openmm_energy_forces(direct, xyz)
    for system in (created, via_generator):
        e, f = openmm_energy_forces(system, xyz)
        assert e == pytest.approx(e_ref, abs=1e-6)
        assert np.abs(f - f_ref).max() < 1e-5
    # the corrections keep their force group (the nonbonded one) in the file's route too
    corrections = openmm_group_energies(_without_nonbonded(direct), xyz)[4]
    assert openmm_group_energies(created, xyz)[4] == pytest.approx(corrections, abs=1e-6)


def _without_nonbonded(system):  # type: ignore[no-untyped-def]
    import openmm

    copy = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
    for index in reversed(range(copy.getNumForces())):
        if isinstance(copy.getForce(index), openmm.NonbondedForce):
            copy.removeForce(index)
    return copy


def test_copies_beside_amber14_get_the_forces_once_each(acetate) -> None:  # type: ignore[no-untyped-def]
    import openmm.app as app

    from espaloma_like.export.ffxml import atom_names

    xml = acetate.to_forcefield_xml()
    # the same file twice and amber14: one template, one force generator, forces once
    forcefield = app.ForceField("amber14/protein.ff14SB.xml", io.StringIO(xml), io.StringIO(xml))
    n = acetate.molecule.n_atoms
    topology = app.Topology()
    chain = topology.addChain()
    names = atom_names(acetate.molecule.atomic_numbers)
    for reverse in (False, True):
        residue = topology.addResidue("ACT", chain)
        order = list(range(n))[::-1] if reverse else list(range(n))
        atoms = {i: topology.addAtom(names[i], app.Element.getByAtomicNumber(
            int(acetate.molecule.atomic_numbers[i])), residue) for i in order}
        for i, j in acetate.molecule.bonds.tolist():
            topology.addBond(atoms[i], atoms[j])
    system = forcefield.createSystem(topology, removeCMMotion=False)
    generators = [g for g in forcefield.getGenerators() if type(g).__name__ == "SystemOnlyForces"]
    assert len(generators) == 1
    single = acetate.to_openmm_system()
    custom = [f for f in system.getForces() if type(f).__name__ == "CustomBondForce"]
    single_custom = [f for f in single.getForces() if type(f).__name__ == "CustomBondForce"]
    assert len(custom) == len(single_custom) == 2
    assert sorted(f.getNumBonds() for f in custom) == sorted(2 * f.getNumBonds() for f in single_custom)


def _wrapped(acetate) -> ET.Element:  # type: ignore[no-untyped-def]
    element = ET.fromstring(acetate.to_forcefield_xml()).find(WRAPPER_TAG)
    assert element is not None
    return element


def test_malformed_elements_are_refused(acetate) -> None:  # type: ignore[no-untyped-def]
    assert unwrap_template(_wrapped(acetate)).system_only_kinds == (
        "intramolecular_lj", "intramolecular_coulomb")
    element = _wrapped(acetate)
    element.set("format", "2")
    with pytest.raises(ValueError, match="format '2' is not supported"):
        unwrap_template(element)
    element = _wrapped(acetate)
    element.find("SystemOnlyForce").set("kind", "bonds")  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="'bonds' is not one of its system-only kinds"):
        unwrap_template(element)
    element = _wrapped(acetate)
    entry = element.find("SystemOnlyForce")
    entry.remove(entry[0])  # type: ignore[union-attr]
    entry.append(ET.fromstring('<Force type="HarmonicBondForce" version="2" '  # type: ignore[union-attr]
                               'forceGroup="0" name="x" usesPeriodic="0"><Bonds/></Force>'))
    with pytest.raises(ValueError, match="not a custom bond force"):
        unwrap_template(element)
    element = _wrapped(acetate)
    element.remove(element.find("ForceField"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="holds no ForceField template"):
        unwrap_template(element)


def test_plain_models_still_write_plain_files() -> None:
    xml = parametrize("CCO", model="form-urey-bradley").to_forcefield_xml()
    assert WRAPPER_TAG not in xml
    assert ET.fromstring(xml).find("Residues/Residue") is not None


def test_another_models_template_of_the_same_name_is_refused(acetate) -> None:  # type: ignore[no-untyped-def]
    """Two models' files for one molecule share its residue name: loading both into one
    ForceField would let the first serve both, so the second is refused, loudly."""
    import openmm.app as app

    other = parametrize(ACETATE, model="form-intramolecular-lj").to_forcefield_xml()
    forcefield = app.ForceField(io.StringIO(acetate.to_forcefield_xml()))
    with pytest.raises(ValueError, match="different residue template named"):
        forcefield.loadFile(io.StringIO(other))
    renamed = parametrize(ACETATE, model="form-intramolecular-lj").to_forcefield_xml(
        residue_name="ACT-LJ")
    forcefield.loadFile(io.StringIO(renamed))  # a distinct name loads beside it
    assert "ACT-LJ" in forcefield._templates
