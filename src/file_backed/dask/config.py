"""The configuration of a worker's spill mapping: a ``[file_backed]`` table's keys,
with defaults from the Dask configuration namespace ``file_backed``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from file_backed.config import FileBackedConfig, load_config
from file_backed.errors import ConfigError

__all__ = ["AUTO", "DEFAULTS", "SpillConfig", "resolve"]

#: ``max_bytes="auto"``: the worker's memory limit times ``distributed.worker.memory.target``.
AUTO = "auto"

#: What a spill mapping uses for the keys that neither the call nor the Dask
#: configuration give.
DEFAULTS: Mapping[str, Any] = {"backend": "fs_hardlink", "codec": "dask", "max_items": 2**40, "max_bytes": AUTO}

_KEYS = frozenset(attrs.fields_dict(FileBackedConfig)) - {"source"}


@attrs.frozen
class SpillConfig:
    """A checked ``[file_backed]`` configuration and its byte budget, which may be `AUTO`."""

    table: FileBackedConfig
    max_bytes: int | str | None


def _dask_namespace() -> dict[str, Any]:
    import dask.config

    found = dask.config.get("file_backed", default=None)
    if found is None:
        return {}
    if not isinstance(found, Mapping):
        raise ConfigError(f"Dask configuration file_backed: expected a mapping of keys, got {found!r}")
    return {str(key).replace("-", "_"): value for key, value in found.items()}


def resolve(config: Mapping[str, Any]) -> SpillConfig:
    """Merge `config` over the Dask configuration namespace ``file_backed`` over
    `DEFAULTS`, and check it as `file_backed.load_config` checks a table
    (unknown keys, wrong types, names not installed raise `ConfigError`)."""
    merged = {**DEFAULTS, **_dask_namespace(), **config}
    unknown = sorted(set(merged) - _KEYS)
    if unknown:
        raise ConfigError(
            f"file_backed.dask: unknown key(s) {', '.join(map(repr, unknown))}; the keys are {', '.join(sorted(_KEYS))}"
        )
    max_bytes = merged.pop("max_bytes")
    table = load_config(merged)
    if max_bytes != AUTO and max_bytes is not None:
        table = load_config({**merged, "max_bytes": max_bytes})
        max_bytes = table.max_bytes
    return SpillConfig(table, max_bytes)
