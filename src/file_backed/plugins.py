"""Discovery of backends, codecs and middleware through entry points.

Entry points are read on first use, never at import time, and cached; a broken
entry point is logged and skipped so it cannot break the others. `refresh`
forgets the cache (after installing or removing a distribution at run time).
"""

from __future__ import annotations

import functools
import logging
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from file_backed.codecs.base import Codec
from file_backed.errors import ConfigError, PluginNotFoundError

if TYPE_CHECKING:
    import importlib.metadata

__all__ = [
    "BACKENDS_GROUP",
    "CODECS_GROUP",
    "PLUGINS_GROUP",
    "PluginInfo",
    "available_backends",
    "available_codecs",
    "available_plugins",
    "get_backend",
    "get_codec",
    "get_plugin",
    "installed",
    "refresh",
]

logger = logging.getLogger(__name__)

BACKENDS_GROUP = "file_backed.backends"
CODECS_GROUP = "file_backed.codecs"
PLUGINS_GROUP = "file_backed.plugins"

_KIND = {BACKENDS_GROUP: "backend", CODECS_GROUP: "codec", PLUGINS_GROUP: "plugin"}


@attrs.frozen
class PluginInfo:
    """One entry point of a file_backed group, before it is loaded."""

    name: str
    group: str
    value: str
    distribution: str | None
    version: str | None
    entry_point: importlib.metadata.EntryPoint = attrs.field(repr=False, eq=False)


@functools.cache
def installed(group: str) -> Mapping[str, PluginInfo]:
    """The entry points of `group`, by name, without loading them.

    Raises `ConfigError` when two distributions declare the same name.
    """
    import importlib.metadata

    found: dict[str, PluginInfo] = {}
    for entry_point in importlib.metadata.entry_points(group=group):
        dist = entry_point.dist
        info = PluginInfo(
            name=entry_point.name,
            group=group,
            value=entry_point.value,
            distribution=dist.name if dist is not None else None,
            version=dist.version if dist is not None else None,
            entry_point=entry_point,
        )
        previous = found.get(info.name)
        if previous is not None and previous.value != info.value:
            raise ConfigError(
                f"{_KIND[group]} name {info.name!r} is declared twice: by {previous.distribution} "
                f"({previous.value}) and by {info.distribution} ({info.value})"
            )
        found[info.name] = info
    return types.MappingProxyType(found)


@functools.cache
def _load(group: str, name: str) -> Any:
    info = installed(group).get(name)
    if info is None:
        raise PluginNotFoundError(_KIND[group], name, list(installed(group)))
    try:
        return info.entry_point.load()
    except Exception as error:
        raise PluginNotFoundError(
            _KIND[group],
            name,
            [other for other in installed(group) if other != name],
            detail=f"It is installed (by {info.distribution}) but failed to load: {type(error).__name__}: {error}.",
        ) from error


def _available(group: str) -> Mapping[str, Any]:
    loaded: dict[str, Any] = {}
    for name in installed(group):
        try:
            loaded[name] = _load(group, name)
        except PluginNotFoundError as error:
            logger.warning("skipping %s: %s", name, error.__cause__ or error)
    return types.MappingProxyType(loaded)


def available_backends() -> Mapping[str, Callable[..., Any]]:
    """Installed backend factories by name (entry point group ``file_backed.backends``)."""
    return _available(BACKENDS_GROUP)


def available_codecs() -> Mapping[str, type[Codec]]:
    """Installed codec classes by name (entry point group ``file_backed.codecs``)."""
    return _available(CODECS_GROUP)


def available_plugins() -> Mapping[str, Any]:
    """Installed middleware plugins by name (entry point group ``file_backed.plugins``)."""
    return _available(PLUGINS_GROUP)


def get_backend(name: str) -> Callable[..., Any]:
    """The backend factory named `name`; raises `PluginNotFoundError` listing the installed ones."""
    return _load(BACKENDS_GROUP, name)  # type: ignore[no-any-return]


def get_codec(name: str) -> type[Codec]:
    """The codec class named `name`; raises `PluginNotFoundError` listing the installed ones."""
    return _load(CODECS_GROUP, name)  # type: ignore[no-any-return]


def get_plugin(name: str) -> Any:
    """The middleware plugin named `name`; raises `PluginNotFoundError` listing the installed ones."""
    return _load(PLUGINS_GROUP, name)


def refresh() -> None:
    """Forget every cached entry point and loaded plugin."""
    installed.cache_clear()
    _load.cache_clear()
