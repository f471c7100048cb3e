"""espaloma_like: graph-neural-network force-field parameters for OpenMM.

The top-level API is small and imported lazily, so ``import espaloma_like`` is cheap:

* :func:`parametrize`, :func:`parametrize_many`, :func:`load_model`, :func:`available_models`,
  :class:`TemplateGenerator`, :class:`SystemGenerator`;
* :mod:`espaloma_like.baselines` (``sage``, ``gaff``), :mod:`espaloma_like.mm` (torch energies).
"""

from __future__ import annotations

import importlib
from typing import Any

from espaloma_like import _openmm_hook

__version__ = "0.1.0"

_LAZY = {
    "parametrize": "espaloma_like.api",
    "parametrize_many": "espaloma_like.api",
    "load_model": "espaloma_like.api",
    "available_models": "espaloma_like.api",
    "TemplateGenerator": "espaloma_like.api",
    "SystemGenerator": "espaloma_like.export.system_generator",
    "MoleculeGraph": "espaloma_like.molecule",
    "ParameterSet": "espaloma_like.parameters",
    "ParametrizedMolecule": "espaloma_like.parametrized",
    "OutOfDomainWarning": "espaloma_like.domain",
    "ApplicabilityDomain": "espaloma_like.domain",
}
_SUBMODULES = {"baselines", "mm", "molecule", "terms", "parameters", "export", "exceptions", "units",
               "domain"}

__all__ = [
    "SystemGenerator", "TemplateGenerator", "__version__", "available_models", "load_model",
    "parametrize",
    "parametrize_many",
]


# ForceField XML files of System-only forms load in openmm.app.ForceField after this import
_openmm_hook.install()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"espaloma_like.{name}")
    raise AttributeError(f"module 'espaloma_like' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, *_LAZY, *_SUBMODULES])
