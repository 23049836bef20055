"""`open_store`: a store from a backend and a codec found by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from file_backed.codecs.base import Codec
from file_backed.errors import ConfigError
from file_backed.plugins import get_backend, get_codec
from file_backed.store import BackingStore

__all__ = ["make_codec", "open_store"]


def make_codec(codec: str | Codec, options: dict[str, Any] | None = None) -> Codec:
    """A codec instance: `codec` itself, or the installed codec of that name built
    with `options`. Raises `PluginNotFoundError` or `ConfigError`."""
    if isinstance(codec, Codec):
        return codec
    if not isinstance(codec, str):
        raise TypeError(
            f"codec is the name of an installed codec or a file_backed.Codec instance, not {type(codec).__name__} "
            f"{codec!r}: a codec class derives from file_backed.Codec (see docs/writing-a-codec.md)"
        )
    cls = get_codec(codec)
    try:
        return cls(**(options or {}))
    except TypeError as error:
        raise ConfigError(f"codec {codec!r}: {error}; it accepts {_describe(_parameters(cls))}") from error


def open_store(
    name: str,
    *,
    codec: str | Codec = "pickle",
    workers: int | None = None,
    plugins: Sequence[object | str] = (),
    on_error: Callable[[BaseException], object] | None = None,
    **options: Any,
) -> BackingStore:
    """Open a `BackingStore` on the installed backend `name`.

    Builds the codec by name (or takes a `Codec` instance), calls the backend
    factory as ``factory(codec=codec, **options)`` and wraps the result. Raises
    `PluginNotFoundError` for unknown names and `ConfigError` for options the
    factory does not accept.
    """
    codec_obj = make_codec(codec)
    factory = get_backend(name)
    accepted = _parameters(factory)
    unknown = sorted(set(options) - set(accepted)) if accepted is not None else []
    if unknown:
        raise ConfigError(
            f"backend {name!r} has no option {', '.join(map(repr, unknown))}; it accepts {_describe(accepted)}"
        )
    backend = factory(codec=codec_obj, **options)
    return BackingStore(backend, workers=workers, plugins=plugins, on_error=on_error)


def _parameters(callable_: Any) -> list[str] | None:
    """The keyword options `callable_` accepts besides ``codec``; None when it takes any."""
    try:
        signature = inspect.signature(callable_)
    except (TypeError, ValueError):
        return None
    names = []
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            return None
        if parameter.name not in ("self", "codec"):
            names.append(parameter.name)
    return names


def _describe(names: list[str] | None) -> str:
    if names is None:
        return "any keyword options"
    return ", ".join(names) or "no options"
