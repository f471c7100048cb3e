"""QM labelling engines: energies and forces of conformations, behind one interface.

Every engine takes atomic numbers and conformations in nm and returns an :class:`EngineResult` in
kJ/mol and kJ/mol/nm. A conformation that fails (SCF not converged, atoms on top of each other,
any exception of the QM program) is recorded in ``EngineResult.errors`` with a NaN energy and NaN
forces: it is never dropped silently or set to zero. Invalid *arguments* (shapes, an impossible
spin state, an unknown basis set) raise at once, since they would fail every conformation.

Engines:

* :class:`XTBEngine`: GFN2-xTB through tblite (milliseconds per conformation).
* :class:`PySCFEngine`: Kohn-Sham DFT with D3(BJ) dispersion through PySCF and pyscf-dispersion
  (seconds to minutes per conformation), with the presets in :data:`PYSCF_PRESETS`; on a CUDA GPU
  (``device="gpu"``) the same calculation runs through gpu4pyscf.
* :func:`engine_from_name` builds either from a short name.

tblite and PySCF are imported inside the methods that use them.
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import importlib.metadata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from espaloma_like.data.records import QMRecord
from espaloma_like.exceptions import DeviceUnavailableError, MissingDependencyError
from espaloma_like.units import (
    BOLTZMANN_KJ_PER_MOL_K,
    HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM,
    HARTREE_TO_KJ_PER_MOL,
    NM_TO_BOHR,
)

__all__ = [
    "ENGINE_DEVICES",
    "PYSCF_PRESETS",
    "Engine",
    "EngineResult",
    "PySCFEngine",
    "XTBEngine",
    "engine_from_name",
]

#: Where an engine may run: "cpu" (every engine) or "gpu" (PySCF's DFT through gpu4pyscf).
ENGINE_DEVICES = ("cpu", "gpu")

#: Boltzmann constant in hartree/K (tblite takes its electronic temperature in hartree).
_BOLTZMANN_HARTREE_K = BOLTZMANN_KJ_PER_MOL_K / HARTREE_TO_KJ_PER_MOL


@dataclass(frozen=True, eq=False)
class EngineResult:
    """Energies and forces of C conformations from one engine call.

    Attributes
    ----------
    energies : np.ndarray
        (C,) float64 total energies, kJ/mol; NaN where the calculation failed.
    forces : np.ndarray
        (C, N, 3) float64 forces (minus the gradient), kJ/mol/nm; NaN where it failed.
    errors : list of (str or None)
        Per conformation: None on success, else the reason it failed.
    """

    energies: np.ndarray
    forces: np.ndarray
    errors: list[str | None]

    def __post_init__(self) -> None:
        c = self.energies.shape[0]
        if self.energies.shape != (c,) or self.forces.shape[0] != c or len(self.errors) != c:
            raise ValueError(
                f"inconsistent EngineResult: energies {self.energies.shape}, "
                f"forces {self.forces.shape}, {len(self.errors)} error entries"
            )

    @property
    def ok(self) -> np.ndarray:
        """(C,) bool: True where the conformation was labelled successfully."""
        return np.array([error is None for error in self.errors], dtype=bool)

    @property
    def n_failed(self) -> int:
        """Number of conformations that failed."""
        return sum(error is not None for error in self.errors)

    def to_record(
        self,
        engine: Engine,
        *,
        name: str,
        mapped_smiles: str,
        atomic_numbers: np.ndarray,
        conformations: np.ndarray,
        total_charge: int = 0,
        subset: str = "",
        charges: np.ndarray | None = None,
        metadata: dict[str, str] | None = None,
    ) -> QMRecord:
        """A :class:`QMRecord` of the successful conformations (possibly none).

        The failures are counted in ``metadata["n_failed"]`` and the first reason is kept in
        ``metadata["first_error"]``, so that dropping them here is never silent.

        Parameters
        ----------
        engine : Engine
            The engine that produced this result (level of theory and provenance).
        name, mapped_smiles, subset, total_charge, charges
            As in :class:`QMRecord`.
        atomic_numbers : np.ndarray
            (N,) atomic numbers.
        conformations : np.ndarray
            (C, N, 3) the conformations given to ``engine.compute``, nm.
        metadata : dict[str, str], optional
            Extra provenance, merged over the engine's.
        """
        conformations = np.asarray(conformations, dtype=np.float64).reshape(self.forces.shape)
        ok = self.ok
        info = engine.provenance()
        info["n_failed"] = str(self.n_failed)
        first_error = next((e for e in self.errors if e is not None), None)
        if first_error is not None:
            info["first_error"] = first_error
        info.update(metadata or {})
        return QMRecord(
            name=name,
            mapped_smiles=mapped_smiles,
            atomic_numbers=atomic_numbers,
            conformations=conformations[ok],
            energies=self.energies[ok],
            forces=self.forces[ok],
            level_of_theory=engine.level_of_theory,
            subset=subset,
            charges=charges,
            total_charge=total_charge,
            metadata=info,
        )


class Engine(abc.ABC):
    """A QM method that labels conformations with energies and forces."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Short name accepted by :func:`engine_from_name`."""

    @property
    @abc.abstractmethod
    def level_of_theory(self) -> str:
        """Method/basis label stored with the data, e.g. ``"B3LYP-D3BJ/def2-SVP"``."""

    @abc.abstractmethod
    def compute(
        self,
        atomic_numbers: np.ndarray,
        conformations_nm: np.ndarray,
        total_charge: int = 0,
        multiplicity: int = 1,
    ) -> EngineResult:
        """Energies and forces of each conformation.

        Parameters
        ----------
        atomic_numbers : np.ndarray
            (N,) atomic numbers.
        conformations_nm : np.ndarray
            (C, N, 3) or (N, 3) coordinates, nm.
        total_charge : int
            Net charge, e.
        multiplicity : int
            Spin multiplicity 2S + 1 (1: closed shell).

        Returns
        -------
        EngineResult
            Energies (kJ/mol) and forces (kJ/mol/nm); failed conformations carry NaN and an error.

        Raises
        ------
        ValueError
            Arrays of the wrong shape, or a charge and multiplicity the electron count cannot have.
        """

    def provenance(self) -> dict[str, str]:
        """Metadata describing the engine (name, level of theory, program and version)."""
        return {"engine": self.name, "level_of_theory": self.level_of_theory}

    @abc.abstractmethod
    def check_available(self) -> None:
        """Raise if this engine cannot run here (program missing, no GPU).

        Called before any conformation is labelled: these failures would fail every one.

        Raises
        ------
        MissingDependencyError
            The QM program is not installed (an ImportError).
        DeviceUnavailableError
            The engine runs on a GPU and none is usable (a RuntimeError).
        """


def _check_inputs(
    atomic_numbers: np.ndarray, conformations_nm: np.ndarray, total_charge: int, multiplicity: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and normalise engine inputs: (N,) int64 and (C, N, 3) float64 nm."""
    numbers = np.asarray(atomic_numbers, dtype=np.int64)
    xyz = np.asarray(conformations_nm, dtype=np.float64)
    if numbers.ndim != 1 or numbers.size == 0:
        raise ValueError(f"atomic_numbers must have shape (N,), got {numbers.shape}")
    if xyz.ndim == 2:
        xyz = xyz[None]
    if xyz.ndim != 3 or xyz.shape[1:] != (numbers.size, 3):
        raise ValueError(
            f"conformations must have shape (C, {numbers.size}, 3), "
            f"got {np.shape(conformations_nm)}"
        )
    if multiplicity < 1:
        raise ValueError(f"multiplicity must be >= 1, got {multiplicity}")
    n_electrons = int(numbers.sum()) - int(total_charge)
    if n_electrons < 0 or (n_electrons - (multiplicity - 1)) % 2:
        raise ValueError(
            f"{n_electrons} electrons (charge {total_charge}) cannot have "
            f"multiplicity {multiplicity}"
        )
    return numbers, xyz


def _error_message(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).strip()}"


def _package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------------------------
# GFN2-xTB (tblite)
# --------------------------------------------------------------------------------------------

#: OpenMP runtimes tblite builds link against (GNU on Linux wheels and conda-forge, LLVM, Intel).
_OPENMP_LIBRARIES = ("libgomp.so.1", "libomp.so", "libomp.dylib", "libiomp5.so")


@contextlib.contextmanager
def _openmp_threads(n_threads: int | None) -> Iterator[None]:
    """Temporarily set the OpenMP thread count of the process's OpenMP runtime.

    tblite has no thread setting of its own and reads ``OMP_NUM_THREADS`` only when its runtime
    starts, so the count is set through the runtime's ``omp_set_num_threads`` (by soname, which
    finds the copy tblite already loaded) and restored afterwards. Without a known runtime this
    does nothing.
    """
    if n_threads is None:
        yield
        return
    runtime = None
    for name in _OPENMP_LIBRARIES:
        try:
            runtime = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if runtime is None:
        yield
        return
    before = int(runtime.omp_get_max_threads())
    runtime.omp_set_num_threads(int(n_threads))
    try:
        yield
    finally:
        runtime.omp_set_num_threads(before)



@dataclass(frozen=True)
class XTBEngine(Engine):
    """GFN2-xTB energies and forces through tblite's Python interface.

    One ``tblite.interface.Calculator`` is built per call and moved from conformation to
    conformation with ``Calculator.update``; each single point starts from a fresh guess, so a
    result depends only on its geometry, not on the order of the conformations. tblite raises when
    the SCF does not converge within ``max_iterations`` or atoms are too close; both are recorded
    as errors and the calculator is rebuilt for the next conformation.

    Cost, measured with tblite 0.8 on one OpenMP thread: about 0.4 ms per conformation for water
    and 11-20 ms for a 27-atom drug-like cation (energy + gradient). With two OpenMP threads on a
    busy 2-core machine the same molecule took 25 ms to 1.5 s per conformation (threads
    spinning against other processes), so use ``n_threads=1`` and parallelise over molecules.

    At tblite's default ``accuracy=1`` the analytic forces agree with finite differences of the
    energy to about 0.1 kJ/mol/nm (of forces of order 100 kJ/mol/nm); ``accuracy=0.01`` brings
    that to about 0.002 kJ/mol/nm for some 40 % more time.

    Parameters
    ----------
    method : str
        tblite method: "GFN2-xTB" (default) or "GFN1-xTB".
    accuracy : float
        tblite numerical accuracy (lower is tighter).
    max_iterations : int
        Maximum SCF iterations before the conformation counts as failed.
    electronic_temperature : float
        Fermi smearing temperature, K (tblite's default is 300 K).
    n_threads : int or None
        OpenMP threads during :meth:`compute`, set through the OpenMP runtime and restored
        afterwards; None keeps the process's setting (``OMP_NUM_THREADS`` or all cores). 1 is
        fastest for small molecules on a busy machine.
    """

    method: str = "GFN2-xTB"
    accuracy: float = 1.0
    max_iterations: int = 250
    electronic_temperature: float = 300.0
    n_threads: int | None = None

    @property
    def name(self) -> str:
        return self.method.lower()

    @property
    def level_of_theory(self) -> str:
        return self.method

    def provenance(self) -> dict[str, str]:
        info = super().provenance()
        info.update(program="tblite", program_version=_package_version("tblite"))
        return info

    def check_available(self) -> None:
        try:
            import tblite.interface  # noqa: F401
        except ImportError as err:
            raise MissingDependencyError(
                "XTBEngine needs tblite: pip install 'espaloma_like[qm]' (or pip install tblite)"
            ) from err

    def _calculator(self, numbers: np.ndarray, bohr: np.ndarray, charge: int, uhf: int) -> Any:
        """A configured ``tblite.interface.Calculator`` at ``bohr`` ((N, 3), bohr)."""
        from tblite.interface import Calculator

        calc = Calculator(self.method, numbers, bohr, charge=float(charge), uhf=uhf)
        calc.set("verbosity", 0)
        calc.set("accuracy", float(self.accuracy))
        calc.set("max-iter", int(self.max_iterations))
        calc.set("temperature", float(self.electronic_temperature) * _BOLTZMANN_HARTREE_K)
        return calc

    def compute(
        self,
        atomic_numbers: np.ndarray,
        conformations_nm: np.ndarray,
        total_charge: int = 0,
        multiplicity: int = 1,
    ) -> EngineResult:
        """GFN2-xTB energies (kJ/mol) and forces (kJ/mol/nm); see :meth:`Engine.compute`."""
        self.check_available()
        numbers, xyz = _check_inputs(atomic_numbers, conformations_nm, total_charge, multiplicity)
        with _openmp_threads(self.n_threads):
            return self._compute(numbers, xyz * NM_TO_BOHR, total_charge, multiplicity)

    def _compute(
        self, numbers: np.ndarray, bohr: np.ndarray, total_charge: int, multiplicity: int
    ) -> EngineResult:
        n_conf, n_atoms = bohr.shape[:2]
        energies = np.full(n_conf, np.nan)
        forces = np.full((n_conf, n_atoms, 3), np.nan)
        errors: list[str | None] = []
        calc = None
        for index in range(n_conf):
            try:
                if calc is None:
                    calc = self._calculator(numbers, bohr[index], total_charge, multiplicity - 1)
                else:
                    calc.update(bohr[index])
                result = calc.singlepoint()
                energy = float(result.get("energy"))
                gradient = np.asarray(result.get("gradient"), dtype=np.float64)
                if not (np.isfinite(energy) and np.all(np.isfinite(gradient))):
                    raise FloatingPointError("tblite returned a non-finite energy or gradient")
            except Exception as err:  # any tblite failure is a per-conformation result
                errors.append(_error_message(err))
                calc = None  # do not trust a calculator's state after a failure
                continue
            energies[index] = energy * HARTREE_TO_KJ_PER_MOL
            forces[index] = -gradient * HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM
            errors.append(None)
        return EngineResult(energies=energies, forces=forces, errors=errors)


# --------------------------------------------------------------------------------------------
# DFT (PySCF + pyscf-dispersion)
# --------------------------------------------------------------------------------------------

#: Named DFT levels: name -> (functional, basis, dispersion).
PYSCF_PRESETS: dict[str, tuple[str, str, str | None]] = {
    # cheap default for tests and quick data
    "b3lyp-d3bj/def2-svp": ("b3lyp", "def2-svp", "d3bj"),
    # espaloma (OpenFF QCSubmit default); PySCF's "dzvp" is DGauss DZVP (Godbout 1992), as Psi4's
    "b3lyp-d3bj/dzvp": ("b3lyp", "dzvp", "d3bj"),
    # SPICE: wB97M-V with VV10 replaced by D3(BJ)
    "wb97m-d3bj/def2-tzvppd": ("wb97m", "def2-tzvppd", "d3bj"),
}

_FUNCTIONAL_LABELS = {"b3lyp": "B3LYP", "wb97m": "wB97M", "wb97m-v": "wB97M-V", "wb97x": "wB97X",
                      "pbe": "PBE", "pbe0": "PBE0", "b97m": "B97M", "tpss": "TPSS",
                      "r2scan": "r2SCAN"}
_BASIS_LABELS = {"def2-svp": "def2-SVP", "def2-svpd": "def2-SVPD", "def2-tzvp": "def2-TZVP",
                 "def2-tzvpp": "def2-TZVPP", "def2-tzvppd": "def2-TZVPPD", "dzvp": "DZVP",
                 "6-31g*": "6-31G*", "6-31g(d)": "6-31G(d)"}


@dataclass(frozen=True)
class PySCFEngine(Engine):
    """Kohn-Sham DFT energies and analytic forces with PySCF, dispersion from pyscf-dispersion.

    The SCF is restricted (RKS) for singlets and unrestricted (UKS) otherwise, with density
    fitting (``mf.density_fit()``, the def2 JKFIT auxiliary basis PySCF picks) by default. The
    dispersion correction is requested through PySCF's own ``xc="<functional>-d3bj"`` convention,
    which routes it to pyscf-dispersion (simple-dftd3) for both energy and gradient; for wB97M
    that convention means wB97M-V with VV10 switched off and D3(BJ) added, as SPICE does. "b3lyp"
    is libxc's B3LYP with VWN-RPA, the Gaussian and Psi4 convention used by espaloma's data. An
    SCF that does not converge (``mf.converged`` False) or any exception is recorded as an error.

    Cost of one energy + gradient, measured with PySCF 2.14 on one thread of a busy 2-core
    machine (after a one-time set-up of about 1 s in the first call):

    ======================== ===================== =====================
    preset                   water                 methane
    ======================== ===================== =====================
    b3lyp-d3bj/def2-svp      0.6-1.0 s (24 AOs)    1.7 s (34 AOs)
    b3lyp-d3bj/dzvp          0.45 s (18 AOs)       0.8 s (22 AOs)
    wb97m-d3bj/def2-tzvppd   4 s (74 AOs)          11 s (105 AOs)
    ======================== ===================== =====================

    Cost grows roughly as the cube of the number of basis functions; extrapolating (not
    measured), a 30-atom molecule (~700 AOs) at wb97m-d3bj/def2-tzvppd needs about an hour per
    conformation on such a machine. Two
    OpenMP threads competing with other processes on 2 cores were 2-4x *slower* than one: pass
    ``n_threads`` (or set ``OMP_NUM_THREADS``) to match the cores actually free.

    Parameters
    ----------
    functional : str
        Exchange-correlation functional in PySCF/libxc naming, without dispersion suffix.
    basis : str
        Basis set name in PySCF's library (e.g. "def2-svp", "dzvp", "def2-tzvppd").
    dispersion : str or None
        Dispersion correction ("d3bj", "d3zero", "d4", ...) or None for none.
    density_fit : bool
        Use density fitting for the Coulomb and exchange integrals.
    grid_level : int
        PySCF DFT grid level (0-9; 3 is PySCF's default).
    conv_tol : float
        SCF energy convergence threshold, hartree.
    max_cycle : int
        Maximum SCF cycles before the conformation counts as failed.
    max_memory_mb : int
        Memory PySCF may use, MB.
    n_threads : int or None
        OpenMP threads for PySCF during :meth:`compute` (``pyscf.lib.num_threads``, restored
        afterwards); None keeps PySCF's setting (``OMP_NUM_THREADS`` or all cores).
    device : {"cpu", "gpu"}
        "gpu" runs the same calculation (functional, dispersion, basis, density fitting, grid,
        convergence) through gpu4pyscf's RKS/UKS classes on a CUDA GPU, which share PySCF's
        molecule, xc parser and dispersion code; it needs ``gpu4pyscf-cuda12x`` (or ``-cuda13x``)
        and a visible GPU, and raises at once otherwise. The device is recorded in
        :meth:`provenance`.
    """

    functional: str = "b3lyp"
    basis: str = "def2-svp"
    dispersion: str | None = "d3bj"
    density_fit: bool = True
    grid_level: int = 3
    conv_tol: float = 1e-9
    max_cycle: int = 100
    max_memory_mb: int = 4000
    n_threads: int | None = None
    device: Literal["cpu", "gpu"] = "cpu"

    def __post_init__(self) -> None:
        if self.device not in ENGINE_DEVICES:
            raise ValueError(f"device must be one of {ENGINE_DEVICES}, got {self.device!r}")
        if self.dispersion and self.functional.lower().endswith("-v"):
            raise ValueError(
                f"{self.functional} already holds VV10 non-local correlation; adding "
                f"{self.dispersion} would count dispersion twice (use e.g. functional='wb97m')"
            )

    @classmethod
    def from_preset(cls, preset: str, device: Literal["cpu", "gpu"] = "cpu") -> PySCFEngine:
        """An engine at one of the levels of :data:`PYSCF_PRESETS` (case-insensitive)."""
        key = preset.strip().lower()
        if key not in PYSCF_PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PYSCF_PRESETS)}")
        functional, basis, dispersion = PYSCF_PRESETS[key]
        return cls(functional=functional, basis=basis, dispersion=dispersion, device=device)

    @property
    def xc(self) -> str:
        """The ``xc`` string given to PySCF, dispersion suffix included (e.g. "b3lyp-d3bj")."""
        return f"{self.functional}-{self.dispersion}" if self.dispersion else self.functional

    @property
    def name(self) -> str:
        return f"{self.xc}/{self.basis}".lower()

    @property
    def level_of_theory(self) -> str:
        functional = _FUNCTIONAL_LABELS.get(self.functional.lower(), self.functional.upper())
        if self.dispersion:
            functional += "-" + self.dispersion.upper()
        return f"{functional}/{_BASIS_LABELS.get(self.basis.lower(), self.basis)}"

    def provenance(self) -> dict[str, str]:
        info = super().provenance()
        info.update(
            program="pyscf",
            program_version=_package_version("pyscf"),
            dispersion_program_version=_package_version("pyscf-dispersion"),
            density_fit=str(self.density_fit),
            grid_level=str(self.grid_level),
            device=self.device,
        )
        if self.device == "gpu":
            info["gpu_program"] = "gpu4pyscf"
            info["gpu_program_version"] = _gpu4pyscf_version()
        return info

    def check_available(self) -> None:
        try:
            import pyscf  # noqa: F401
        except ImportError as err:
            raise MissingDependencyError(
                "PySCFEngine needs pyscf and pyscf-dispersion: pip install 'espaloma_like[qm]'"
            ) from err
        if self.device == "gpu":
            _check_gpu()

    def _check_setup(self, numbers: np.ndarray) -> None:
        """Fail fast on an xc or basis PySCF does not know (it would fail every conformation)."""
        from pyscf import gto
        from pyscf.data.elements import ELEMENTS
        from pyscf.dft import libxc
        from pyscf.scf import dispersion

        try:
            xc, _, _ = dispersion.parse_dft(self.xc)
            libxc.parse_xc(xc)
        except Exception as err:
            raise ValueError(f"PySCF does not accept xc {self.xc!r}: {err}") from err
        for z in sorted(set(numbers.tolist())):
            symbol = ELEMENTS[int(z)]
            try:
                with warnings.catch_warnings():  # PySCF's "try basis-set-exchange" hint
                    warnings.simplefilter("ignore", UserWarning)
                    shells = gto.basis.load(self.basis, symbol)
            except Exception as err:
                raise ValueError(
                    f"basis {self.basis!r} is not available for {symbol}: {err}"
                ) from err
            if not shells:
                raise ValueError(f"basis {self.basis!r} has no functions for {symbol}")

    def _single_point(
        self, numbers: np.ndarray, bohr: np.ndarray, total_charge: int, multiplicity: int
    ) -> tuple[float, np.ndarray]:
        """Energy (hartree) and gradient ((N, 3) hartree/bohr) of one conformation."""
        from pyscf import gto

        dft = self._dft_module()
        mol = gto.M(
            atom=[(int(z), tuple(xyz)) for z, xyz in zip(numbers, bohr, strict=True)],
            unit="Bohr",
            basis=self.basis,
            charge=int(total_charge),
            spin=multiplicity - 1,
            verbose=0,
            max_memory=self.max_memory_mb,
        )
        mf = dft.RKS(mol, xc=self.xc) if multiplicity == 1 else dft.UKS(mol, xc=self.xc)
        mf.grids.level = self.grid_level
        mf.conv_tol = self.conv_tol
        mf.max_cycle = self.max_cycle
        if self.density_fit:
            mf = mf.density_fit()
        energy = float(mf.kernel())
        if not mf.converged:
            raise RuntimeError(
                f"SCF not converged in {self.max_cycle} cycles (E = {energy:.8f} Eh)"
            )
        gradient = _to_numpy(mf.nuc_grad_method().kernel())
        if not (np.isfinite(energy) and np.all(np.isfinite(gradient))):
            raise FloatingPointError("PySCF returned a non-finite energy or gradient")
        return energy, gradient

    def compute(
        self,
        atomic_numbers: np.ndarray,
        conformations_nm: np.ndarray,
        total_charge: int = 0,
        multiplicity: int = 1,
    ) -> EngineResult:
        """DFT energies (kJ/mol) and forces (kJ/mol/nm); see :meth:`Engine.compute`."""
        self.check_available()
        from pyscf import lib

        numbers, xyz = _check_inputs(atomic_numbers, conformations_nm, total_charge, multiplicity)
        self._check_setup(numbers)
        bohr = xyz * NM_TO_BOHR
        threads_before = lib.num_threads()
        if self.n_threads is not None:
            lib.num_threads(self.n_threads)
        try:
            return self._compute(numbers, bohr, total_charge, multiplicity)
        finally:
            lib.num_threads(threads_before)

    def _dft_module(self) -> Any:
        """PySCF's ``dft`` module, or gpu4pyscf's (same RKS/UKS interface) on the GPU."""
        if self.device == "gpu":
            from gpu4pyscf import dft as gpu_dft

            return gpu_dft
        from pyscf import dft

        return dft

    def _compute(
        self, numbers: np.ndarray, bohr: np.ndarray, total_charge: int, multiplicity: int
    ) -> EngineResult:
        n_conf, n_atoms = bohr.shape[:2]
        energies = np.full(n_conf, np.nan)
        forces = np.full((n_conf, n_atoms, 3), np.nan)
        errors: list[str | None] = []
        for index in range(n_conf):
            try:
                energy, gradient = self._single_point(
                    numbers, bohr[index], total_charge, multiplicity
                )
            except Exception as err:  # any PySCF failure is a per-conformation result
                errors.append(_error_message(err))
                continue
            energies[index] = energy * HARTREE_TO_KJ_PER_MOL
            forces[index] = -gradient * HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM
            errors.append(None)
        return EngineResult(energies=energies, forces=forces, errors=errors)


def _gpu4pyscf_version() -> str:
    for distribution in ("gpu4pyscf-cuda12x", "gpu4pyscf-cuda13x", "gpu4pyscf-cuda11x", "gpu4pyscf"):
        version = _package_version(distribution)
        if version != "unknown":
            return version
    return "unknown"


def _check_gpu() -> None:
    """Fail before any conformation when gpu4pyscf or a CUDA GPU is missing (every one would fail)."""
    try:
        import cupy
        import gpu4pyscf  # noqa: F401
    except ImportError as err:
        raise MissingDependencyError(
            "PySCFEngine(device='gpu') needs gpu4pyscf and CuPy for the machine's CUDA: "
            f"pip install gpu4pyscf-cuda12x (or gpu4pyscf-cuda13x) ({err})"
        ) from err
    try:
        n_gpus = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as err:  # CuPy raises its own CUDARuntimeError without a driver
        raise DeviceUnavailableError(
            f"PySCFEngine(device='gpu'): no usable CUDA device ({err})"
        ) from err
    if n_gpus == 0:
        raise DeviceUnavailableError("PySCFEngine(device='gpu'): no CUDA device visible")


def _to_numpy(array: Any) -> np.ndarray:
    """A float64 NumPy copy of a NumPy or CuPy array (gpu4pyscf may return either)."""
    if hasattr(array, "get"):
        array = array.get()
    return np.asarray(array, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# By name
# --------------------------------------------------------------------------------------------

_XTB_ALIASES = {"xtb": "GFN2-xTB", "gfn2": "GFN2-xTB", "gfn2-xtb": "GFN2-xTB",
                "gfn2xtb": "GFN2-xTB", "gfn1-xtb": "GFN1-xTB", "gfn1": "GFN1-xTB"}
_DISPERSIONS = ("d3bj", "d3zero", "d3bjm", "d3zerom", "d3op", "d4")


def engine_from_name(
    name: str, n_threads: int | None = None, device: Literal["cpu", "gpu"] = "cpu"
) -> Engine:
    """An engine from a short name.

    Parameters
    ----------
    name : str
        "xtb" / "gfn2-xtb" (GFN2-xTB), "gfn1-xtb", a key of :data:`PYSCF_PRESETS`
        ("b3lyp-d3bj/def2-svp", "b3lyp-d3bj/dzvp", "wb97m-d3bj/def2-tzvppd"), or any
        "functional[-dispersion]/basis" PySCF understands (e.g. "pbe0-d3bj/def2-tzvp").
        Case-insensitive.
    n_threads : int or None
        OpenMP threads the engine uses while computing (None: the process's setting). Use 1 when
        molecules are labelled in parallel processes.
    device : {"cpu", "gpu"}
        Where DFT runs (see :class:`PySCFEngine`); xTB runs on the CPU only.

    Raises
    ------
    ValueError
        The name matches none of these forms, the device is unknown, or xTB is asked to run on
        the GPU.
    """
    if device not in ENGINE_DEVICES:
        raise ValueError(f"device must be one of {ENGINE_DEVICES}, got {device!r}")
    key = name.strip().lower()
    if key in _XTB_ALIASES:
        if device != "cpu":
            raise ValueError(f"{name!r} (tblite) runs on the CPU only; use device='cpu'")
        return XTBEngine(method=_XTB_ALIASES[key], n_threads=n_threads)
    if key in PYSCF_PRESETS:
        functional, basis, dispersion = PYSCF_PRESETS[key]
        return PySCFEngine(functional, basis, dispersion, n_threads=n_threads, device=device)
    if key.count("/") == 1:
        functional, basis = key.split("/")
        dispersion = None
        for suffix in _DISPERSIONS:
            if functional.endswith("-" + suffix):
                functional, dispersion = functional[: -len(suffix) - 1], suffix
                break
        if functional and basis:
            return PySCFEngine(functional, basis, dispersion, n_threads=n_threads, device=device)
    raise ValueError(
        f"unknown engine {name!r}; use 'xtb', one of {', '.join(PYSCF_PRESETS)}, or "
        "'functional[-dispersion]/basis'"
    )
