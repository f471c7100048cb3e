"""The torch MM energy equals OpenMM's term by term (Reference platform, float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DIVERSE_SMILES, openmm_energy_forces, openmm_group_energies, symmetric_test_charges

from espaloma_like.baselines.sage_labels import sage_parameters
from espaloma_like.export.openmm_system import FORCE_GROUPS, to_openmm_system
from espaloma_like.mm import energy_and_forces, energy_terms
from espaloma_like.molecule import from_smiles, generate_conformers

N_CONFORMERS = 3


def _conformations(graph, seed: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    xyz = generate_conformers(graph, N_CONFORMERS, seed=seed)
    # Strain the geometries so that every term is away from its minimum.
    rng = np.random.default_rng(seed)
    return xyz + rng.normal(0.0, 0.01, xyz.shape)


@pytest.fixture(scope="module")
def sage_cases():  # type: ignore[no-untyped-def]
    cases = []
    for n, smiles in enumerate(DIVERSE_SMILES):
        graph = from_smiles(smiles)
        parameters = sage_parameters(graph, symmetric_test_charges(graph, seed=n))
        cases.append((smiles, graph, parameters, _conformations(graph, seed=n)))
    return cases


def test_at_least_25_diverse_molecules() -> None:
    assert len(DIVERSE_SMILES) >= 25
    graphs = [from_smiles(s) for s in DIVERSE_SMILES]
    elements = set(np.concatenate([g.atomic_numbers for g in graphs]).tolist())
    assert elements == {1, 6, 7, 8, 9, 15, 16, 17, 35, 53}
    assert any(g.total_charge < 0 for g in graphs) and any(g.total_charge > 0 for g in graphs)
    assert any((g.formal_charges != 0).sum() >= 2 and g.total_charge == 0 for g in graphs)


def test_per_term_energies_match_openmm(sage_cases) -> None:  # type: ignore[no-untyped-def]
    failures = []
    for smiles, _graph, parameters, xyz in sage_cases:
        terms = energy_terms(parameters, torch.tensor(xyz, dtype=torch.float64))
        mine = {
            "bond": terms.bond, "angle": terms.angle, "proper": terms.proper,
            "improper": terms.improper, "nonbonded": terms.lj + terms.coulomb,
        }
        system = to_openmm_system(parameters)
        for c in range(xyz.shape[0]):
            reference = openmm_group_energies(system, xyz[c])
            rows = []
            bad = False
            for name, group in FORCE_GROUPS.items():
                ours = float(mine[name][c])
                theirs = reference[group]
                rows.append(f"  {name:10s} torch {ours:16.6f}  openmm {theirs:16.6f}  "
                            f"diff {ours - theirs: .2e}")
                bad |= abs(ours - theirs) > 1e-3
            if bad:
                failures.append(f"{smiles} conformer {c}:\n" + "\n".join(rows))
    assert not failures, "per-term energy mismatch (kJ/mol):\n" + "\n".join(failures)


def test_forces_match_openmm(sage_cases) -> None:  # type: ignore[no-untyped-def]
    failures = []
    for smiles, _graph, parameters, xyz in sage_cases:
        system = to_openmm_system(parameters)
        energies, forces = energy_and_forces(parameters, torch.tensor(xyz, dtype=torch.float64))
        for c in range(xyz.shape[0]):
            e_ref, f_ref = openmm_energy_forces(system, xyz[c])
            f = forces[c].numpy()
            relative = np.linalg.norm(f - f_ref) / np.linalg.norm(f_ref)
            if relative > 1e-5 or abs(float(energies[c]) - e_ref) > 1e-3:
                failures.append(f"{smiles}[{c}]: relative force error {relative:.2e}, "
                                f"energy {float(energies[c]):.6f} vs {e_ref:.6f}")
    assert not failures, "\n".join(failures)


def test_float32_close_to_float64(sage_cases) -> None:  # type: ignore[no-untyped-def]
    _smiles, _graph, parameters, xyz = sage_cases[21]  # paracetamol
    e64 = energy_terms(parameters, torch.tensor(xyz)).total
    e32 = energy_terms(parameters.to(dtype=torch.float32), torch.tensor(xyz, dtype=torch.float32))
    assert e32.total.dtype == torch.float32
    assert torch.allclose(e32.total.double(), e64, rtol=1e-4, atol=1e-2)


def test_deterministic_and_batched_over_conformations(sage_cases) -> None:  # type: ignore[no-untyped-def]
    _smiles, _graph, parameters, xyz = sage_cases[5]
    x = torch.tensor(xyz)
    first = energy_terms(parameters, x).total
    again = energy_terms(parameters, x).total
    assert torch.equal(first, again)
    one_by_one = torch.cat([energy_terms(parameters, x[c : c + 1]).total for c in range(len(x))])
    assert torch.allclose(first, one_by_one, rtol=0, atol=1e-10)


def test_linear_geometry_has_finite_gradients() -> None:
    graph = from_smiles("CC#N")
    parameters = sage_parameters(graph, symmetric_test_charges(graph))
    xyz = generate_conformers(graph, 1, seed=0)
    # Put C-C#N exactly on a line: torsions through it are degenerate.
    xyz[0, 1] = xyz[0, 0] + np.array([0.146, 0.0, 0.0])
    xyz[0, 2] = xyz[0, 1] + np.array([0.116, 0.0, 0.0])
    _, forces = energy_and_forces(parameters, torch.tensor(xyz))
    assert torch.isfinite(forces).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_energy_on_gpu_matches_cpu(sage_cases) -> None:  # type: ignore[no-untyped-def]
    _smiles, _graph, parameters, xyz = sage_cases[21]
    cpu = energy_terms(parameters, torch.tensor(xyz)).total
    gpu = energy_terms(parameters.to("cuda"), torch.tensor(xyz, device="cuda")).total
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-6)
