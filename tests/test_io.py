"""Crash-safe output: atomic writes leave the old file or the new one, never a partial one."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from espaloma_like._io import (
    DirectoryLock,
    atomic_open,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_text,
    remove_stale_temporaries,
)
from espaloma_like.exceptions import OutputLockedError


def _disk_full(*_args: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_atomic_write_text_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.xml"
    target.write_text("old")
    atomic_write_text(target, "<new/>")
    assert target.read_text() == "<new/>"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.xml"]
    # published with the permissions a plain open() would give, not mkstemp's 0600
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("existing", [True, False])
def test_a_full_disk_leaves_the_old_file_untouched_and_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool) -> None:
    target = tmp_path / "system.xml"
    if existing:
        target.write_text("<System previous='yes'/>")
    # the data reach the disk at fsync; a full disk fails there (or at write)
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(OSError) as raised:
        atomic_write_text(target, "<System/>" * 10_000)
    assert raised.value.errno == errno.ENOSPC
    if existing:
        assert target.read_text() == "<System previous='yes'/>"
    else:
        assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == (["system.xml"] if existing else [])


def test_a_failing_write_midway_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "metrics.csv"
    target.write_text("step\n1\n")
    with pytest.raises(PermissionError):
        with atomic_open(target) as handle:
            handle.write("step\n1\n2\n")
            raise PermissionError(errno.EACCES, "Permission denied")
    assert target.read_text() == "step\n1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_atomic_torch_save_failure_keeps_the_previous_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "last.pt"
    atomic_torch_save({"step": 1, "w": torch.ones(3)}, target)
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(OSError):
        atomic_torch_save({"step": 2, "w": torch.zeros(1000)}, target)
    assert torch.load(target, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_stale_temporaries_are_removed(tmp_path: Path) -> None:
    keep = [tmp_path / "last.pt", tmp_path / "metrics.csv", tmp_path / ".lock"]
    stale = [tmp_path / "last.pt.tmp", tmp_path / ".best.pt.k2j3h4.tmp"]
    for path in keep + stale:
        path.write_text("x")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(keep)


def test_directory_lock_refuses_a_second_holder_and_is_released(tmp_path: Path) -> None:
    first = DirectoryLock(tmp_path, "training run").acquire()
    with pytest.raises(OutputLockedError, match=f"pid {os.getpid()}"):
        DirectoryLock(tmp_path, "training run").acquire()
    first.release()
    with DirectoryLock(tmp_path) as again:
        assert again.held


def test_lock_of_a_live_process_refuses_and_of_a_killed_one_is_taken_over(tmp_path: Path) -> None:
    """Another process holds the lock: refused; once it is killed (SIGKILL), taken over."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from espaloma_like._io import DirectoryLock
            DirectoryLock({str(tmp_path)!r}).acquire()
            print("locked", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLockedError, match=f"pid {holder.pid}") as raised:
            DirectoryLock(tmp_path, "training run").acquire()
        assert "\n" not in str(raised.value)
    finally:
        holder.kill()
        holder.wait()
    # the dead holder's lock file is still there, with its pid, and is taken over
    assert f"pid {holder.pid}" in (tmp_path / ".lock").read_text()
    with DirectoryLock(tmp_path) as lock:
        assert lock.held
        assert f"pid {os.getpid()}" in (tmp_path / ".lock").read_text()


def test_cli_output_on_a_full_disk_leaves_the_previous_xml_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import xml.etree.ElementTree as ET

    from espaloma_like.cli.main import main

    target = tmp_path / "ethanol.xml"
    positions = tmp_path / "ethanol.pdb"  # written beside the XML
    assert main(["parametrize", "CCO", "-o", str(target)]) == 0
    before, positions_before = target.read_text(), positions.read_text()
    ET.fromstring(before)  # a whole, parsable System
    monkeypatch.setattr(os, "fsync", _disk_full)
    try:
        code = main(["parametrize", "CCC", "-o", str(target), "--overwrite"])
    except OSError as err:  # whether the CLI reports it in one line is the CLI's business
        assert err.errno == errno.ENOSPC
    else:
        assert code != 0
    assert target.read_text() == before
    assert positions.read_text() == positions_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ethanol.pdb", "ethanol.xml"]
