"""The exception hierarchy: every failure the library raises derives from `FileBackedError`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

__all__ = [
    "BackgroundTaskError",
    "BlobNotFoundError",
    "ConfigError",
    "CorruptBlobError",
    "EncodeError",
    "FileBackedError",
    "GuardConflictError",
    "PluginNotFoundError",
    "PluginNotInstalledError",
    "StoreClosedError",
    "StoreForkedError",
    "StoreWriteError",
    "UnhashableArgumentError",
]


class FileBackedError(Exception):
    """Base class of every error raised by file_backed."""


class ConfigError(FileBackedError, ValueError):
    """A configuration (file, mapping or keyword options) is invalid.

    The message names the source, the key path and what was expected.
    """


class PluginNotFoundError(FileBackedError, LookupError):
    """No installed plugin (backend, codec or middleware) has the requested name.

    Attributes
    ----------
    kind:
        ``"backend"``, ``"codec"`` or ``"plugin"``.
    name:
        The name that was asked for.
    installed:
        The names that are installed, sorted.
    detail:
        Why an installed plugin of that name cannot be used (its entry point
        failed to load or breaks its contract); empty when no plugin has the name.
    """

    def __init__(self, kind: str, name: str, installed: Sequence[str], detail: str = "") -> None:
        import difflib

        self.kind = kind
        self.name = name
        self.installed = sorted(installed)
        self.detail = detail
        closest = difflib.get_close_matches(name, self.installed, n=1) if isinstance(name, str) else []
        if detail:
            message = f"{kind} {name!r} cannot be used: {detail}"
            message += f" Other installed {kind}s: {', '.join(self.installed) or '(none)'}."
        else:
            message = f"{kind} {name!r} was not recognized."
            message += f" Choose one of: {', '.join(self.installed) or '(none installed)'}."
            if closest:
                message += f" Did you mean {closest[0]!r}?"
        super().__init__(message)


class PluginNotInstalledError(PluginNotFoundError):
    """The plugin is declared by an installed distribution, but a module it needs
    is an optional dependency that is not installed (the ``numpy`` codec without
    numpy).

    Attributes (besides `PluginNotFoundError`'s)
    --------------------------------------------
    module:
        The missing module.
    hint:
        The command that installs it: ``pip install 'file-backed[numpy]'``.
    """

    def __init__(self, kind: str, name: str, installed: Sequence[str], *, module: str, hint: str) -> None:
        super().__init__(kind, name, installed)
        self.module = module
        self.hint = hint
        self.args = (f"{kind} {name!r} is not installed — {hint} (it needs the module {module!r}).",)


class BlobNotFoundError(FileBackedError, KeyError):
    """The blob of a key is not where the backend looked for it."""

    def __str__(self) -> str:  # KeyError quotes its argument; show the message as written
        return str(self.args[0]) if self.args else ""


class CorruptBlobError(FileBackedError):
    """A blob's bytes do not match its header or checksum; it is never decoded."""


class EncodeError(FileBackedError, TypeError):
    """The codec could not encode a value (an unpicklable object, a type the codec
    does not store). Permanent for that value: an eviction does not retry it
    until the value changes; it stays in memory. The codec's exception is the
    ``__cause__``."""


class StoreWriteError(FileBackedError, OSError):
    """Writing a blob failed in the operating system or the storage service (a
    full disk, a removed temporary area, a lost connection); ``errno`` is the
    original's. The value stays in memory; an eviction retries it later."""


class StoreClosedError(FileBackedError, RuntimeError):
    """The store was closed; no further operation is possible."""


class StoreForkedError(StoreClosedError):
    """The store (or a pool or handle on it) was opened in another process and
    inherited by this one through ``fork``: it is unusable here, so that this
    process never writes, deletes or waits on what belongs to the parent. Open a
    store in the child (``fb.open_store`` / ``fb.open_pool``), or use the
    ``spawn`` or ``forkserver`` start method of `multiprocessing`."""


class GuardConflictError(FileBackedError, RuntimeError):
    """Taking this guard would wait for a guard the same thread holds (``load_mut``
    inside ``load`` of the same item, ``load`` or ``load_mut`` inside
    ``load_mut``, ``write_now`` inside ``load_mut``): it would never return."""


class BackgroundTaskError(ExceptionGroup, FileBackedError):
    """One or more background tasks (eviction writes, deletes) failed.

    Raised by `BackingStore.finished`. It is an `ExceptionGroup`, so
    ``except* OSError`` selects, for instance, the I/O failures among them.
    """

    def __new__(cls, message: str, errors: Sequence[Exception]) -> Self:
        return super().__new__(cls, message, errors)

    def derive(self, excs: Sequence[Exception]) -> BackgroundTaskError:  # type: ignore[override]
        return BackgroundTaskError(self.message, excs)


class UnhashableArgumentError(FileBackedError, TypeError):
    """A memoized function (`file_backed.memoize`) was called with arguments
    that have no stable hash: they cannot be pickled (a lock, an open file, a
    lambda, an `Fb` handle). The function was not called. The pickling error is
    the ``__cause__``; pass such objects through a closure or a global instead,
    or call the undecorated function (``f.__wrapped__``)."""
