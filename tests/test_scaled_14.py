"""Learned 1-4 scales per pair, an optional kind added through the registry alone: the
correction's energy, an independent per-pair-scaled nonbonded reference, torch vs the OpenMM
System (the only export route), and the exports that refuse it."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from conftest import openmm_energy_forces, openmm_group_energies
from termkind_helpers import assert_batched_equals_alone, fine_tuning_start, readout_gradient

from espaloma_like.api import parametrize
from espaloma_like.export.openmm_system import FORCE_GROUPS
from espaloma_like.mm import energy_and_forces, energy_terms
from espaloma_like.molecule import generate_conformers
from espaloma_like.nn.assemble import COULOMB_14_SCALE, LJ_14_SCALE
from espaloma_like.nn.model import ModelConfig, ParameterModel
from espaloma_like.parameters import ParameterSet
from espaloma_like.termkinds import TERM_KINDS
from espaloma_like.termkinds.scaled_14 import SCALED_14, Scaled14Parameters
from espaloma_like.units import ONE_4PI_EPS0

PLAIN = ModelConfig(hidden=32, n_layers=2, readout_hidden=32)
SCALED = PLAIN.model_copy(update={"extra_terms": ("scaled_14",)})
#: charged groups (phosphonate, zwitterion, ammonium), neutral ones, and N2 (no 1-4 pair)
MOLECULES = ["COP(=O)([O-])c1ccc(Cl)cc1", "C[NH2+]CC(=O)[O-]", "CC(=O)Nc1ccc(O)cc1", "C[NH3+]",
             "N#N"]


@pytest.fixture(scope="module")
def plain() -> ParameterModel:
    torch.manual_seed(2)
    return ParameterModel(PLAIN).double().eval()


@pytest.fixture(scope="module")
def scaled(plain: ParameterModel) -> ParameterModel:
    model = ParameterModel(SCALED).double().eval()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("scaled_14_readout.") for k in missing)
    with torch.no_grad():  # scales well away from Sage's, different per pair
        model.scaled_14_readout.head.weight.normal_(0.0, 0.5)
        model.scaled_14_readout.head.bias.normal_(0.0, 0.5)
    return model


def _conformers(molecule, n: int = 2) -> np.ndarray:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    graph = molecule.molecule
    conformers = generate_conformers(graph, n, seed=0)  # may be fewer than n: pruned
    return conformers[np.arange(n) % len(conformers)] + rng.normal(0, 0.01, (n, graph.n_atoms, 3))


def _without_kind(p: ParameterSet) -> ParameterSet:
    return dataclasses.replace(p, extra_terms={k: v for k, v in p.extra_terms.items() if k != "scaled_14"})


def _numpy_nonbonded(p: ParameterSet, xyz: np.ndarray, coulomb_14: np.ndarray,
                     lj_14: np.ndarray) -> np.ndarray:
    """Independent reference: LJ + Coulomb (C,) of every pair, the 1-4 pairs scaled per pair."""
    nb = p.nonbonded
    q, sigma, eps = (nb.charges.detach().numpy(), nb.sigma.detach().numpy(),
                     nb.epsilon.detach().numpy())

    def pair_energy(pairs: np.ndarray, s_q: np.ndarray, s_lj: np.ndarray) -> np.ndarray:
        i, j = pairs[:, 0], pairs[:, 1]
        r = np.linalg.norm(xyz[:, j] - xyz[:, i], axis=-1)
        sig = 0.5 * (sigma[i] + sigma[j])
        ep = np.sqrt(eps[i] * eps[j])
        lj = 4.0 * ep * ((sig / r) ** 12 - (sig / r) ** 6)
        return (s_q * ONE_4PI_EPS0 * q[i] * q[j] / r + s_lj * lj).sum(-1)

    full = nb.pairs_full.numpy()
    return (pair_energy(full, np.ones(len(full)), np.ones(len(full)))
            + pair_energy(nb.pairs_14.numpy(), coulomb_14, lj_14))


def _rescaled_exceptions(system, p: ParameterSet):  # type: ignore[no-untyped-def]
    """The System without the kind's force, its 1-4 exceptions carrying each pair's own scales
    (an independent route to the same energy)."""
    import openmm

    block = p.extra_terms["scaled_14"]
    own = {(int(i), int(j)): (float(a), float(b)) for (i, j), a, b in zip(
        block.indices.tolist(), block.coulomb_scale.tolist(), block.lj_scale.tolist(), strict=True)}
    q = p.nonbonded.charges.numpy()
    eps = p.nonbonded.epsilon.numpy()
    out = copy.deepcopy(system)
    for index in reversed(range(out.getNumForces())):
        if isinstance(out.getForce(index), openmm.CustomBondForce):
            out.removeForce(index)
    nonbonded = next(f for f in out.getForces() if isinstance(f, openmm.NonbondedForce))
    changed = 0
    for n in range(nonbonded.getNumExceptions()):
        i, j, _qq, sigma, _eps = nonbonded.getExceptionParameters(n)
        key = (min(i, j), max(i, j))
        if key in own:
            s_q, s_lj = own[key]
            nonbonded.setExceptionParameters(n, i, j, s_q * q[i] * q[j], sigma,
                                             s_lj * np.sqrt(eps[i] * eps[j]))
            changed += 1
    assert changed == len(own)
    return out


def test_registered_last_as_an_optional_proper_kind_on_the_1_4_pairs() -> None:
    names = list(TERM_KINDS)
    assert names.index("scaled_14") > names.index("morse")  # appended: fresh models unchanged
    assert SCALED_14.optional and SCALED_14.terms == "pairs_14" and SCALED_14.arity == 2
    assert SCALED_14.force_group == FORCE_GROUPS["proper"] == 2
    assert SCALED_14.system_only
    assert ModelConfig().extra_terms == () and not SCALED_14.enabled(ModelConfig())
    assert SCALED_14.enabled(SCALED)


def test_a_fresh_readout_gives_exactly_sages_scales_and_no_correction(plain: ParameterModel) -> None:
    for dtype in (torch.float64, torch.float32):  # exact whatever precision the network runs in
        torch.manual_seed(0)
        fresh = ParameterModel(SCALED).to(dtype).eval()
        molecule = parametrize(MOLECULES[0], fresh)
        p = molecule.parameters
        block = p.extra_terms["scaled_14"]
        assert isinstance(block, Scaled14Parameters) and len(block.indices) > 0
        assert bool((block.coulomb_scale == COULOMB_14_SCALE).all())
        assert bool((block.lj_scale == LJ_14_SCALE).all())
        assert p.nonbonded.coulomb_14_scale == COULOMB_14_SCALE
        assert p.nonbonded.lj_14_scale == LJ_14_SCALE
        xyz = torch.tensor(generate_conformers(molecule.molecule, 2, seed=0))
        assert float(SCALED_14.energy(block, p, xyz).abs().max()) == 0.0
        assert SCALED_14.openmm_forces(block, p) == []  # nothing to export
    # grafted onto a trained model: the energy is the plain model's, to the bit
    model = ParameterModel(SCALED).double().eval()
    model.load_state_dict(plain.state_dict(), strict=False)
    with_kind = parametrize(MOLECULES[1], model)
    without = parametrize(MOLECULES[1], plain)
    xyz = torch.tensor(generate_conformers(without.molecule, 2, seed=0))
    assert torch.equal(energy_terms(with_kind.parameters, xyz).total,
                       energy_terms(without.parameters, xyz).total)


def test_scales_in_the_open_interval_and_symmetric(scaled: ParameterModel) -> None:
    p = parametrize(MOLECULES[1], scaled).parameters
    block = p.extra_terms["scaled_14"]
    assert p.provenance["extra_terms"] == "scaled_14"
    assert torch.equal(block.indices, p.nonbonded.pairs_14)
    assert bool((block.indices[:, 0] < block.indices[:, 1]).all())
    for s, default in ((block.coulomb_scale, COULOMB_14_SCALE), (block.lj_scale, LJ_14_SCALE)):
        assert bool(((s > 0) & (s < 1)).all())
        assert float((s - default).abs().max()) > 0.02 and float(s.std()) > 0.01
    # equivalent pairs (the methyl and methylene hydrogens') share their scales exactly
    assert len(torch.unique(block.coulomb_scale)) < len(block.coulomb_scale)


@pytest.mark.parametrize("smiles", MOLECULES[:3])
def test_energy_is_the_analytic_correction(scaled: ParameterModel, smiles: str) -> None:
    molecule = parametrize(smiles, scaled)
    p = molecule.parameters
    block = p.extra_terms["scaled_14"]
    xyz = torch.tensor(_conformers(molecule, 3))
    nb = p.nonbonded
    i, j = block.indices[:, 0], block.indices[:, 1]
    r = (xyz[:, j] - xyz[:, i]).norm(dim=-1)
    sig = 0.5 * (nb.sigma[i] + nb.sigma[j])
    eps = torch.sqrt(nb.epsilon[i] * nb.epsilon[j])
    expected = ((block.coulomb_scale - COULOMB_14_SCALE) * ONE_4PI_EPS0 * nb.charges[i] * nb.charges[j] / r
                + (block.lj_scale - LJ_14_SCALE) * 4 * eps * ((sig / r) ** 12 - (sig / r) ** 6))
    assert torch.allclose(SCALED_14.energy(block, p, xyz), expected, rtol=1e-12, atol=1e-12)
    # reported in the proper component, on top of the torsions
    torsions = energy_terms(_without_kind(p), xyz)
    terms = energy_terms(p, xyz)
    assert torch.allclose(terms.proper, torsions.proper + expected.sum(-1), rtol=1e-12, atol=1e-9)
    for component in ("bond", "angle", "improper", "lj", "coulomb"):
        assert torch.equal(getattr(terms, component), getattr(torsions, component))


@pytest.mark.parametrize("smiles", MOLECULES[:3])
def test_total_energy_is_the_nonbonded_energy_with_per_pair_14_scales(scaled: ParameterModel,
                                                                      smiles: str) -> None:
    molecule = parametrize(smiles, scaled)
    p = molecule.parameters
    block = p.extra_terms["scaled_14"]
    xyz = _conformers(molecule, 3)
    valence = energy_terms(_without_kind(p), torch.tensor(xyz))
    reference = (valence.bond + valence.angle + valence.proper + valence.improper).numpy() + \
        _numpy_nonbonded(p, xyz, block.coulomb_scale.numpy(), block.lj_scale.numpy())
    total = energy_terms(p, torch.tensor(xyz)).total.numpy()
    assert np.allclose(total, reference, rtol=1e-10, atol=1e-8)
    # and the correction matters: Sage's global scales give another energy
    n14 = len(block.indices)
    sage = (valence.bond + valence.angle + valence.proper + valence.improper).numpy() + \
        _numpy_nonbonded(p, xyz, np.full(n14, COULOMB_14_SCALE), np.full(n14, LJ_14_SCALE))
    assert np.abs(total - sage).min() > 0.1


@pytest.mark.parametrize("smiles", MOLECULES)
def test_matches_the_openmm_system_per_group_and_in_forces(scaled: ParameterModel, smiles: str) -> None:
    import openmm

    molecule = parametrize(smiles, scaled)
    p = molecule.parameters
    system = molecule.to_openmm_system()
    custom = [f for f in system.getForces() if isinstance(f, openmm.CustomBondForce)]
    n14 = len(p.nonbonded.pairs_14)
    assert len(custom) == (1 if n14 else 0)
    if custom:
        assert custom[0].getNumBonds() == n14 and custom[0].getForceGroup() == FORCE_GROUPS["proper"]
    xyz = _conformers(molecule)
    terms = energy_terms(p, torch.tensor(xyz))
    energies, forces = energy_and_forces(p, torch.tensor(xyz))
    for c in range(len(xyz)):
        groups = openmm_group_energies(system, xyz[c])
        for component in ("bond", "angle", "proper", "improper"):
            assert float(getattr(terms, component)[c]) == pytest.approx(
                groups.get(FORCE_GROUPS[component], 0.0), abs=1e-3), component
        assert float(terms.lj[c] + terms.coulomb[c]) == pytest.approx(
            groups[FORCE_GROUPS["nonbonded"]], abs=1e-3)
        e_openmm, f_openmm = openmm_energy_forces(system, xyz[c])
        assert float(energies[c]) == pytest.approx(e_openmm, abs=1e-3)
        assert np.linalg.norm(forces[c].numpy() - f_openmm) < 1e-5 * np.linalg.norm(f_openmm)
        # the independent route: the same System with the exceptions scaled per pair
        if custom:
            e_exceptions, _ = openmm_energy_forces(_rescaled_exceptions(system, p), xyz[c])
            assert e_exceptions == pytest.approx(e_openmm, abs=1e-6)


@pytest.mark.parametrize("method", ["CutoffNonPeriodic", "CutoffPeriodic", "PME"])
def test_follows_the_1_4_exceptions_under_cutoffs_and_pme(scaled: ParameterModel, method: str) -> None:
    """Exceptions are plain Coulomb and LJ without cutoff, reaction field or minimum image
    under every method: so is the correction, and its force does not use periodic boundary
    conditions (an atom moved by a box vector changes both alike)."""
    import openmm

    molecule = parametrize(MOLECULES[0], scaled)
    box = np.diag([3.0, 3.0, 3.0])
    system = molecule.to_openmm_system(nonbonded_method=method, nonbonded_cutoff=1.0,
                                       box_vectors=box if method != "CutoffNonPeriodic" else None)
    (custom,) = [f for f in system.getForces() if isinstance(f, openmm.CustomBondForce)]
    (nonbonded,) = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]
    assert custom.usesPeriodicBoundaryConditions() is False
    assert nonbonded.getExceptionsUsePeriodicBoundaryConditions() is False
    reference = _rescaled_exceptions(system, molecule.parameters)
    xyz = _conformers(molecule, 1)[0] + 1.5
    shifted = xyz.copy()
    shifted[0] += box[0]  # one atom wrapped on its own
    for positions in (xyz, shifted):
        e, f = openmm_energy_forces(system, positions)
        e_ref, f_ref = openmm_energy_forces(reference, positions)
        assert e == pytest.approx(e_ref, rel=1e-10, abs=1e-6)
        assert np.abs(f - f_ref).max() < 1e-6 * max(1.0, float(np.abs(f_ref).max()))


def test_forcefield_xml_wraps_it_and_the_system_route_works(scaled: ParameterModel) -> None:
    import xml.etree.ElementTree as ET

    molecule = parametrize(MOLECULES[0], scaled)
    assert 'kinds="scaled_14"' in molecule.to_forcefield_xml()  # wrapped, not plain
    block = molecule.parameters.extra_terms["scaled_14"]
    with pytest.raises(NotImplementedError, match="NonbondedForce has global 1-4 scales only"):
        SCALED_14.write_ffxml(ET.Element("ForceField"), ["c"] * 20, block, molecule.parameters)
    assert "CustomBondForce" in molecule.to_system_xml()


def test_parmed_exports_refuse_it(scaled: ParameterModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from espaloma_like.export.parmed_system import ExportError

    molecule = parametrize("CCO", scaled)
    with pytest.raises(ExportError, match=r"scaled_14.*model=.portable."):
        molecule.to_gromacs(tmp_path / "m.top", tmp_path / "m.gro")
    with pytest.raises(ExportError, match=r"scaled_14.*model=.portable."):
        molecule.to_amber(tmp_path / "m.prmtop", tmp_path / "m.inpcrd")
    assert not any(tmp_path.iterdir())


def test_batched_equals_one_by_one(scaled: ParameterModel) -> None:
    many = assert_batched_equals_alone(scaled, "scaled_14", MOLECULES,
                                       {"coulomb_scale": (1e-6, 1e-8), "lj_scale": (1e-6, 1e-8)})
    assert len(many[-1].parameters.extra_terms["scaled_14"].indices) == 0  # N#N


def test_gradients_reach_the_charges_and_the_prior_is_the_squared_scale_deviation(
        scaled: ParameterModel) -> None:
    p = parametrize(MOLECULES[1], scaled).parameters
    block = p.extra_terms["scaled_14"]
    charges = p.nonbonded.charges.clone().requires_grad_(True)
    q = dataclasses.replace(p, nonbonded=dataclasses.replace(p.nonbonded, charges=charges))
    xyz = torch.tensor(generate_conformers(parametrize(MOLECULES[1], scaled).molecule, 1, seed=0))
    (grad,) = torch.autograd.grad(SCALED_14.energy(block, q, xyz).sum(), charges)
    assert float(grad.abs().sum()) > 0.0
    assert float(SCALED_14.prior_deviation(block, block, PLAIN.heads)) == 0.0
    shifted = dataclasses.replace(block, coulomb_scale=block.coulomb_scale + 0.1,
                                  lj_scale=block.lj_scale - 0.2)
    assert float(SCALED_14.prior_deviation(shifted, block, PLAIN.heads)) == pytest.approx(0.05)


def test_loss_gradients_reach_the_scaled_14_readout(scaled: ParameterModel) -> None:
    grad = readout_gradient(scaled, "scaled_14_readout", "C[NH2+]CC(=O)[O-]")
    assert grad is not None and float(grad.abs().sum()) > 0.0


def test_fine_tuning_adds_a_fresh_scaled_14_readout(tmp_path, plain: ParameterModel) -> None:  # type: ignore[no-untyped-def]
    plain, model = fine_tuning_start(plain, "scaled_14", tmp_path)
    assert "scaled_14" in model.readouts()
    assert set(model.state_dict()) - set(plain.state_dict()) == {
        "scaled_14_readout." + k for k in model.scaled_14_readout.state_dict()}
    block = parametrize("CCO", model).parameters.extra_terms["scaled_14"]
    assert bool((block.coulomb_scale == COULOMB_14_SCALE).all())
    assert bool((block.lj_scale == LJ_14_SCALE).all())
