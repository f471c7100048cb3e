"""The functional-form options shipped as named models (``form-*``): each loads, has exactly its
terms, parametrizes, records them in the exported provenance, and exports by the routes its terms
allow (System, ForceField XML file, template generator) with the same energy."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import openmm_energy_forces

from espaloma_like.api import load_model, parametrize
from espaloma_like.molecule import generate_conformers
from espaloma_like.nn.checkpoint import available_models
from espaloma_like.termkinds import OPTIONAL_KINDS, get_kind

#: every shipped form and the optional term kinds it carries
FORMS = {
    "form-classical": set(),
    "form-urey-bradley": {"urey_bradley"},
    "form-morse": {"urey_bradley", "morse"},
    "form-class2": {"urey_bradley", "class2"},
    "form-scaled-14": {"urey_bradley", "scaled_14"},
    "form-torsion-coupling": {"urey_bradley", "torsion_coupling"},
    "form-learned-lj": {"urey_bradley", "learned_lj"},
    "form-intramolecular-lj": {"urey_bradley", "intramolecular_lj"},
    "form-intramolecular-nonbonded": {"urey_bradley", "intramolecular_lj", "intramolecular_coulomb"},
    "form-charged": {"urey_bradley"},
}
SHIPPED = sorted(name for name in available_models() if name.startswith("form-"))


def test_every_shipped_form_is_documented_here() -> None:
    import espaloma_like

    assert SHIPPED, "no form-* model shipped"
    assert set(SHIPPED) <= set(FORMS), sorted(set(SHIPPED) - set(FORMS))
    assert {"default", *SHIPPED} <= set(espaloma_like.available_models())


@pytest.mark.parametrize("name", SHIPPED)
def test_form_has_its_terms_and_exports_by_its_routes(name: str) -> None:
    from openmm import app

    model = load_model(name)
    kinds = {k.name for k in OPTIONAL_KINDS if k.enabled(model.config)}
    assert kinds == FORMS[name]
    molecule = parametrize("CC(=O)Nc1ccc(O)cc1", model=name)
    recorded = molecule.parameters.provenance.get("extra_terms", "")
    assert set(filter(None, recorded.split(","))) == FORMS[name] - {"urey_bradley"}
    system = molecule.to_openmm_system()
    assert system.getNumParticles() == molecule.molecule.n_atoms
    assert abs(float(np.sum(molecule.charges))) < 1e-6
    system_only = sorted(k for k in kinds if get_kind(k).system_only)
    xyz = generate_conformers(molecule.molecule, 1, seed=0)[0]
    expected = openmm_energy_forces(system, xyz)[0]
    if system_only:
        # the template generator carries the System-only forces into openmm.app.ForceField
        from espaloma_like.api import TemplateGenerator

        forcefield = app.ForceField()
        forcefield.registerTemplateGenerator(TemplateGenerator(molecule.molecule, model=name).generator)
        created = forcefield.createSystem(molecule.to_openmm_topology(), removeCMMotion=False)
        assert openmm_energy_forces(created, xyz)[0] == pytest.approx(expected, abs=1e-6)
        # and so does the ForceField XML file, inside its <EspalomaLikeMolecule> element
        assert "<EspalomaLikeMolecule" in molecule.to_forcefield_xml()
    forcefield = app.ForceField(io.StringIO(molecule.to_forcefield_xml()))
    created = forcefield.createSystem(molecule.to_openmm_topology(), removeCMMotion=False)
    assert openmm_energy_forces(created, xyz)[0] == pytest.approx(expected, abs=1e-6)
