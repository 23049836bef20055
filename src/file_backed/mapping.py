"""`FBDict`: a mutable mapping with the user's own keys over an `FBPool`."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Hashable, Iterator, MutableMapping
from typing import Any, Generic, Self, TypeVar

from file_backed.errors import BlobNotFoundError
from file_backed.handle import Fb
from file_backed.pool import FBPool
from file_backed.saved import Manifest, check_name, read_manifest, save_collection
from file_backed.store import TrackedPath

__all__ = ["FBDict"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Saved:
    """An entry of an opened collection not registered yet: its key at a location."""

    __slots__ = ("key", "tracked")

    def __init__(self, tracked: TrackedPath, key: uuid.UUID) -> None:
        self.tracked = tracked
        self.key = key


class FBDict(MutableMapping[K, V], Generic[K, V]):
    """A `MutableMapping` whose values live in an `FBPool`, under keys of your own.

    Keys are any hashable objects; each value is an item of `pool` (`Fb`),
    kept in memory or in the pool's store as the pool decides.

    >>> import file_backed as fb
    >>> with fb.open_store("memory") as store:
    ...     d = fb.FBDict(fb.FBPool(store, max_items=2))
    ...     d["a"] = [1, 2]; d["b"] = [3]; d["c"] = [4]   # "a" is evicted to the store
    ...     d["a"], len(d), "b" in d
    ([1, 2], 3, True)

    - ``d[k]`` returns the value, loaded if needed (do not mutate it; use
      ``d.handle(k).load_mut()``).
    - ``d[k] = v`` inserts `v` into the pool; the handle that `k` had before is
      dropped (its blob in the temporary area goes once nothing else holds it).
      ``d[k] = handle`` puts an existing `Fb` of the same pool under `k`.
    - ``del d[k]`` drops the handle; ``d.handle(k)`` gives it.
    - `save` persists every value and the names at a location as a *saved
      collection*; `open` gives it back, in another process too.

    Raises
    ------
    KeyError
        For a key that is not in the mapping.
    BlobNotFoundError, CorruptBlobError
        From ``d[k]`` when the stored value cannot be loaded (the entry stays).

    Notes on thread safety: every method may be called from any thread; each
    single operation (``d[k]``, ``d[k] = v``, ``del d[k]``, ``len``, iteration
    over a snapshot of the keys, `save`) is atomic, and the lock is never held
    across I/O. Compound methods inherited from `MutableMapping` (``pop``,
    ``setdefault``, ``update``) are sequences of those, not atomic as a whole.
    """

    def __init__(self, pool: FBPool[V]) -> None:
        if not isinstance(pool, FBPool):
            raise TypeError(f"FBDict needs an FBPool, got {type(pool).__name__}")
        self._pool = pool
        self._entries: dict[K, Fb[V] | _Saved] = {}
        self._lock = threading.Lock()

    @property
    def pool(self) -> FBPool[V]:
        """The pool holding the values."""
        return self._pool

    # -- the mapping -----------------------------------------------------------------

    def __getitem__(self, key: K) -> V:
        return self.handle(key).get()

    def __setitem__(self, key: K, value: V | Fb[V]) -> None:
        if isinstance(value, Fb):
            if value.pool is not self._pool:
                raise ValueError(f"{value!r} belongs to another pool than this FBDict's")
            handle: Fb[V] = value
        else:
            handle = self._pool.insert(value)
        with self._lock:
            old = self._entries.get(key)
            self._entries[key] = handle
        del old  # dropped outside the lock

    def __delitem__(self, key: K) -> None:
        with self._lock:
            old = self._entries.pop(key)
        del old

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __iter__(self) -> Iterator[K]:
        with self._lock:
            keys = list(self._entries)
        return iter(keys)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    # `Mapping.get`, `pop` and `setdefault` treat any KeyError from ``d[k]`` as a
    # missing key; a value that cannot be loaded (`BlobNotFoundError` is a
    # KeyError) must raise instead of passing for one.

    def get(self, key: K, default: Any = None) -> Any:
        """``d[key]`` if `key` is in the mapping, else `default`."""
        with self._lock:
            if key not in self._entries:
                return default
        return self[key]

    def pop(self, key: K, *default: Any) -> Any:
        """Remove `key` and return its value (loaded); `default` if given and
        `key` is missing, else `KeyError`."""
        if len(default) > 1:
            raise TypeError(f"pop expected at most 2 arguments, got {1 + len(default)}")
        with self._lock:
            present = key in self._entries
        if not present:
            if default:
                return default[0]
            raise KeyError(key)
        value = self[key]
        with self._lock:
            self._entries.pop(key, None)
        return value

    def setdefault(self, key: K, default: Any = None) -> Any:
        """``d[key]`` if `key` is in the mapping, else set it to `default` and return that."""
        with self._lock:
            present = key in self._entries
        if present:
            return self[key]
        self[key] = default
        return default

    def clear(self) -> None:
        """Drop every entry at once."""
        with self._lock:
            old = self._entries
            self._entries = {}
        del old

    def __repr__(self) -> str:
        return f"<FBDict {len(self)} items, pool={self._pool!r}>"

    def __reduce__(self) -> Any:
        raise TypeError("an FBDict cannot be pickled; save it (d.save(tracked, name=...)) and open it instead")

    # -- handles -----------------------------------------------------------------------

    def handle(self, key: K) -> Fb[V]:
        """The `Fb` handle of `key`'s value (registered now if the entry comes from
        a saved collection and was not used yet). Raises `KeyError` for a missing
        key and `BlobNotFoundError` when a saved value is no longer at its location."""
        with self._lock:
            entry = self._entries[key]
        if isinstance(entry, Fb):
            return entry
        handle = self._pool.register(entry.tracked, entry.key)
        if handle is None:
            raise BlobNotFoundError(f"the value of {key!r} (blob {entry.key}) is no longer at {entry.tracked.location}")
        with self._lock:
            if self._entries.get(key) is entry:
                self._entries[key] = handle
        return handle

    # -- saved collections -------------------------------------------------------------------

    def save(self, tracked: TrackedPath, *, name: str, max_parallel: int = 8) -> None:
        """Persist every value and the names at `tracked` as the saved collection
        `name`, replacing what was saved there under that name.

        Crash-atomic: killed at any point, the location holds either the
        previous save of `name` or this one, whole; values that this save drops
        from the collection are deleted from the location (unless another
        collection saved there references them). The names must be `str`
        (`TypeError` otherwise). Values already persisted at `tracked` are not
        written again. See `file_backed.saved` for the protocol.

        Two processes must not save to one location at the same time; within a
        process, saves to a location are serialised.
        """
        check_name(name)
        with self._lock:
            snapshot = list(self._entries.items())
        entries: list[tuple[Any, Fb[V] | uuid.UUID]] = []
        for key, entry in snapshot:
            if isinstance(entry, _Saved):
                if entry.key in tracked:
                    entries.append((key, entry.key))
                    continue
                entries.append((key, self.handle(key)))
            else:
                entries.append((key, entry))
        save_collection(self._pool.store, tracked, name, entries, max_parallel=max_parallel)

    async def asave(self, tracked: TrackedPath, *, name: str, max_parallel: int = 8) -> None:
        """Coroutine twin of `save`."""
        await self._pool.store.call(lambda: self.save(tracked, name=name, max_parallel=max_parallel))

    @classmethod
    def open(cls, pool: FBPool[V], tracked: TrackedPath, *, name: str) -> Self:
        """The collection saved at `tracked` under `name` (its newest complete
        save), with nothing loaded: each value is registered into `pool` when
        first used.

        Raises `CollectionNotFoundError` (a `KeyError`) when nothing is saved
        under `name` there. A value that a later save elsewhere drops is deleted
        from the location; an entry not used before that raises
        `BlobNotFoundError` when used.
        """
        manifest = read_manifest(pool.store, tracked, name)
        return cls._from_manifest(pool, tracked, manifest)

    @classmethod
    async def aopen(cls, pool: FBPool[V], tracked: TrackedPath, *, name: str) -> Self:
        """Coroutine twin of `open`."""
        manifest = await pool.store.call(read_manifest, pool.store, tracked, name)
        return cls._from_manifest(pool, tracked, manifest)

    @classmethod
    def _from_manifest(cls, pool: FBPool[V], tracked: TrackedPath, manifest: Manifest) -> Self:
        collection = cls(pool)
        entries: dict[Any, Fb[V] | _Saved] = {
            name: _Saved(tracked, key) for name, key in zip(manifest.names, manifest.keys, strict=True)
        }
        collection._entries = entries
        return collection
