"""Crash-safe file output: atomic writes, stale-temporary cleanup, and a per-directory lock.

Every file the package writes goes through :func:`atomic_open` (or its shortcuts): the data go
to a uniquely named temporary file in the target's directory (same file system, so the final
``os.replace`` is atomic), which replaces the target only once it is complete and flushed.
A failure at any point (a full disk, a permission error, an exception in the caller) removes
the temporary file and leaves a previous file at the target untouched, so a reader sees either
the old file or the new one, never a partial one.

Temporary names are ``.<target name>.<random>.tmp``; :func:`remove_stale_temporaries` deletes
them (and the fixed ``<name>.tmp`` names older versions used) when a run that holds the
directory's :class:`DirectoryLock` resumes after a kill.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

from espaloma_like.exceptions import OutputLockedError

logger = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"


@functools.cache
def _umask() -> int:
    # read once (os.umask can only be read by setting it); mkstemp files are 0600, but the files
    # we publish should get the permissions a plain open() would give them
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: Literal["w", "wb"] = "w", *,
                encoding: str | None = "utf-8", newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the ``with`` block ends without error.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; its directory must exist.
    mode : {"w", "wb"}
        Text or binary.
    encoding, newline : str, optional
        As for :func:`open` (text mode only).

    Yields
    ------
    file object
        Write to it; do not close it.

    Raises
    ------
    OSError
        Whatever the file system raises (no space, no permission); the temporary file is
        removed and ``path`` is left as it was.
    """
    target = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    temporary = Path(name)
    try:
        binary = "b" in mode
        with os.fdopen(fd, mode, encoding=None if binary else encoding,
                       newline=None if binary else newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`); returns the path."""
    with atomic_open(path, "w", encoding=encoding) as handle:
        handle.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`); returns the path."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`atomic_open`); returns the path."""
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)
    return Path(path)


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files a killed writer left in ``directory`` (not recursive).

    Call it only while holding the directory's :class:`DirectoryLock`: a live writer's
    temporary file looks the same as a dead one's.

    Returns
    -------
    list of Path
        The files removed.
    """
    removed = []
    for path in Path(directory).glob(f"*{TEMP_SUFFIX}"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


class DirectoryLock:
    """An exclusive lock on a directory, held by one live process at a time.

    The lock is an ``fcntl.flock`` on ``<directory>/.lock``: the kernel releases it when the
    holder exits, however it exits, so a lock left by a killed run is taken over without
    guessing from process ids. The file records the holder's host and pid for the error
    message; it is left in place on release (unlinking it would let two processes lock two
    different files).

    Parameters
    ----------
    directory : str or os.PathLike
        Created if missing.
    what : str
        What the directory holds, for the error message ("training run").

    Raises
    ------
    OutputLockedError
        From :meth:`acquire` when another live process holds the lock.
    """

    def __init__(self, directory: str | os.PathLike[str], what: str = "output") -> None:
        self.directory = Path(directory)
        self.path = self.directory / ".lock"
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> DirectoryLock:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; concurrent runs are not guarded
            logger.warning("cannot lock %s on this platform; do not run two jobs into it",
                           self.directory)
            return self
        if self._fd is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise OutputLockedError(
                f"{self.directory} is in use by another {self.what} ({holder}); wait for it to "
                "finish or choose another output directory") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
