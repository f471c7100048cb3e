"""Model soups: one checkpoint whose weights are the mean of several fine-tuned runs' weights.

Runs fine-tuned from one starting model with the same recipe and different seeds stay in one
basin of the loss, where the mean of their weights is a better model than each (Wortsman et
al., "Model soups", ICML 2022): the seeds' independent errors average out. The soup is an
ordinary checkpoint, so it costs nothing at parametrization time (an ensemble of predictions
would cost one network pass per member).

Only checkpoints of one architecture (equal model configs, equal tensor names and shapes) mix;
anything else is refused, since averaging unrelated networks gives a meaningless one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from espaloma_like.exceptions import CheckpointError


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def average_state_dicts(state_dicts: Sequence[dict[str, torch.Tensor]],
                        weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """Weighted mean of state dicts with equal keys and shapes.

    Parameters
    ----------
    state_dicts : sequence of dict
        ``{name: tensor}``, at least one.
    weights : sequence of float, optional
        One non-negative weight per state dict (normalized here); uniform by default.

    Returns
    -------
    dict
        Floating tensors averaged (in float64, cast back); integer and boolean tensors, which
        cannot be averaged, must be equal in every state dict and are copied.

    Raises
    ------
    CheckpointError
        Different keys or shapes, unequal non-floating tensors, or bad weights.
    """
    if not state_dicts:
        raise CheckpointError("a soup needs at least one checkpoint")
    if weights is None:
        weights = [1.0] * len(state_dicts)
    if len(weights) != len(state_dicts) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise CheckpointError(f"need one non-negative weight per checkpoint, not {list(weights)}")
    total = float(sum(weights))
    first = state_dicts[0]
    for n, other in enumerate(state_dicts[1:], start=2):
        if set(other) != set(first):
            differ = sorted(set(other) ^ set(first))
            raise CheckpointError(f"checkpoint {n} has other tensors than checkpoint 1 "
                                  f"({', '.join(differ[:5])}): not one architecture")
    averaged = {}
    for key, tensor in first.items():
        others = [sd[key] for sd in state_dicts]
        if any(t.shape != tensor.shape for t in others):
            raise CheckpointError(f"tensor {key!r} has different shapes: "
                                  f"{sorted({tuple(t.shape) for t in others})}")
        if tensor.is_floating_point():
            mean = sum(w / total * t.double() for w, t in zip(weights, others, strict=True))
            averaged[key] = torch.as_tensor(mean).to(tensor.dtype)
        else:
            if any(not torch.equal(t, tensor) for t in others):
                raise CheckpointError(f"non-floating tensor {key!r} differs between checkpoints "
                                      "and cannot be averaged")
            averaged[key] = tensor.clone()
    return averaged


def make_soup(paths: Sequence[str | Path], out: str | Path,
              weights: Sequence[float] | None = None,
              metadata: dict[str, Any] | None = None) -> Path:
    """Write the weight average of checkpoints ``paths`` to ``out`` (atomically).

    Parameters
    ----------
    paths : sequence of str or Path
        Checkpoints (or shipped model names) of one architecture.
    out : str or Path
        The soup's checkpoint; it must not be one of ``paths``.
    weights : sequence of float, optional
        Mixing weights (uniform by default).
    metadata : dict, optional
        Extra metadata (e.g. the soup's validation metrics); the members (path, SHA-256,
        training step, validation metrics) and weights are recorded under ``"soup"``.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    CheckpointError
        Unreadable checkpoints, different model configs or tensors, ``out`` among the inputs.
    """
    from espaloma_like.nn.checkpoint import load_checkpoint, resolve_model_path, save_checkpoint

    resolved = [resolve_model_path(p) for p in paths]
    out = Path(out)
    if any(out.resolve() == p.resolve() for p in resolved):
        raise CheckpointError(f"the soup {out} would overwrite one of its members")
    loaded = [load_checkpoint(p) for p in resolved]
    config = loaded[0][0].config
    for path, (model, _) in zip(resolved[1:], loaded[1:], strict=True):
        if model.config != config:
            raise CheckpointError(f"{path} has another model config than {resolved[0]}: "
                                  "only runs of one architecture can be averaged")
    state = average_state_dicts([m.state_dict() for m, _ in loaded], weights)
    soup = loaded[0][0]
    soup.load_state_dict(state)
    members = [{"path": str(p), "sha256": _sha256(p), "step": meta.get("step"),
                "validation": meta.get("validation")}
               for p, (_, meta) in zip(resolved, loaded, strict=True)]
    info: dict[str, Any] = {
        "name": out.stem, "step": None, "validation": {},
        "training_config": loaded[0][1].get("training_config"),
        "soup": {"members": members,
                 "weights": list(weights) if weights is not None else [1.0] * len(members)},
    }
    info.update(metadata or {})
    return save_checkpoint(soup, out, metadata=info)
