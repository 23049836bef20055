"""Discovery of backends, codecs and middleware through entry points.

Entry points are read on first use, never at import time, and cached; a broken
entry point is logged and skipped so it cannot break the others; one whose
optional dependency is missing is *not installed* (`PluginNotInstalledError`,
with the ``pip install`` command), not broken. `refresh`
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
from file_backed.errors import ConfigError, PluginNotFoundError, PluginNotInstalledError
from file_backed.extras import install_hint

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
    "load_entry_point",
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


#: What the object of each group's entry points must be, for the error that says otherwise.
_CONTRACT = {
    BACKENDS_GROUP: "a backend entry point names a callable factory(*, codec, **options) returning the backend "
    "plugin object (see docs/writing-a-backend.md)",
    CODECS_GROUP: "a codec entry point names a class deriving from file_backed.Codec that defines encode(obj) -> "
    "Sequence[Buffer] and decode(data: memoryview) -> object (see docs/writing-a-codec.md)",
}


def _contract_problem(group: str, target: Any) -> str | None:
    """Why `target` cannot be the object of an entry point of `group`, or None."""
    if group == CODECS_GROUP and not (isinstance(target, type) and issubclass(target, Codec)):
        what = f"the class {target.__qualname__}" if isinstance(target, type) else f"{type(target).__name__} {target!r}"
        return f"gives {what}, which does not subclass file_backed.Codec"
    if group == BACKENDS_GROUP and not callable(target):
        return f"gives {type(target).__name__} {target!r}, which is not callable"
    return None


def load_entry_point(info: PluginInfo, others: list[str] | None = None) -> Any:
    """Load `info`'s entry point and check the object against its group's contract.

    Raises `PluginNotInstalledError` when a module the plugin needs is an
    optional dependency of its distribution that is missing (with the ``pip
    install`` command that adds it), and `PluginNotFoundError` naming the entry
    point when it fails to load otherwise or gives an object that breaks the
    contract (a codec class that does not subclass `Codec`). `others` are the
    installed names the error lists (default: every other name of the group).
    """
    kind = _KIND[info.group]
    if others is None:
        others = [other for other in installed(info.group) if other != info.name]
    try:
        target = info.entry_point.load()
    except ModuleNotFoundError as error:
        hint = install_hint(info.distribution, error.name)
        if hint is None or error.name is None:
            raise _broken(info, others, f"failed to load: {type(error).__name__}: {error}.") from error
        raise PluginNotInstalledError(kind, info.name, others, module=error.name, hint=hint) from error
    except Exception as error:
        raise _broken(info, others, f"failed to load: {type(error).__name__}: {error}.") from error
    problem = _contract_problem(info.group, target)
    if problem is not None:
        raise _broken(info, others, f"{problem}. The contract: {_CONTRACT[info.group]}.")
    return target


def _broken(info: PluginInfo, others: list[str], why: str) -> PluginNotFoundError:
    origin = f"by {info.distribution}" if info.distribution else "by an unknown distribution"
    return PluginNotFoundError(
        _KIND[info.group],
        info.name,
        others,
        detail=f"its entry point {info.name} = {info.value} (in group {info.group}, installed {origin}) {why}",
    )


@functools.cache
def _load(group: str, name: str) -> Any:
    info = installed(group).get(name)
    if info is None:
        raise PluginNotFoundError(_KIND[group], name, list(installed(group)))
    return load_entry_point(info)


def _available(group: str) -> Mapping[str, Any]:
    loaded: dict[str, Any] = {}
    for name in installed(group):
        try:
            loaded[name] = _load(group, name)
        except PluginNotInstalledError as error:
            logger.debug("skipping %s: %s", name, error)
        except PluginNotFoundError as error:
            logger.warning("skipping %s: %s", name, error)
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
