"""The GNN parameter assigner: symmetry, exact charges, batching, checkpoints, OpenMM."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import openmm_group_energies

from espaloma_like.api import parametrize, parametrize_many
from espaloma_like.exceptions import CheckpointError
from espaloma_like.export.openmm_system import FORCE_GROUPS
from espaloma_like.mm import energy_terms
from espaloma_like.molecule import from_rdkit, from_smiles, generate_conformers
from espaloma_like.nn.batch import collate, prepare_molecule
from espaloma_like.nn.checkpoint import load_checkpoint, save_checkpoint
from espaloma_like.nn.model import ModelConfig, ParameterModel

PARACETAMOL = "CC(=O)Nc1ccc(O)cc1"


@pytest.fixture(scope="module")
def model() -> ParameterModel:
    torch.manual_seed(1)
    network = ParameterModel(ModelConfig(hidden=32, n_layers=3, readout_hidden=32))
    # random weights give tiny outputs; scale the heads so that tests see non-trivial values
    with torch.no_grad():
        for p in network.parameters():
            p.mul_(1.5)
    return network.double().eval()


def _batch(smiles: str, config: ModelConfig):  # type: ignore[no-untyped-def]
    prepared = prepare_molecule(from_smiles(smiles), config.atom_features, config.bond_features)
    return collate([prepared]).to(dtype=torch.float64)


def test_reversed_and_cyclically_permuted_terms_get_identical_parameters(model: ParameterModel) -> None:
    batch = _batch(PARACETAMOL, model.config)
    reference = model(batch)
    i = batch.impropers
    permuted = dataclasses.replace(
        batch, bonds=batch.bonds.flip(-1), angles=batch.angles.flip(-1),
        propers=batch.propers.flip(-1), impropers=i[:, [0, 2, 3, 1]],
    )
    again = model(permuted)
    for kind, field in (("bonds", "k"), ("bonds", "length"), ("angles", "k"), ("angles", "angle"),
                        ("propers", "k"), ("impropers", "k")):
        assert torch.equal(getattr(reference.blocks[kind], field), getattr(again.blocks[kind], field)), kind
    assert torch.equal(model(dataclasses.replace(batch, impropers=i[:, [0, 3, 1, 2]])).impropers.k,
                       reference.impropers.k)


def _term_dict(parameters, kind: str, labels: np.ndarray) -> dict:  # type: ignore[no-untyped-def]
    """Parameters keyed by the atoms' original identities (order-free for the symmetry)."""
    group = getattr(parameters, kind)
    values = {"bonds": ("k", "length"), "angles": ("k", "angle"),
              "propers": ("k",), "impropers": ("k",)}[kind]
    out = {}
    for n, row in enumerate(group.indices.tolist()):
        ids = [int(labels[a]) for a in row]
        if kind == "impropers":
            key = (ids[0], frozenset(ids[1:]))
        else:
            key = min(tuple(ids), tuple(ids[::-1]))
        out[key] = tuple(getattr(group, v)[n].numpy().tobytes() for v in values)
    return out


def test_same_molecule_in_two_atom_orders_gets_identical_parameters(model: ParameterModel) -> None:
    from rdkit import Chem

    first = from_smiles(PARACETAMOL)
    rng = np.random.default_rng(3)
    order = rng.permutation(first.n_atoms)
    second = from_rdkit(Chem.RenumberAtoms(first.rdkit_mol, order.tolist()))
    a = parametrize(first, model).parameters
    b = parametrize(second, model).parameters
    identity = np.arange(first.n_atoms)
    for kind in ("bonds", "angles", "propers", "impropers"):
        assert _term_dict(a, kind, identity) == _term_dict(b, kind, order), kind
    assert np.array_equal(a.nonbonded.charges.numpy()[order], b.nonbonded.charges.numpy())
    assert np.array_equal(a.nonbonded.sigma.numpy()[order], b.nonbonded.sigma.numpy())


def test_equivalent_atoms_get_identical_charges_and_parameters(model: ParameterModel) -> None:
    acetate = parametrize("CC(=O)[O-]", model)
    q = acetate.charges
    assert q[2] == q[3]  # carboxylate oxygens
    assert q[4] == q[5] == q[6]  # methyl hydrogens
    bonds = acetate.parameters.bonds
    rows = {tuple(r): n for n, r in enumerate(bonds.indices.tolist())}
    assert bonds.k[rows[(1, 2)]] == bonds.k[rows[(1, 3)]]
    assert bonds.length[rows[(0, 4)]] == bonds.length[rows[(0, 5)]] == bonds.length[rows[(0, 6)]]


@pytest.mark.parametrize(
    ("smiles", "charge"),
    [("CCO", 0), ("CC(=O)[O-]", -1), ("C[NH3+]", 1), ("[NH3+]CC(=O)[O-]", 0),
     ("OP(=O)([O-])[O-]", -2), ("NC(=[NH2+])N", 1)],
)
def test_net_charge_is_exact(model: ParameterModel, smiles: str, charge: int) -> None:
    q = parametrize(smiles, model).charges
    assert abs(q.sum() - charge) < 1e-12


def test_batched_equals_one_by_one(model: ParameterModel) -> None:
    smiles = [PARACETAMOL, "CC(=O)[O-]", "c1ccsc1", "[NH3+]CC(=O)[O-]", "CCOP(=O)(O)OCC", "Brc1ccccc1"]
    batched = parametrize_many(smiles, model)
    for s, b in zip(smiles, batched, strict=True):
        single = parametrize(s, model).parameters.numpy()
        for key, value in b.parameters.numpy().items():
            np.testing.assert_allclose(value, single[key], rtol=1e-6, atol=1e-6, err_msg=f"{s} {key}")


def test_constrained_heads_stay_physical(model: ParameterModel) -> None:
    p = parametrize("Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1", model).parameters
    assert (p.bonds.k > 0).all() and (p.angles.k > 0).all()
    assert ((p.bonds.length > 0.05) & (p.bonds.length < 0.30)).all()
    assert ((p.angles.angle > 0.9) & (p.angles.angle <= np.pi)).all()
    assert (p.impropers.k[:, [0, 2, 3, 4, 5]] == 0).all() and (p.impropers.k[:, 1] >= 0).all()


def test_model_parameters_match_openmm(model: ParameterModel) -> None:
    molecule = parametrize("COP(=O)([O-])c1ccc(Cl)cc1", model)
    system = molecule.to_openmm_system()
    xyz = generate_conformers(molecule.molecule, 2, seed=0) + 0.005
    terms = energy_terms(molecule.parameters, torch.tensor(xyz))
    for c in range(len(xyz)):
        reference = openmm_group_energies(system, xyz[c])
        ours = {"bond": terms.bond, "angle": terms.angle, "proper": terms.proper,
                "improper": terms.improper, "nonbonded": terms.lj + terms.coulomb}
        for name, group in FORCE_GROUPS.items():
            assert float(ours[name][c]) == pytest.approx(reference[group], abs=1e-3), name


def test_checkpoint_round_trip(model: ParameterModel, tmp_path: Path) -> None:
    path = save_checkpoint(model, tmp_path / "m.pt", metadata={"note": "test"})
    loaded, metadata = load_checkpoint(path)
    loaded = loaded.double()  # as load_model does for inference
    assert metadata["note"] == "test"
    a = parametrize(PARACETAMOL, model).parameters.numpy()
    b = parametrize(PARACETAMOL, loaded).parameters.numpy()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    # file paths work through the public API too
    assert parametrize("CCO", str(path)).charges.shape == (9,)


def test_unknown_format_version_is_refused(model: ParameterModel, tmp_path: Path) -> None:
    path = save_checkpoint(model, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="unknown model"):
        load_checkpoint("no-such-model")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.pt")


def test_shipped_default_model_loads_and_runs_stable_md() -> None:
    import openmm
    from openmm import unit

    import espaloma_like

    molecule = espaloma_like.parametrize(PARACETAMOL)  # default shipped model
    assert molecule.parameters.provenance["method"] == "espaloma_like"
    system = molecule.to_openmm_system()
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond,
                                                 0.5 * unit.femtoseconds)
    integrator.setRandomNumberSeed(1)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(generate_conformers(molecule.molecule, 1, seed=0)[0])
    openmm.LocalEnergyMinimizer.minimize(context)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    integrator.step(2000)  # 1 ps
    state = context.getState(getEnergy=True, getPositions=True)
    xyz = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    assert np.isfinite(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    bonds = molecule.molecule.bonds
    lengths = np.linalg.norm(xyz[bonds[:, 0]] - xyz[bonds[:, 1]], axis=1)
    assert lengths.max() < 0.25 and lengths.min() > 0.08


def test_mapped_smiles_ring_features_equal_plain_smiles(model: ParameterModel) -> None:
    """Renumbered molecules keep ring perception (RDKit drops it on RenumberAtoms)."""
    plain = from_smiles("c1ccsc1CN")
    mapped = from_smiles(plain.mapped_smiles)
    a = prepare_molecule(plain, model.config.atom_features, model.config.bond_features)
    b = prepare_molecule(mapped, model.config.atom_features, model.config.bond_features)
    assert np.array_equal(a.atom_features, b.atom_features)


def test_proper_threshold_gives_exact_zeros_and_only_those_terms_are_exported(
        model: ParameterModel) -> None:
    heads = model.config.heads.model_copy(update={"proper_k_threshold": 0.5})
    sparse = ParameterModel(model.config.model_copy(update={"heads": heads})).double().eval()
    sparse.load_state_dict(model.state_dict())
    dense_k = parametrize(PARACETAMOL, model).parameters.propers.k.detach().numpy()
    molecule = parametrize(PARACETAMOL, sparse)
    k = molecule.parameters.propers.k.detach().numpy()
    # shrinkage by the threshold, exact zeros below it
    np.testing.assert_allclose(k, np.sign(dense_k) * np.maximum(np.abs(dense_k) - 0.5, 0.0), atol=1e-12)
    assert 0 < np.count_nonzero(k) < k.size
    system = molecule.to_openmm_system()
    (propers,) = [f for f in system.getForces() if f.getForceGroup() == FORCE_GROUPS["proper"]]
    assert propers.getNumTorsions() == np.count_nonzero(k)
    xyz = generate_conformers(molecule.molecule, 1, seed=0)
    ours = float(energy_terms(molecule.parameters, torch.tensor(xyz)).proper[0])
    assert ours == pytest.approx(openmm_group_energies(system, xyz[0])[FORCE_GROUPS["proper"]], abs=1e-3)


def test_urey_bradley_model_matches_openmm_system_and_ffxml(model: ParameterModel) -> None:
    import io

    import openmm.app as app
    from conftest import openmm_energy_forces

    ub = ParameterModel(model.config.model_copy(update={"urey_bradley": True})).double().eval()
    missing, _ = ub.load_state_dict(model.state_dict(), strict=False)
    assert all(k.startswith("urey_bradley_readout.") for k in missing)
    with torch.no_grad():
        ub.urey_bradley_readout.head.bias.fill_(1.0)  # a strong coupling, to be seen
    molecule = parametrize("COP(=O)([O-])c1ccc(Cl)cc1", ub)
    a = molecule.parameters.angles
    assert a.urey_bradley_k is not None and a.urey_bradley_length is not None
    assert bool((a.urey_bradley_k > 1e3).all())
    # the springs rest at the equilibrium geometry of their two bonds and the angle
    b = {tuple(sorted(r)): float(x) for r, x in zip(molecule.parameters.bonds.indices.tolist(),
                                                    molecule.parameters.bonds.length, strict=True)}
    (i, j, m), theta = a.indices[0].tolist(), float(a.angle[0])
    r1, r2 = b[tuple(sorted((i, j)))], b[tuple(sorted((j, m)))]
    assert float(a.urey_bradley_length[0]) == pytest.approx(
        np.sqrt(r1**2 + r2**2 - 2 * r1 * r2 * np.cos(theta)), rel=1e-12)
    system = molecule.to_openmm_system()
    forcefield = app.ForceField(io.StringIO(molecule.to_forcefield_xml()))
    via_ffxml = forcefield.createSystem(molecule.to_openmm_topology(), nonbondedMethod=app.NoCutoff,
                                        constraints=None, removeCMMotion=False)
    xyz = generate_conformers(molecule.molecule, 2, seed=0) + 0.005
    terms = energy_terms(molecule.parameters, torch.tensor(xyz))
    without = energy_terms(dataclasses.replace(molecule.parameters, angles=dataclasses.replace(
        a, urey_bradley_k=None, urey_bradley_length=None)), torch.tensor(xyz))
    for c in range(len(xyz)):
        reference = openmm_group_energies(system, xyz[c])
        assert float(terms.angle[c]) == pytest.approx(reference[FORCE_GROUPS["angle"]], abs=1e-3)
        assert abs(float(terms.angle[c] - without.angle[c])) > 1.0  # the springs do something
        e_direct, f_direct = openmm_energy_forces(system, xyz[c])
        e_ffxml, f_ffxml = openmm_energy_forces(via_ffxml, xyz[c])
        assert e_ffxml == pytest.approx(e_direct, abs=1e-6)
        assert np.abs(f_direct - f_ffxml).max() < 1e-6


@pytest.mark.parametrize("smiles", ["N#N", "Cl", "[C-]#[O+]", "FF", "[OH-]", "[C-]#N"])
def test_molecule_with_a_bond_but_no_angle_parametrizes_alone(smiles: str) -> None:
    """Diatomics have no angle: the readouts and the Urey-Bradley lookup see empty terms."""
    from conftest import openmm_energy_forces

    molecule = parametrize(smiles)  # the shipped model (with Urey-Bradley springs)
    assert molecule.parameters.angles.indices.shape[0] == 0
    assert molecule.parameters.bonds.indices.shape[0] == 1
    assert np.isfinite(molecule.charges).all()
    assert molecule.charges.sum() == pytest.approx(molecule.molecule.total_charge, abs=1e-12)
    system = molecule.to_openmm_system()
    xyz = generate_conformers(molecule.molecule, 1, seed=0)
    xyz = np.concatenate([xyz, xyz * 1.07])  # one stretched copy: the bond term is not zero
    ours = energy_terms(molecule.parameters, torch.tensor(xyz)).total
    for c in range(len(xyz)):
        reference, _ = openmm_energy_forces(system, xyz[c])
        assert float(ours[c]) == pytest.approx(reference, abs=1e-3)
    assert float(ours[1]) != pytest.approx(float(ours[0]), abs=1e-3)
