"""One entry point for QM training files: the format is chosen from the path.

* ``*.h5`` / ``*.hdf5``: the SPICE layout (:func:`espaloma_like.data.spice.read_spice_hdf5`);
* ``*.sdf`` / ``*.sdf.xz``, or a directory of ``qm-*.sdf.xz``: OpenFF industry-benchmark optimized
  conformers (:func:`espaloma_like.data.industry.read_industry_sdf`).

Training (``train_files``) and ``espaloma-like data info`` read files through
:func:`read_qm_records`, so every format is accepted wherever one is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from espaloma_like.data.records import QMRecord
from espaloma_like.exceptions import DataFormatError


def read_qm_records(path: str | Path, skipped: list[str] | None = None) -> Iterator[QMRecord]:
    """Yield the molecules of a QM data file (or industry-SDF directory) as QM records.

    Parameters
    ----------
    path : str or Path
        A SPICE-format HDF5 file, an industry SDF file, or a directory of industry SDF files.
    skipped : list of str, optional
        Receives one line per record a reader skipped, with the reason (industry SDF).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    DataFormatError
        The format is not recognised from the path, or the file does not follow it.
    """
    from espaloma_like.data.industry import is_industry_sdf, read_industry_sdf
    from espaloma_like.data.spice import read_spice_hdf5

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such QM data file or directory: {path}")
    if path.is_file() and path.suffix.lower() in (".h5", ".hdf5"):
        yield from read_spice_hdf5(path)
    elif is_industry_sdf(path):
        yield from read_industry_sdf(path, skipped)
    else:
        raise DataFormatError(
            f"{path}: unknown QM data format (expected SPICE-format .h5/.hdf5, or OpenFF "
            "industry-benchmark qm-*.sdf[.xz] files or a directory of them)")
