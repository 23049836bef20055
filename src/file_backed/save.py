"""`save`: persist a set of handles as the new contents of a location (Rust ``blocking_save``)."""

from __future__ import annotations

import concurrent.futures
import inspect
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from file_backed.handle import Fb
from file_backed.store import BackingStore, TrackedPath

__all__ = ["asave", "save"]

Commit = Callable[[list[uuid.UUID]], object]


def save(
    store: BackingStore,
    handles: Iterable[Fb[Any]],
    tracked: TrackedPath,
    commit: Commit | None = None,
    max_parallel: int = 8,
) -> list[uuid.UUID]:
    """Make `handles` the contents of `tracked`, crash-safely.

    1. Persist every handle (at most `max_parallel` at once), skipping those
       already persisted there, and make that durable.
    2. Call ``commit(keys)`` with the keys in the order of `handles`: the place
       to record them (a manifest, a database row). If it raises, nothing is
       deleted, so the previous save stays intact.
    3. Delete the keys persisted at `tracked` that are not in `keys`, and make
       that durable.

    Returns the keys. `tracked` belongs to this save: keys persisted there by
    other means are deleted in step 3.
    """
    keys = _persist_all(store, list(handles), tracked, max_parallel)
    if commit is not None:
        commit(keys)
    _prune(store, tracked, keys)
    return keys


async def asave(
    store: BackingStore,
    handles: Iterable[Fb[Any]],
    tracked: TrackedPath,
    commit: Callable[[list[uuid.UUID]], object | Awaitable[object]] | None = None,
    max_parallel: int = 8,
) -> list[uuid.UUID]:
    """Coroutine twin of `save`; `commit` may be a plain function or a coroutine function."""
    keys = await store.call(_persist_all, store, list(handles), tracked, max_parallel)
    if commit is not None:
        outcome = commit(keys)
        if inspect.isawaitable(outcome):
            await outcome
    await store.call(_prune, store, tracked, keys)
    return keys


def _persist_all(
    store: BackingStore, handles: Sequence[Fb[Any]], tracked: TrackedPath, max_parallel: int
) -> list[uuid.UUID]:
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
    for handle in handles:
        if handle.pool.store is not store:
            raise ValueError(f"{handle!r} belongs to another store")
    if max_parallel == 1 or len(handles) <= 1:
        keys = [handle.persist(tracked) for handle in handles]
    else:
        with concurrent.futures.ThreadPoolExecutor(max_parallel, thread_name_prefix="file_backed-save") as executor:
            keys = list(executor.map(lambda handle: handle.persist(tracked), handles))
    store.fsync(tracked)
    return keys


def _prune(store: BackingStore, tracked: TrackedPath, keys: list[uuid.UUID]) -> None:
    stale = tracked.keys() - set(keys)
    for key in stale:
        store.delete_persisted(tracked, key)
    if stale:
        store.fsync(tracked)
