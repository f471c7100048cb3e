"""A training run on disk: the resume file (``last.pt``), its checks, and the run's files.

The resume file is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)`` through :func:`espaloma_like.nn.checkpoint.read_torch_file`
like every other file the package reads::

    {"format_version": 2, "kind": "espaloma_like training state", "package_version": str,
     "config": dict (TrainConfig), "step": int, "model": state_dict, "optimizer": state_dict,
     "scheduler": state_dict, "rng": dict (numpy bit-generator state, plain ints and strings),
     "best_validation": float, "evaluations_since_best": int, "history": list[dict]}

Format 1 (before the kind and package version were stored) had the same layout under the key
``"format"`` and is read as is.

A run resumes only with the config it was started with: any difference except in the fields of
:data:`RUN_CONTROL_FIELDS` (where and how fast it runs, not what a step computes) is refused,
naming the fields, unless the caller asks to start over (:func:`set_aside_run`).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from espaloma_like._io import atomic_write_text
from espaloma_like.exceptions import CheckpointError
from espaloma_like.nn.checkpoint import read_torch_file
from espaloma_like.training.config import TrainConfig

STATE_FORMAT = 2
STATE_KIND = "espaloma_like training state"
#: what a run writes into its output directory (set aside together on a restart)
RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "tensorboard")
#: config fields that may change between a run and its resumption
RUN_CONTROL_FIELDS = frozenset({"output_dir", "device", "num_threads", "tensorboard", "max_seconds"})
METRICS_FIELDS = ("step", "split", "loss", "energy_rmse", "force_rmse", "charge_rmse",
                  "learning_rate", "grad_norm", "seconds", "prior", "torque_rmse",
                  "geometry_rmsd")
_REQUIRED = ("step", "model", "optimizer", "scheduler", "rng", "best_validation",
             "evaluations_since_best", "history", "config")


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into Python numbers and lists.

    What ``torch.load(weights_only=True)`` can read back: tensors, numbers, strings, None,
    and lists, tuples and dicts of them.
    """
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor | str | bool | int | float) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    raise TypeError(f"cannot store a {type(value).__name__} in a training state")


def config_differences(saved: Mapping[str, Any], current: TrainConfig) -> list[str]:
    """Fields (dotted) where ``saved`` differs from ``current``, as ``"name: old -> new"``."""
    try:
        old = TrainConfig.model_validate(dict(saved)).model_dump(mode="json")
    except Exception as err:
        return [f"config not readable by this version ({type(err).__name__})"]
    new = current.model_dump(mode="json")
    out: list[str] = []

    def walk(a: Any, b: Any, name: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if name or key not in RUN_CONTROL_FIELDS:
                    walk(a.get(key), b.get(key), f"{name}.{key}" if name else key)
        elif a != b:
            out.append(f"{name}: {a!r} -> {b!r}")

    walk(old, new, "")
    return out


def load_training_state(path: str | Path, config: TrainConfig) -> dict[str, Any]:
    """Read and check a resume file for a run of ``config``.

    Raises
    ------
    CheckpointError
        The file is unsafe, truncated or corrupt (see ``read_torch_file``), not a training
        state, of an unknown format, missing entries, or written for a different config.
    """
    path = Path(path)
    state = read_torch_file(path, "training state")
    version = state.get("format_version", state.get("format"))
    if version not in (1, STATE_FORMAT) or state.get("kind", STATE_KIND) != STATE_KIND:
        raise CheckpointError(f"{path} is not an espaloma_like training state of a known format "
                              f"(format {version!r}); pass --restart to start over")
    missing = [key for key in _REQUIRED if key not in state]
    if missing:
        raise CheckpointError(f"training state {path} is incomplete (no {', '.join(missing)}); "
                              "pass --restart to start over")
    differences = config_differences(state["config"], config)
    if differences:
        raise CheckpointError(
            f"{path.parent} holds a run with a different config ({'; '.join(differences)}); "
            "resume it with its own config, or pass --restart to set it aside and start over")
    return state


def metrics_csv(history: Iterable[Mapping[str, Any]]) -> str:
    """``metrics.csv`` text for ``history`` (header and one row per record)."""
    buffer = io.StringIO()
    out = csv.DictWriter(buffer, fieldnames=METRICS_FIELDS, extrasaction="ignore")
    out.writeheader()
    for record in history:
        out.writerow(record)
    return buffer.getvalue()


def write_metrics_csv(path: str | Path, history: Iterable[Mapping[str, Any]]) -> Path:
    """Rewrite ``metrics.csv`` from ``history`` atomically (on resume: no duplicate rows)."""
    return atomic_write_text(path, metrics_csv(history))


def run_files(output: str | Path) -> list[Path]:
    """The files of :data:`RUN_FILES` present in ``output``."""
    return [p for p in (Path(output) / name for name in RUN_FILES) if p.exists()]


def set_aside_run(output: str | Path) -> Path | None:
    """Move a previous run's files into ``output/replaced-<UTC time>/``; None if there are none.

    Nothing is deleted: a restart must not lose results.
    """
    present = run_files(output)
    if not present:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target = Path(output) / f"replaced-{stamp}"
    suffix = 1
    while target.exists():
        suffix += 1
        target = Path(output) / f"replaced-{stamp}-{suffix}"
    target.mkdir()
    for path in present:
        path.replace(target / path.name)
    return target
