"""QM labelling engines: xTB (tblite) and DFT (PySCF), run for real on tiny molecules."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest

from espaloma_like.data.engines import (
    PYSCF_PRESETS,
    EngineResult,
    PySCFEngine,
    XTBEngine,
    engine_from_name,
)
from espaloma_like.units import HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM, HARTREE_TO_KJ_PER_MOL

needs_tblite = pytest.mark.skipif(
    importlib.util.find_spec("tblite") is None, reason="tblite (the 'qm' extra) is not installed"
)
needs_pyscf = pytest.mark.skipif(
    importlib.util.find_spec("pyscf") is None, reason="pyscf (the 'qm' extra) is not installed"
)

#: Water, experimental-like geometry (angstrom -> nm): O on the z axis, H in the yz plane.
WATER_Z = np.array([8, 1, 1])
WATER_NM = 0.1 * np.array([
    [0.0, 0.0, 0.11730],
    [0.0, 0.75720, -0.46920],
    [0.0, -0.75720, -0.46920],
])

#: GFN2-xTB total energy of WATER_NM, hartree. Regression constant computed once with tblite 0.8.0
#: standalone: ``tblite.interface.Calculator("GFN2-xTB", [8, 1, 1], WATER_NM / 0.0529177210903)
#: .singlepoint().get("energy")`` (defaults: accuracy 1, 300 K) gave -5.070370764541004.
XTB_WATER_HARTREE = -5.070370764541004
#: The GFN2-xTB water energy quoted in the xtb documentation (at its own optimised geometry).
XTB_WATER_PUBLISHED_HARTREE = -5.0704

#: Methanol, slightly distorted from equilibrium so that every force component is non-zero, nm.
METHANOL_Z = np.array([6, 8, 1, 1, 1, 1])
METHANOL_NM = 0.1 * np.array([
    [-0.0466, 0.6650, 0.0000],
    [-0.0466, -0.7570, 0.0200],
    [-1.0820, 0.9990, 0.0300],
    [0.4620, 1.0500, 0.8920],
    [0.4400, 1.0300, -0.9100],
    [0.8640, -1.0600, 0.0100],
])


def central_differences(engine, z, xyz, components, h):  # type: ignore[no-untyped-def]
    """Forces -dE/dx (kJ/mol/nm) by central differences of engine energies, one per component."""
    displaced = []
    for atom, axis in components:
        for sign in (1.0, -1.0):
            x = xyz.copy()
            x[atom, axis] += sign * h
            displaced.append(x)
    result = engine.compute(z, np.stack(displaced))
    assert result.n_failed == 0, result.errors
    return -(result.energies[0::2] - result.energies[1::2]) / (2.0 * h)


# --------------------------------------------------------------------------------------------
# xTB (one OpenMP thread throughout: on a busy 2-core machine two made tblite 10x slower)
# --------------------------------------------------------------------------------------------


@needs_tblite
def test_xtb_water_energy_matches_regression_and_published_value() -> None:
    result = XTBEngine(n_threads=1).compute(WATER_Z, WATER_NM)
    assert result.errors == [None]
    energy_hartree = result.energies[0] / HARTREE_TO_KJ_PER_MOL
    assert energy_hartree == pytest.approx(XTB_WATER_HARTREE, abs=1e-6)
    assert energy_hartree == pytest.approx(XTB_WATER_PUBLISHED_HARTREE, abs=1e-3)
    # symmetric molecule: no force along x, H atoms mirror each other in y, net force zero
    forces = result.forces[0]
    assert forces.shape == (3, 3)
    np.testing.assert_allclose(forces[:, 0], 0.0, atol=1e-8)
    assert forces[1, 1] == pytest.approx(-forces[2, 1], rel=1e-8)
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-6)


@needs_tblite
def test_xtb_forces_match_central_differences() -> None:
    # tighter SCF than tblite's default: at accuracy 1 the analytic gradient is consistent with
    # the energy only to about 0.1 kJ/mol/nm, at 0.01 to about 0.002 kJ/mol/nm
    engine = XTBEngine(accuracy=0.01, n_threads=1)
    result = engine.compute(METHANOL_Z, METHANOL_NM)
    components = [(0, 0), (1, 2), (4, 0), (5, 1)]
    analytic = np.array([result.forces[0, atom, axis] for atom, axis in components])
    numeric = central_differences(engine, METHANOL_Z, METHANOL_NM, components, h=1e-5)
    assert np.all(np.abs(analytic) > 1.0)  # the check is not trivially satisfied by zeros
    np.testing.assert_allclose(analytic, numeric, atol=0.01)


@needs_tblite
def test_xtb_failures_are_recorded_not_raised() -> None:
    overlapping = WATER_NM.copy()
    overlapping[1] = overlapping[0]
    confs = np.stack([WATER_NM, overlapping, WATER_NM * 1.01])
    result = XTBEngine(n_threads=1).compute(WATER_Z, confs)
    assert result.errors[0] is None and result.errors[2] is None
    assert result.errors[1] is not None and "close" in result.errors[1].lower()
    assert np.isnan(result.energies[1]) and np.all(np.isnan(result.forces[1]))
    assert result.ok.tolist() == [True, False, True]
    assert result.n_failed == 1
    # the conformations after a failure are computed as if alone
    alone = XTBEngine(n_threads=1).compute(WATER_Z, WATER_NM * 1.01)
    assert result.energies[2] == pytest.approx(alone.energies[0], abs=1e-9)


@needs_tblite
def test_xtb_scf_non_convergence_is_recorded() -> None:
    result = XTBEngine(max_iterations=2, n_threads=1).compute(WATER_Z, WATER_NM)
    assert result.errors[0] is not None and "not converged" in result.errors[0]
    assert np.isnan(result.energies[0])


@needs_tblite
def test_xtb_open_shell_and_charge_checks() -> None:
    hydroxyl = WATER_NM[:2]
    result = XTBEngine(n_threads=1).compute([8, 1], hydroxyl, multiplicity=2)
    assert result.errors == [None]
    assert -5.0 < result.energies[0] / HARTREE_TO_KJ_PER_MOL < -4.0
    with pytest.raises(ValueError, match="multiplicity"):
        XTBEngine(n_threads=1).compute([8, 1], hydroxyl)  # 9 electrons cannot be a singlet
    with pytest.raises(ValueError, match="shape"):
        XTBEngine(n_threads=1).compute(WATER_Z, WATER_NM[:2])


@needs_tblite
def test_engine_result_to_record_keeps_successes_and_says_so() -> None:
    engine = XTBEngine(n_threads=1)
    overlapping = WATER_NM.copy()
    overlapping[2] = overlapping[0]
    confs = np.stack([WATER_NM, overlapping])
    result = engine.compute(WATER_Z, confs)
    record = result.to_record(
        engine, name="water", mapped_smiles="[O:1]([H:2])[H:3]", atomic_numbers=WATER_Z,
        conformations=confs,
    )
    assert record.n_conformations == 1
    np.testing.assert_array_equal(record.conformations[0], WATER_NM)
    assert record.energies[0] == result.energies[0]
    assert record.level_of_theory == "GFN2-xTB"
    assert record.metadata["n_failed"] == "1"
    assert "close" in record.metadata["first_error"].lower()
    assert record.metadata["program"] == "tblite"


@needs_tblite
def test_xtb_thread_setting_is_restored() -> None:
    import ctypes

    try:
        runtime = ctypes.CDLL("libgomp.so.1")
    except OSError:
        pytest.skip("no GNU OpenMP runtime")
    runtime.omp_set_num_threads(2)
    XTBEngine(n_threads=1).compute(WATER_Z, WATER_NM)
    assert runtime.omp_get_max_threads() == 2


def test_engine_result_rejects_inconsistent_lengths() -> None:
    with pytest.raises(ValueError, match="inconsistent"):
        EngineResult(energies=np.zeros(2), forces=np.zeros((2, 3, 3)), errors=[None])


def test_engine_from_name() -> None:
    for alias in ("xtb", "GFN2-xTB", "gfn2"):
        engine = engine_from_name(alias)
        assert isinstance(engine, XTBEngine) and engine.level_of_theory == "GFN2-xTB"
    labels = {
        "b3lyp-d3bj/def2-svp": "B3LYP-D3BJ/def2-SVP",
        "b3lyp-d3bj/dzvp": "B3LYP-D3BJ/DZVP",
        "wb97m-d3bj/def2-tzvppd": "wB97M-D3BJ/def2-TZVPPD",
    }
    assert set(labels) == set(PYSCF_PRESETS)
    for name, label in labels.items():
        engine = engine_from_name(name.upper())
        assert isinstance(engine, PySCFEngine)
        assert engine.level_of_theory == label
        assert engine.name == name
    assert engine_from_name("xtb", n_threads=1) == XTBEngine(n_threads=1)
    custom = engine_from_name("pbe0-d3bj/def2-tzvp", n_threads=1)
    assert isinstance(custom, PySCFEngine) and custom.n_threads == 1
    assert (custom.functional, custom.basis, custom.dispersion) == ("pbe0", "def2-tzvp", "d3bj")
    with pytest.raises(ValueError, match="unknown engine"):
        engine_from_name("mp2")
    with pytest.raises(ValueError, match="twice"):
        PySCFEngine(functional="wb97m-v", dispersion="d3bj")


# --------------------------------------------------------------------------------------------
# DFT
# --------------------------------------------------------------------------------------------

#: B3LYP-D3(BJ)/def2-SVP energy of WATER_NM with density fitting, PySCF 2.14 +
#: pyscf-dispersion 1.7 (grid level 3), hartree; computed once with this engine's settings.
B3LYP_D3BJ_SVP_WATER_HARTREE = -76.35872585807029
#: The same without the D3(BJ) term (``xc="b3lyp"``), hartree.
B3LYP_SVP_WATER_HARTREE = -76.3581519824133


@needs_pyscf
def test_pyscf_water_energy_includes_dispersion_and_forces_match_differences() -> None:
    pytest.importorskip("pyscf.dispersion", reason="pyscf-dispersion is not installed")
    from pyscf import gto
    from pyscf.dispersion import dftd3

    # one thread: on a busy 2-core machine two OpenMP threads are several times slower
    engine = dataclasses.replace(PySCFEngine.from_preset("b3lyp-d3bj/def2-svp"), n_threads=1)
    result = engine.compute(WATER_Z, WATER_NM)
    assert result.errors == [None]
    energy_hartree = result.energies[0] / HARTREE_TO_KJ_PER_MOL
    assert energy_hartree == pytest.approx(B3LYP_D3BJ_SVP_WATER_HARTREE, abs=1e-6)
    # the D3(BJ) term, computed on its own, accounts for the difference to plain B3LYP
    mol = gto.M(atom=list(zip(["O", "H", "H"], (WATER_NM * 10.0).tolist(), strict=True)),
                unit="Angstrom", verbose=0)
    d3 = float(dftd3.DFTD3Dispersion(mol, xc="b3lyp", version="d3bj").get_dispersion()["energy"])
    assert -1e-3 < d3 < -1e-4
    assert energy_hartree - d3 == pytest.approx(B3LYP_SVP_WATER_HARTREE, abs=1e-6)
    # one force component against central differences (two more single points)
    analytic = result.forces[0, 1, 1]
    numeric = central_differences(engine, WATER_Z, WATER_NM, [(1, 1)], h=1e-5)[0]
    assert abs(analytic) > 100.0
    assert analytic == pytest.approx(numeric, abs=0.2)  # kJ/mol/nm, about 0.1 %
    assert -analytic / HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM == pytest.approx(-0.00565, rel=1e-2)


@needs_pyscf
def test_pyscf_open_shell_and_failed_scf() -> None:
    engine = PySCFEngine(n_threads=1)
    hydrogen = engine.compute([1], np.zeros((1, 1, 3)), multiplicity=2)  # UKS
    assert hydrogen.errors == [None]
    assert hydrogen.energies[0] / HARTREE_TO_KJ_PER_MOL == pytest.approx(-0.5, abs=0.01)
    failed = PySCFEngine(max_cycle=1, n_threads=1).compute(WATER_Z, WATER_NM)
    assert failed.errors[0] is not None and "not converged" in failed.errors[0]
    assert np.isnan(failed.energies[0]) and np.all(np.isnan(failed.forces[0]))
    with pytest.raises(ValueError, match="basis"):
        PySCFEngine(basis="no-such-basis").compute(WATER_Z, WATER_NM)


# --------------------------------------------------------------------------------------------
# DFT on a GPU (gpu4pyscf)
# --------------------------------------------------------------------------------------------


def _gpu_usable() -> bool:
    """gpu4pyscf and CuPy import and see a CUDA device."""
    if importlib.util.find_spec("gpu4pyscf") is None or importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:
        return False


def test_engine_device_is_checked_when_the_engine_is_made() -> None:
    assert PySCFEngine().device == "cpu"
    gpu = engine_from_name("b3lyp-d3bj/dzvp", device="gpu")
    assert isinstance(gpu, PySCFEngine) and gpu.device == "gpu"
    assert gpu.provenance()["device"] == "gpu"
    assert PySCFEngine.from_preset("b3lyp-d3bj/dzvp", device="gpu") == gpu
    with pytest.raises(ValueError, match="device must be one of"):
        PySCFEngine(device="tpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device must be one of"):
        engine_from_name("b3lyp-d3bj/dzvp", device="cuda")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CPU only"):
        engine_from_name("gfn2-xtb", device="gpu")


@needs_pyscf
def test_gpu_engine_without_a_usable_gpu_fails_before_labelling() -> None:
    if _gpu_usable():
        pytest.skip("gpu4pyscf and a CUDA device are present: the GPU test below runs instead")
    engine = PySCFEngine.from_preset("b3lyp-d3bj/def2-svp", device="gpu")
    # a clear error for the whole call, not one 'failed conformation' per geometry
    with pytest.raises((ImportError, RuntimeError), match="device='gpu'"):
        engine.check_available()
    with pytest.raises((ImportError, RuntimeError), match="device='gpu'"):
        engine.compute(WATER_Z, WATER_NM)


@needs_pyscf
@pytest.mark.skipif(not _gpu_usable(), reason="needs gpu4pyscf, CuPy and a CUDA device")
def test_gpu_engine_matches_the_cpu_engine() -> None:
    settings = {"n_threads": 1}
    cpu = dataclasses.replace(PySCFEngine.from_preset("b3lyp-d3bj/def2-svp"), **settings)
    gpu = dataclasses.replace(cpu, device="gpu")
    on_cpu = cpu.compute(METHANOL_Z, METHANOL_NM)
    on_gpu = gpu.compute(METHANOL_Z, METHANOL_NM)
    assert on_cpu.errors == [None] and on_gpu.errors == [None]
    # same functional, dispersion, basis, density fitting and grid: agreement to SCF precision
    assert on_gpu.energies[0] == pytest.approx(on_cpu.energies[0], abs=1e-5 * HARTREE_TO_KJ_PER_MOL)
    np.testing.assert_allclose(on_gpu.forces, on_cpu.forces, atol=0.05)  # kJ/mol/nm
