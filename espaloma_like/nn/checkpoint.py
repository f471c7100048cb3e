"""Checkpoints: a plain dict loaded with ``torch.load(weights_only=True)``, and the registry.

Format (``FORMAT_VERSION`` 1)::

    {"format_version": 1, "package_version": str, "config": dict (ModelConfig),
     "state_dict": dict[str, Tensor], "metadata": dict (JSON-like: training, dataset, report)}

Named models ship in ``espaloma_like/models/<name>.pt``; ``default`` is used when none is named.
No network downloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from espaloma_like.exceptions import CheckpointError
from espaloma_like.nn.model import ModelConfig, ParameterModel

FORMAT_VERSION = 1
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = "default"


def available_models() -> list[str]:
    """Names of the models shipped with the package."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.pt"))


def save_checkpoint(model: ParameterModel, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a plain-dict checkpoint (atomically)."""
    from espaloma_like import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "config": model.config.model_dump(mode="json"),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": metadata or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def _migrate(payload: dict[str, Any]) -> dict[str, Any]:
    """Bring older checkpoint formats up to ``FORMAT_VERSION`` (none exist yet)."""
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format version {version!r} is not supported by this espaloma_like "
            f"(which reads format {FORMAT_VERSION}); upgrade the package or re-export the model"
        )
    return payload


def resolve_model_path(name_or_path: str | Path | None) -> Path:
    """Registry name or file path -> checkpoint path."""
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    candidate = Path(name_or_path)
    if candidate.suffix == ".pt" or candidate.exists():
        if not candidate.is_file():
            raise CheckpointError(f"no such checkpoint file: {candidate}")
        return candidate
    shipped = MODELS_DIR / f"{name_or_path}.pt"
    if not shipped.is_file():
        raise CheckpointError(
            f"unknown model {str(name_or_path)!r}; shipped models: {available_models() or 'none'}"
        )
    return shipped


def load_checkpoint(name_or_path: str | Path | None = None) -> tuple[ParameterModel, dict[str, Any]]:
    """Load a model (eval mode, CPU) and its metadata."""
    path = resolve_model_path(name_or_path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise CheckpointError(f"{path} is not an espaloma_like checkpoint")
    payload = _migrate(payload)
    try:
        config = ModelConfig.model_validate(payload["config"])
        model = ParameterModel(config)
        model.load_state_dict(payload["state_dict"])
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} does not match the model: {err}") from err
    model.eval()
    metadata = dict(payload.get("metadata", {}))
    metadata.setdefault("path", str(path))
    metadata.setdefault("name", path.stem)
    return model, metadata
