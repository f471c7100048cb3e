"""Teach ``openmm.app.ForceField`` the ``<EspalomaLikeMolecule>`` element at ``import espaloma_like``.

ForceField XML files of models with term kinds that OpenMM's XML has no element for hold them
inside ``<EspalomaLikeMolecule>`` (:mod:`espaloma_like.export.system_only`). So that such a file
loads in any ``ForceField`` once ``espaloma_like`` is imported, whatever the import order,
without importing OpenMM (~0.25 s) when the package is imported: if ``openmm.app.forcefield`` is
already imported the parser is registered now, otherwise a one-shot import hook registers it
right after that module is executed.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import importlib.machinery

FORCEFIELD_MODULE = "openmm.app.forcefield"


def _register(module: ModuleType) -> None:
    from espaloma_like.export.system_only import register_openmm_parser

    register_openmm_parser(module)


class _RegisteringLoader:
    """Runs the real loader, then registers the parser on the fresh module (a duck-typed
    ``importlib.abc.Loader``: importing that module costs more than the hook)."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _register(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... of the real one
        return getattr(self._loader, name)


class _ForceFieldFinder:
    """Finds nothing itself: wraps the loader of ``openmm.app.forcefield``, once."""

    def find_spec(self, fullname: str, path: Any, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname != FORCEFIELD_MODULE:
            return None
        import importlib.util

        uninstall()
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)  # type: ignore[assignment]
        return spec


def uninstall() -> None:
    """Remove the import hook (if installed)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _ForceFieldFinder)]


def install() -> None:
    """Register the parser now if OpenMM's ForceField is imported, else when it is."""
    module = sys.modules.get(FORCEFIELD_MODULE)
    if module is not None:
        _register(module)
    elif not any(isinstance(f, _ForceFieldFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _ForceFieldFinder())
