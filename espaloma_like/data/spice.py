"""Read and write QM data in the SPICE HDF5 layout.

The layout (SPICE 1.x, Eastman et al. 2023) has one HDF5 group per molecule, named by the
molecule, holding:

================== ============ ============== ==================================================
dataset            shape        unit           notes
================== ============ ============== ==================================================
smiles             (1,)                        mapped SMILES, variable-length UTF-8 bytes
subset             (1,)                        subset name, variable-length UTF-8 bytes
atomic_numbers     (N,)                        int16
conformations      (C, N, 3)    bohr           float32 in SPICE files, float64 here
dft_total_energy   (C,)         hartree        float64
dft_total_gradient (C, N, 3)    hartree/bohr   the gradient, i.e. minus the forces
am1bcc_charges     (N,)         e              optional (written when a record has charges)
================== ============ ============== ==================================================

Files written here also carry the group attributes ``level_of_theory`` (str), ``total_charge``
(int) and ``provenance`` (JSON object of the record's metadata). Files without them, such as the
published SPICE files, read as ``level_of_theory = "wB97M-D3BJ/def2-TZVPPD"``, the total charge
taken from the formal charges of the mapped SMILES, and empty metadata. Other SPICE datasets
(MBIS charges, bond indices, multipoles) are ignored.

Records come back in OpenMM units (nm, kJ/mol, kJ/mol/nm), see :class:`QMRecord`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like.data.records import QMRecord
from espaloma_like.exceptions import DataFormatError, MoleculeInputError
from espaloma_like.units import (
    BOHR_TO_NM,
    HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM,
    HARTREE_TO_KJ_PER_MOL,
    NM_TO_BOHR,
)

if TYPE_CHECKING:
    import h5py

__all__ = [
    "SPICE_LEVEL_OF_THEORY",
    "SpiceWriter",
    "is_supported",
    "read_spice_hdf5",
    "spice_group_names",
    "total_charge_from_smiles",
    "write_spice_hdf5",
]

#: Level of theory of the published SPICE data sets, used when a file does not say.
SPICE_LEVEL_OF_THEORY = "wB97M-D3BJ/def2-TZVPPD"

_ENERGY_KEY = "dft_total_energy"
_GRADIENT_KEY = "dft_total_gradient"
_CHARGES_KEY = "am1bcc_charges"
_REQUIRED_KEYS = ("smiles", "atomic_numbers", "conformations", _ENERGY_KEY, _GRADIENT_KEY)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _open_for_reading(path: str | os.PathLike[str]) -> h5py.File:
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such SPICE HDF5 file: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DataFormatError(f"{path} is not a readable HDF5 file: {err}") from err


def _text(value: Any) -> str:
    """A string from an HDF5 string dataset or attribute (bytes, str, or a 1-element array)."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise DataFormatError(f"expected a 1-element string array, got shape {value.shape}")
        value = value.reshape(-1)[0]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def total_charge_from_smiles(smiles: str) -> int:
    """Net charge, e: the sum of the formal charges written in a (mapped) SMILES.

    The SMILES is parsed without sanitization, so salts and elements outside the supported set
    (e.g. ``[Na+]``) are counted too.

    Raises
    ------
    DataFormatError
        RDKit cannot parse the SMILES.
    """
    from rdkit import Chem
    from rdkit.rdBase import BlockLogs

    with BlockLogs():
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
    if mol is None:
        raise DataFormatError(f"RDKit could not parse SMILES {smiles!r}")
    return int(sum(atom.GetFormalCharge() for atom in mol.GetAtoms()))


def _read_group(name: str, group: h5py.Group, where: str) -> QMRecord:
    missing = [key for key in _REQUIRED_KEYS if key not in group]
    if missing:
        raise DataFormatError(
            f"{where}: group {name!r} lacks dataset(s) {', '.join(missing)} of the SPICE layout"
        )
    smiles = _text(group["smiles"][()])
    attrs = group.attrs
    total_charge = (
        int(attrs["total_charge"]) if "total_charge" in attrs else total_charge_from_smiles(smiles)
    )
    metadata: dict[str, str] = {}
    if "provenance" in attrs:
        try:
            metadata = dict(json.loads(_text(attrs["provenance"])))
        except (ValueError, TypeError) as err:
            raise DataFormatError(f"{where}: group {name!r} has unreadable provenance") from err
    conformations = np.asarray(group["conformations"][()], dtype=np.float64)
    energies = np.asarray(group[_ENERGY_KEY][()], dtype=np.float64)
    gradient = np.asarray(group[_GRADIENT_KEY][()], dtype=np.float64)
    charges = None
    if _CHARGES_KEY in group:
        charges = np.asarray(group[_CHARGES_KEY][()], dtype=np.float64).reshape(-1)
    try:
        return QMRecord(
            name=name,
            mapped_smiles=smiles,
            atomic_numbers=np.asarray(group["atomic_numbers"][()], dtype=np.int64),
            conformations=conformations * BOHR_TO_NM,
            energies=energies * HARTREE_TO_KJ_PER_MOL,
            forces=-gradient * HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM,
            level_of_theory=(
                _text(attrs["level_of_theory"]) if "level_of_theory" in attrs
                else SPICE_LEVEL_OF_THEORY
            ),
            subset=_text(group["subset"][()]) if "subset" in group else "",
            charges=charges,
            total_charge=total_charge,
            metadata=metadata,
        )
    except DataFormatError as err:
        raise DataFormatError(f"{where}: {err}") from err


def read_spice_hdf5(
    path: str | os.PathLike[str], names: Iterable[str] | None = None
) -> Iterator[QMRecord]:
    """Yield the molecules of a SPICE-layout HDF5 file as :class:`QMRecord` objects.

    Every group is returned, including molecules the package cannot parametrize (salts,
    unsupported elements); use :func:`is_supported` to filter them.

    Parameters
    ----------
    path : str or os.PathLike
        The HDF5 file.
    names : iterable of str, optional
        Groups to read, in this order; default all, in the file's order.

    Yields
    ------
    QMRecord
        Conformations in nm, energies in kJ/mol, forces (minus the stored gradient) in kJ/mol/nm.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    DataFormatError
        The file is not HDF5, or a group does not follow the layout.
    KeyError
        A requested name is not in the file.
    """
    import h5py

    with _open_for_reading(path) as handle:
        wanted = list(handle.keys()) if names is None else list(names)
        for name in wanted:
            if name not in handle:
                raise KeyError(f"no molecule {name!r} in {path}")
            group = handle[name]
            if not isinstance(group, h5py.Group):
                raise DataFormatError(f"{path}: {name!r} is a dataset, not a molecule group")
            yield _read_group(name, group, str(path))


def spice_group_names(path: str | os.PathLike[str]) -> list[str]:
    """The molecule (group) names in a SPICE-layout HDF5 file, in file order."""
    with _open_for_reading(path) as handle:
        return list(handle.keys())


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise DataFormatError(
            f"record name {name!r} cannot be an HDF5 group name (empty, '.', '..' or holding '/'); "
            "rename the record, e.g. replace '/' and '\\' in SMILES-based names"
        )


def _write_group(handle: h5py.File, record: QMRecord, compression_level: int,
                 single_precision: bool = False) -> None:
    """Write one record as a group; on failure the partial group is removed.

    ``single_precision`` stores conformations and gradients as float32, as SPICE does (energies
    stay float64); about half the size, with relative rounding of 6e-8.
    """
    import h5py

    _check_name(record.name)
    text = h5py.string_dtype("utf-8")
    gzip: dict[str, Any] = {"compression": "gzip", "compression_opts": compression_level,
                            "shuffle": True}
    group = handle.create_group(record.name)
    try:
        group.create_dataset("smiles", data=[record.mapped_smiles], dtype=text)
        group.create_dataset("subset", data=[record.subset], dtype=text)
        group.create_dataset(
            "atomic_numbers", data=record.atomic_numbers.astype(np.int16), **gzip
        )
        arrays = {
            "conformations": record.conformations * NM_TO_BOHR,
            _ENERGY_KEY: record.energies / HARTREE_TO_KJ_PER_MOL,
            _GRADIENT_KEY: -record.forces / HARTREE_PER_BOHR_TO_KJ_PER_MOL_NM,
        }
        if record.charges is not None:
            arrays[_CHARGES_KEY] = record.charges
        if single_precision:
            for key in ("conformations", _GRADIENT_KEY):
                arrays[key] = arrays[key].astype(np.float32)
        for key, value in arrays.items():
            # gzip needs chunks, and HDF5 cannot chunk an empty dataset
            group.create_dataset(key, data=value, **(gzip if value.size else {}))
        group.attrs["level_of_theory"] = record.level_of_theory
        group.attrs["total_charge"] = np.int64(record.total_charge)
        group.attrs["provenance"] = json.dumps(record.metadata, sort_keys=True)
    except BaseException:
        del handle[record.name]
        raise


def _stamp(handle: h5py.File) -> None:
    from espaloma_like import __version__

    handle.attrs["layout"] = "SPICE"
    handle.attrs["writer"] = f"espaloma_like {__version__}"


def _temporary_path(path: Path) -> Path:
    """A fresh, unique file name next to ``path`` (same file system, so os.replace is atomic)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def write_spice_hdf5(
    path: str | os.PathLike[str], records: Iterable[QMRecord], compression_level: int = 4,
    single_precision: bool = False,
) -> int:
    """Write records to a new SPICE-layout HDF5 file, atomically.

    The file is written under a temporary name in the same directory and moved onto ``path`` with
    ``os.replace`` only when complete, so ``path`` never holds a partial file; an existing file at
    ``path`` is replaced.

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    records : iterable of QMRecord
        Molecules; names must be unique and usable as HDF5 group names (no '/').
    compression_level : int
        gzip level, 0-9.
    single_precision : bool
        Store conformations and gradients as float32 (as SPICE does); energies stay float64.

    Returns
    -------
    int
        Number of molecules written.

    Raises
    ------
    DataFormatError
        Two records share a name, or a name holds '/'.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_path(path)
    count = 0
    try:
        with h5py.File(temporary, "w") as handle:
            _stamp(handle)
            for record in records:
                if record.name in handle:
                    raise DataFormatError(f"two records are named {record.name!r}")
                _write_group(handle, record, compression_level, single_precision)
                count += 1
        os.chmod(temporary, 0o644)  # mkstemp creates 0600 files; a dataset is meant to be shared
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return count


class SpiceWriter:
    """Append molecules to a SPICE-layout HDF5 file, for incremental and resumable builds.

    The writer works on a temporary copy of the file and publishes it onto ``path`` with
    ``os.replace`` at each commit, so ``path`` always holds a complete, readable file whatever
    happens to the process: a killed build loses at most the molecules written since the last
    commit, and :attr:`names` tells a restarted build which molecules to skip. A commit happens on
    :meth:`commit`, when ``commit_interval_s`` has passed since the last one (checked after each
    write), and on :meth:`close`, also when the ``with`` block is left by an exception (every
    group written is complete: a failed write removes its partial group). A commit copies the
    file once, so keep the interval well above the time a copy takes. One writer per file.

    Parameters
    ----------
    path : str or os.PathLike
        The file; created if missing.
    commit_interval_s : float
        Seconds between automatic commits; 0 commits after every molecule.
    compression_level : int
        gzip level, 0-9.

    Examples
    --------
    >>> with SpiceWriter("labels.hdf5") as writer:  # doctest: +SKIP
    ...     for name, smiles, xyz in molecules:
    ...         if name in writer:
    ...             continue  # labelled by an earlier run
    ...         writer.write(label(name, smiles, xyz))
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        commit_interval_s: float = 60.0,
        compression_level: int = 4,
    ) -> None:
        import h5py

        self.path = Path(path)
        self.commit_interval_s = float(commit_interval_s)
        self.compression_level = int(compression_level)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = _temporary_path(self.path)
        if self.path.exists():
            shutil.copyfile(self.path, self._temporary)
            mode = "a"
        else:
            mode = "w"
        try:
            self._handle: h5py.File | None = h5py.File(self._temporary, mode)
        except OSError as err:
            self._temporary.unlink(missing_ok=True)
            raise DataFormatError(f"{self.path} is not a writable HDF5 file: {err}") from err
        _stamp(self._handle)
        self._names = set(self._handle.keys())
        self._dirty = not self.path.exists()
        self._last_commit = time.monotonic()

    @property
    def names(self) -> frozenset[str]:
        """Names of the molecules in the file, committed or not."""
        return frozenset(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __len__(self) -> int:
        return len(self._names)

    def _file(self) -> h5py.File:
        if self._handle is None:
            raise ValueError(f"SpiceWriter for {self.path} is closed")
        return self._handle

    def write(self, record: QMRecord, overwrite: bool = False) -> None:
        """Add one molecule.

        Parameters
        ----------
        record : QMRecord
            The molecule; its name becomes the group name.
        overwrite : bool
            Replace a molecule of the same name instead of raising.

        Raises
        ------
        DataFormatError
            A molecule of that name exists and ``overwrite`` is False, or the name holds '/'.
        """
        handle = self._file()
        _check_name(record.name)
        if record.name in self._names:
            if not overwrite:
                raise DataFormatError(
                    f"{self.path} already holds {record.name!r}; skip it or pass overwrite=True"
                )
            del handle[record.name]
            self._names.discard(record.name)
        _write_group(handle, record, self.compression_level)
        self._names.add(record.name)
        self._dirty = True
        if time.monotonic() - self._last_commit >= self.commit_interval_s:
            self.commit()

    def commit(self) -> None:
        """Publish everything written so far onto ``path`` (atomically)."""
        import h5py

        handle = self._file()
        if not self._dirty:
            return
        handle.close()
        self._handle = None
        os.replace(self._temporary, self.path)
        shutil.copyfile(self.path, self._temporary)
        self._handle = h5py.File(self._temporary, "a")
        self._dirty = False
        self._last_commit = time.monotonic()

    def close(self) -> None:
        """Commit and release the file; further writes raise."""
        if self._handle is None:
            return
        self._handle.close()
        self._handle = None
        if self._dirty:
            os.replace(self._temporary, self.path)
            self._dirty = False
        self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> SpiceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # an unclosed writer must not leave its temporary copy behind; path stays as last committed
        handle = getattr(self, "_handle", None)
        if handle is not None:
            try:
                handle.close()
            finally:
                self._temporary.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Which records the package can use
# --------------------------------------------------------------------------------------------


def is_supported(record: QMRecord) -> str | None:
    """Why the package cannot train on a record, or None if it can.

    A record is supported when its mapped SMILES describes one connected, closed-shell molecule
    of the elements H C N O F P S Cl Br I (see :func:`espaloma_like.molecule.from_smiles`) whose
    atoms and net charge agree with the record's.

    Returns
    -------
    str or None
        The reason (e.g. an unsupported element, disconnected fragments, a radical, a missing
        SMILES), or None.
    """
    from espaloma_like.molecule import from_smiles

    if not record.mapped_smiles:
        return "no mapped SMILES: bond orders and formal charges are unknown"
    try:
        graph = from_smiles(record.mapped_smiles, name=record.name)
    except MoleculeInputError as err:
        return str(err)
    if not np.array_equal(graph.atomic_numbers, record.atomic_numbers):
        return "the atoms of the mapped SMILES differ from the record's atomic numbers"
    if graph.total_charge != record.total_charge:
        return (
            f"formal charges of the SMILES sum to {graph.total_charge}, "
            f"the record's total charge is {record.total_charge}"
        )
    return None
