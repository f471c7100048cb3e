"""TemplateGenerator: every input form, logging, cache, model identity, Amber and CHARMM hosts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from openmm_system_helpers import energy

from espaloma_like.api import TemplateGenerator, parametrize
from espaloma_like.molecule import generate_conformers

PARACETAMOL = "CC(=O)Nc1ccc(O)cc1"
HOSTS = {
    "amber14": ["amber14-all.xml", "amber14/tip3p.xml"],
    "amber19": ["amber19-all.xml", "amber19/tip3p.xml"],
    "charmm36": ["charmm36.xml", "charmm36/water.xml"],
}


def _available(files: list[str]) -> bool:
    import openmm.app as app

    data = Path(app.__file__).parent / "data"
    return all((data / f).is_file() for f in files)


@pytest.fixture(scope="module")
def paracetamol():  # type: ignore[no-untyped-def]
    result = parametrize(PARACETAMOL)
    return result, generate_conformers(result.molecule, 1, seed=0)[0]


def test_model_name_and_version() -> None:
    generator = TemplateGenerator()
    assert generator.model_name == "default"
    assert generator.model_version.startswith("sha256:") and len(generator.model_version) == 23
    other = TemplateGenerator(model="sage-fit")
    assert other.model_name == "sage-fit" and other.model_version != generator.model_version


def test_every_input_form_is_matched(tmp_path: Path, paracetamol) -> None:  # type: ignore[no-untyped-def]
    from openff.toolkit import Molecule
    from rdkit import Chem

    result, _ = paracetamol
    sdf = tmp_path / "lig.sdf"
    Chem.MolToMolFile(result.molecule.rdkit_mol, str(sdf))
    inputs = [PARACETAMOL, result.molecule.mapped_smiles, Chem.MolFromSmiles(PARACETAMOL),
              Molecule.from_smiles(PARACETAMOL), sdf, str(sdf), result.molecule]
    residue = next(result.to_openmm_topology("LIG").residues())
    for item in inputs:
        generator = TemplateGenerator(item)
        assert generator._inner.match(residue) == 0, type(item)


@pytest.mark.parametrize("host", sorted(HOSTS))
@pytest.mark.parametrize("smiles", [PARACETAMOL, "CC(=O)[O-]"])
def test_ligand_energy_in_host_forcefield_equals_vacuum_system(host, smiles) -> None:  # type: ignore[no-untyped-def]
    """The ligand alone through ForceField(host + generator) has the energy of its own System:
    CHARMM's 1-4 scales and LennardJonesForce leave the ligand's terms as they are."""
    import openmm.app as app

    if not _available(HOSTS[host]):
        pytest.skip(f"this OpenMM has no {HOSTS[host]}")
    result = parametrize(smiles)
    xyz = generate_conformers(result.molecule, 1, seed=0)[0]
    generator = TemplateGenerator(smiles)
    forcefield = app.ForceField(*HOSTS[host])
    forcefield.registerTemplateGenerator(generator.generator)
    topology = result.to_openmm_topology("LIG")
    system = forcefield.createSystem(
        topology, residueTemplates=generator.residue_templates(forcefield, topology))
    reference = energy(result.to_openmm_system(), xyz)
    assert energy(system, xyz) == pytest.approx(reference, rel=1e-6, abs=1e-5)


def test_charmm_own_template_does_not_win_silently(paracetamol, caplog) -> None:  # type: ignore[no-untyped-def]
    import openmm
    import openmm.app as app
    from openmm import unit

    result, xyz = paracetamol
    forcefield = app.ForceField(*HOSTS["charmm36"])
    topology = result.to_openmm_topology("LIG")
    # CHARMM ships paracetamol (PACP): without residueTemplates the generator is never asked
    assert [t.name for t in forcefield.getMatchingTemplates(topology)] == ["PACP"]
    generator = TemplateGenerator(PARACETAMOL)
    forcefield.registerTemplateGenerator(generator.generator)
    with caplog.at_level(logging.INFO, logger="espaloma_like.export.template_generator"):
        templates = generator.residue_templates(forcefield, topology)
    assert list(templates.values()) == [result.molecule.smiles]
    assert "will use the model's template" in caplog.text
    system = forcefield.createSystem(topology, residueTemplates=templates)
    force = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    charges = [force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
               for i in range(force.getNumParticles())]
    assert np.allclose(charges, result.charges, atol=1e-10)
    assert energy(system, xyz) == pytest.approx(energy(result.to_openmm_system(), xyz), rel=1e-6)


def test_matched_and_declined_residues_are_logged(caplog) -> None:  # type: ignore[no-untyped-def]
    import openmm.app as app

    ethanol = parametrize("CCO")
    methanol = parametrize("CO")
    generator = TemplateGenerator("CCO")
    forcefield = app.ForceField()
    forcefield.registerTemplateGenerator(generator.generator)
    with caplog.at_level(logging.INFO, logger="espaloma_like.export.template_generator"):
        forcefield.createSystem(ethanol.to_openmm_topology("ETH"))
        with pytest.raises(ValueError, match="No template found"):
            forcefield.createSystem(methanol.to_openmm_topology("MOH"))
    assert "matched residue ETH" in caplog.text
    assert "declined residue MOH" in caplog.text


def test_template_cache_on_disk(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    import openmm.app as app

    cache = tmp_path / "templates.json"
    topology = parametrize("CCO").to_openmm_topology("ETH")

    def build(model: str | None = None) -> TemplateGenerator:
        generator = TemplateGenerator("CCO", model=model, cache=cache)
        forcefield = app.ForceField("amber14/tip3p.xml")
        forcefield.registerTemplateGenerator(generator.generator)
        forcefield.createSystem(topology)
        return generator

    first = build()
    payload = json.loads(cache.read_text())
    assert payload["format_version"] == 1 and len(payload["entries"]) == 1
    (entry,) = payload["entries"].values()
    assert entry["smiles"] == parametrize("CCO").molecule.mapped_smiles
    with caplog.at_level(logging.INFO, logger="espaloma_like.export.template_generator"):
        second = build()
    assert "read from cache" in caplog.text
    assert second._inner.forcefield_xml(0) == first._inner.forcefield_xml(0)
    build("sage-fit")  # another model: its own entry, never the default model's template
    assert len(json.loads(cache.read_text())["entries"]) == 2
    assert not list(tmp_path.glob(".*.tmp"))
