"""On-disk cache of residue templates (ffxml), keyed by molecule, model and charge mode.

A JSON file ``{"format_version": 1, "entries": {key: {...}}}``; each entry records the model
name and version, the charge mode, the mapped SMILES and the ffxml. The key is a hash of those
fields, so a retrained model (a new checkpoint file, hence a new version) or other charges never
reuse a stale template.

An entry holds one of two things. A *complete* template (field ``ffxml``): everything the
model gives the molecule, for any ``ForceField``. Or, for a model with term kinds that have no
ForceField XML form (:attr:`~espaloma_like.termkinds.base.TermKind.system_only`), a *core*
template: field ``core_ffxml`` (the ffxml without those kinds), ``system_only_kinds`` (their
names) and ``system_forces`` (``[kind, serialized openmm.Force]`` pairs, molecule atom
indices), which only :class:`~espaloma_like.export.system_generator.SystemGenerator` can use
(it adds the forces after ``createSystem``). A core template is never stored under ``ffxml``,
so :meth:`TemplateCache.get` (and any older reader of the file, which reads ``ffxml`` only)
never serves it as a complete one. Every write re-reads the file, merges, and replaces it atomically
(:func:`espaloma_like._io.atomic_write_text`), so concurrent writers lose no complete entry
and a reader never sees a partial file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from espaloma_like._io import atomic_write_text

if TYPE_CHECKING:
    import numpy as np

    from espaloma_like.nn.model import ParameterModel

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelIdentity:
    """Which model made a template.

    Attributes
    ----------
    name : str
        The shipped model's name or the checkpoint's stem (``"in-memory"`` for a model never
        saved).
    version : str
        The checkpoint's own ``version`` metadata if it has one, else ``sha256:`` and the first
        16 hex digits of the checkpoint file (of the weights for an in-memory model).
    """

    name: str
    version: str


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def model_identity(model: ParameterModel) -> ModelIdentity:
    """Name and version of a loaded model (see :class:`ModelIdentity`)."""
    metadata: dict[str, Any] = dict(getattr(model, "metadata", {}) or {})
    name = str(metadata.get("name", "in-memory"))
    if metadata.get("version"):
        return ModelIdentity(name, str(metadata["version"]))
    path = Path(str(metadata.get("path", "")))
    if metadata.get("path") and path.is_file():
        stat = path.stat()
        return ModelIdentity(name, "sha256:" + _file_digest(str(path.resolve()), stat.st_size,
                                                              stat.st_mtime_ns))
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().double().numpy().tobytes())
    return ModelIdentity(name, "sha256:" + digest.hexdigest()[:16])


def template_key(identity: ModelIdentity, charges: str, mapped_smiles: str,
                 user_charges: np.ndarray | None = None) -> str:
    """The cache key of one template (hex SHA-256)."""
    fields = [identity.name, identity.version, charges, mapped_smiles]
    if user_charges is not None:
        fields.append(",".join(f"{q:.8f}" for q in user_charges.tolist()))
    return hashlib.sha256("|".join(fields).encode()).hexdigest()


class CachedTemplate(NamedTuple):
    """One cache entry: a complete template, or a core one with its system-only forces.

    Attributes
    ----------
    ffxml : str
        The ffxml: complete, or the core (without the system-only kinds).
    system_only_kinds : tuple of str
        Names of the system-only kinds the model gave the molecule; empty for a complete
        template.
    system_forces : tuple of (str, str)
        ``(kind name, serialized openmm.Force)`` of those kinds, molecule atom indices (a kind
        whose terms all vanish has none).
    """

    ffxml: str
    system_only_kinds: tuple[str, ...] = ()
    system_forces: tuple[tuple[str, str], ...] = ()

    @property
    def complete(self) -> bool:
        """Whether the ffxml holds every term (no system-only kind)."""
        return not self.system_only_kinds


class TemplateCache:
    """A JSON file of ffxml templates.

    Parameters
    ----------
    path : str or path
        The cache file; created on first write (its directory must exist). A file that cannot
        be read as a cache is reported in the log and replaced on the next write.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict[str, Any]] = self._read()

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}
        try:
            payload = json.loads(self.path.read_text(encoding="utf-8"))
            if payload.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format_version {payload.get('format_version')!r}")
            entries = payload["entries"]
            if not isinstance(entries, dict):
                raise ValueError("entries is not a mapping")
            return {str(k): dict(v) for k, v in entries.items() if isinstance(v, dict)}
        except (OSError, ValueError, KeyError, AttributeError) as err:
            logger.warning("template cache %s not readable (%s); it will be rewritten",
                           self.path, err)
            return {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> str | None:
        """The complete ffxml stored under ``key``, or None (also for a core template)."""
        entry = self._entries.get(key)
        ffxml = entry.get("ffxml") if entry else None
        return ffxml if isinstance(ffxml, str) else None

    def lookup(self, key: str) -> CachedTemplate | None:
        """The template stored under ``key``, complete or core, or None (also for an entry
        that does not read as either)."""
        entry = self._entries.get(key)
        if not entry:
            return None
        if isinstance(entry.get("ffxml"), str):
            return CachedTemplate(entry["ffxml"])
        try:
            core, kinds, forces = (entry["core_ffxml"], entry["system_only_kinds"],
                                   entry["system_forces"])
            template = CachedTemplate(
                str(core), tuple(str(k) for k in kinds),
                tuple((str(kind), str(xml)) for kind, xml in forces))
        except (KeyError, TypeError, ValueError):
            return None
        return template if template.system_only_kinds else None

    def put(self, key: str, ffxml: str, **fields: str) -> None:
        """Store the complete ``ffxml`` (and descriptive ``fields``) under ``key`` and write
        the file."""
        self.put_template(key, CachedTemplate(ffxml), **fields)

    def put_template(self, key: str, template: CachedTemplate, **fields: str) -> None:
        """Store ``template`` (and descriptive ``fields``) under ``key`` and write the file: a
        complete one under ``ffxml``, a core one under ``core_ffxml`` with its system-only
        kinds and forces."""
        if template.complete:
            entry: dict[str, Any] = {**fields, "ffxml": template.ffxml}
        else:
            entry = {**fields, "core_ffxml": template.ffxml,
                     "system_only_kinds": list(template.system_only_kinds),
                     "system_forces": [list(pair) for pair in template.system_forces]}
        self._entries = {**self._read(), **self._entries}
        self._entries[key] = entry
        payload = {"format_version": FORMAT_VERSION, "entries": self._entries}
        atomic_write_text(self.path, json.dumps(payload, indent=1, sort_keys=True) + "\n")
