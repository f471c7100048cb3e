"""Checkpoints: a plain dict loaded with ``torch.load(weights_only=True)``, and the registry.

Format (``FORMAT_VERSION`` 1)::

    {"format_version": 1, "package_version": str, "config": dict (ModelConfig),
     "state_dict": dict[str, Tensor], "metadata": dict (JSON-like: training, dataset, report)}

Named models ship in ``espaloma_like/models/<name>.pt``; ``default`` is used when none is named.
No network downloads.

:func:`read_torch_file` is the one reader of every file the package loads with torch (model
checkpoints and training resume files): ``weights_only=True`` always, so a file holding pickled
Python objects is refused instead of run; truncated or foreign files, and files whose tensors
hold NaN or infinity, are refused with a one-line :class:`CheckpointError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from espaloma_like._io import atomic_torch_save
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
    return atomic_torch_save(payload, path)


def read_torch_file(path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """Load a torch file safely: weights only, a dict, every floating tensor finite.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What the file should be, for error messages ("checkpoint", "training state").

    Returns
    -------
    dict
        The payload, tensors on the CPU.

    Raises
    ------
    CheckpointError
        The file is missing, truncated, not a torch file, holds pickled Python objects
        (which could run code, so they are never unpickled), is not a dict, or holds a
        tensor with NaN or infinite values.
    """
    import pickle

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such {what} file: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} is not a plain {what}: it holds Python objects that could run code when "
            "loaded, so it is refused") from err
    except Exception as err:  # EOFError, zip-reader RuntimeError, ...: truncated or foreign
        raise CheckpointError(
            f"cannot read {what} {path}: truncated or not a torch file ({one_line(err)})") from err
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} is not an espaloma_like {what}")
    bad = _first_non_finite(payload)
    if bad is not None:
        raise CheckpointError(f"{what} {path} holds NaN or infinite values in {bad!r}; "
                              "it is refused (a diverged run?)")
    return payload


def one_line(err: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (torch's are multi-line), shortened to ``limit``."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    text = text or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_non_finite(tree: Any, prefix: str = "") -> str | None:
    """Key path of the first floating tensor with a NaN or infinity in ``tree``, or None."""
    if isinstance(tree, torch.Tensor):
        finite = not tree.is_floating_point() or bool(torch.isfinite(tree).all())
        return None if finite else prefix or "<tensor>"
    items: Any = ()
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    for key, value in items:
        found = _first_non_finite(value, f"{prefix}.{key}" if prefix else str(key))
        if found is not None:
            return found
    return None


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
    payload = read_torch_file(path, "checkpoint")
    if "state_dict" not in payload:
        raise CheckpointError(f"{path} is not an espaloma_like checkpoint")
    payload = _migrate(payload)
    try:
        config = ModelConfig.model_validate(payload["config"])
        model = ParameterModel(config)
        model.load_state_dict(payload["state_dict"])
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} does not match the model: {one_line(err)}") from err
    model.eval()
    metadata = dict(payload.get("metadata", {}))
    metadata.setdefault("path", str(path))
    metadata.setdefault("name", path.stem)
    return model, metadata
