"""The hook contract between a `BackingStore` and its backend plugin.

The hooks mirror the Rust traits ``BackingStoreT`` (blob management) and
``Strategy<T>`` (encoding). A store owns one `pluggy.PluginManager` that holds
exactly one backend plugin plus any middleware plugins (``wrapper=True``
hookimpls). Every hook is ``firstresult=True``: the call stops at the first
non-None result.

Hooks are called with keyword arguments only, so an implementation may accept
fewer arguments than the spec names. They may be called from any thread (the
caller's for blocking methods, the store's workers for background work) and
must be thread-safe. The store serialises operations on one key, so a backend
never sees two concurrent calls for the same key, but it does see concurrent
calls for different keys.

Keys are `uuid.UUID` objects, never user text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import uuid

__all__ = ["BACKEND_HOOKS", "HOOKS", "PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "file_backed"

#: The hooks every backend implements (``BackingStoreT`` and ``Strategy``).
BACKEND_HOOKS = (
    "store",
    "load",
    "delete",
    "prepare_path",
    "sanitize_path",
    "persist",
    "register",
    "delete_persisted",
    "sync_persisted",
)
#: Every hook, in the order of this module; `blob_size` and `shutdown` are
#: optional for backends.
HOOKS = (*BACKEND_HOOKS, "blob_size", "shutdown")

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------------------
# Temporary area (BackingStoreT::delete, Strategy::store, Strategy::load)
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def store(key: uuid.UUID, data: Any) -> int | None:
    """Encode `data` with the backend's codec into the temporary area under `key`.

    Must be atomic: a crash or an exception leaves either no blob for `key` or a
    whole one, never a partial one under the final name. The store never calls
    this twice for the same key, and a blob is never mutated after creation.

    Returns the number of bytes written, or None where the backend cannot tell.
    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def load(key: uuid.UUID) -> Any:
    """Decode and return the object stored under `key` in the temporary area.

    Raises `file_backed.BlobNotFoundError` when there is no blob for `key` and
    `file_backed.CorruptBlobError` when its bytes fail their checksum; never
    returns a wrong object. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def delete(key: uuid.UUID) -> None:
    """Delete `key`'s blob from the temporary area.

    Called once the last handle sharing the blob is gone. Deleting a blob that
    is already gone is not an error. Stops at first non-None result.
    """


# ---------------------------------------------------------------------------
# Persisted locations (BackingStoreT::persist, register, sanitize_path, ...)
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def prepare_path(location: Any) -> Any:
    """Turn a user location (`str`, `os.PathLike`, URL) into a persist-path object.

    Creates what the location needs (directories, buckets prefixes) and raises a
    `file_backed.FileBackedError` subclass or `OSError` when it cannot be used.
    The returned object is what the other persisted-location hooks receive as
    `path`/`src_path`/`dest_path`. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def sanitize_path(path: Any) -> Iterable[uuid.UUID]:
    """Clean up `path` and return every key persisted there.

    Removes only what the library itself left behind (partial writes from a
    crash); anything else at `path` is left alone. Returns an iterable of
    `uuid.UUID`. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def persist(dest_path: Any, key: uuid.UUID) -> None:
    """Make the temporary blob of `key` persisted at `dest_path`.

    A hard link where the medium allows one, a copy otherwise; the blob is never
    mutated after creation, so both are equivalent. Must be atomic like `store`.
    The store calls it at most once per key and location while the location
    is tracked. Returns None. Raises `file_backed.BlobNotFoundError` when the
    temporary area holds no blob for `key`. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def register(src_path: Any, key: uuid.UUID) -> None:
    """Make the blob persisted at `src_path` under `key` known to the temporary area.

    A hard link for filesystems; nothing is loaded or decoded. Afterwards `load`
    and `delete` of `key` work as for a stored blob; deleting it from the
    temporary area never touches the persisted copy. Stops at first non-None
    result.
    """


@hookspec(firstresult=True)
def delete_persisted(path: Any, key: uuid.UUID) -> None:
    """Delete `key`'s blob from the persisted location `path`.

    Leaves the temporary area, and blobs registered from `path`, intact.
    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def sync_persisted(path: Any) -> None:
    """Make every earlier `persist` and `delete_persisted` on `path` durable.

    fsync / syncfs on filesystems; a no-op only where the medium is already
    durable when a write returns. Stops at first non-None result.
    """


# ---------------------------------------------------------------------------
# Optional for backends (file_backed additions)
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def blob_size(key: uuid.UUID) -> int | None:
    """The size in bytes of `key`'s blob in the temporary area, or None where it
    cannot be told without reading the blob.

    A pool with a byte budget asks before loading a registered blob whose size
    it does not know yet, to make room before the load allocates. Optional: a
    backend without it makes such loads count only once they are done. Raises
    `file_backed.BlobNotFoundError` when there is no blob for `key`. Stops at
    first non-None result.
    """


@hookspec(firstresult=True)
def shutdown() -> None:
    """Release what the backend holds (connections, a temporary area it created).

    Called once by `BackingStore.close` after all background work finished.
    Optional: a backend with nothing to release need not implement it.
    Stops at first non-None result.
    """
