"""`FBPool`: the in-memory pool of items backed by a `BackingStore`."""

from __future__ import annotations

import collections
import threading
import uuid
import weakref
from collections.abc import Callable
from typing import Any, Generic, Self, TypeAlias, TypeVar

import attrs

from file_backed.handle import ABSENT, Fb, ReadGuard, WriteGuard
from file_backed.lru import SegmentedLRU
from file_backed.sizing import default_sizeof
from file_backed.store import BackingStore, Token, TrackedPath, as_key
from file_backed.trimming import release_free_memory, trimming_available

__all__ = ["FBPool", "PoolStats"]

T = TypeVar("T")
_ItemRef: TypeAlias = "weakref.ref[Fb[Any]]"  # the LRU's entries


@attrs.frozen
class PoolStats:
    """Counters of one pool since it was created (a snapshot).

    hits: accesses that found the value in memory.
    misses: accesses that had to load it.
    loads: values read back from the store.
    stores: blobs written to the temporary area (evictions and `write_now`).
    evictions: values dropped from memory.
    eviction_failures: eviction writes that failed; their items stayed in memory.
    items: values in memory and in the LRU order now.
    bytes: their size as measured by the pool's ``sizeof``.
    bytes_stored: bytes written to the temporary area, as the backend reports them.
    bytes_loaded: bytes of loaded values, as measured by ``sizeof``.
    """

    hits: int = 0
    misses: int = 0
    loads: int = 0
    stores: int = 0
    evictions: int = 0
    eviction_failures: int = 0
    items: int = 0
    bytes: int = 0
    bytes_stored: int = 0
    bytes_loaded: int = 0


class FBPool(Generic[T]):
    """Keeps recently used items in memory and the rest in a `BackingStore`.

    Parameters
    ----------
    store:
        Where evicted items go.
    max_items:
        How many items stay in memory (at least 1), split in two LRU halves as
        in the Rust crate (see `file_backed.lru.SegmentedLRU`).
    max_bytes:
        Optional bound on the bytes in memory, as measured by `sizeof`. An
        item larger than the whole budget goes straight to the store.
    sizeof:
        Measures an item's bytes; default `file_backed.sizing.default_sizeof`.
    trim_memory:
        With `max_bytes`: each time evictions have freed a twentieth of the budget,
        a background task returns the allocator's free pages to the operating
        system (glibc ``malloc_trim``), so the resident set stays near the
        budget instead of keeping every freed buffer. It costs load speed
        (fresh pages are faulted in again); pass False to keep the pages.

    Items held by a guard, and items whose eviction write is running, stay in
    memory outside the budget until released or written. `insert` does not
    wait for the eviction write it causes; it waits only while the running
    eviction writes hold more than a twentieth of `max_bytes` (without a byte
    budget: more than `max_items` items or twice the store's worker threads,
    whichever is more), so memory stays bounded when inserts
    outpace the store. A failed eviction write keeps its item in memory and
    retries it on the next eviction.

    Notes on thread safety: every method may be called from any thread; the
    item states and the LRU order are guarded by one lock, never held across
    I/O.
    """

    def __init__(
        self,
        store: BackingStore,
        max_items: int,
        max_bytes: int | None = None,
        sizeof: Callable[[Any], int] | None = None,
        *,
        trim_memory: bool = True,
    ) -> None:
        if not isinstance(store, BackingStore):
            raise TypeError(f"FBPool needs a BackingStore, got {type(store).__name__}")
        self.store = store
        self._lru: SegmentedLRU[_ItemRef] = SegmentedLRU(max_items, max_bytes)
        self._sizeof = sizeof if sizeof is not None else default_sizeof
        self._lock = threading.Lock()
        self._dead: collections.deque[_ItemRef] = collections.deque()
        self._counts = collections.Counter[str]()
        # Eviction writes running now, and the condition `insert` waits on
        # while they hold more than the backlog limit.
        self._backlog_items = 0
        self._backlog_bytes = 0
        self._backlog_done = threading.Condition(self._lock)
        # Trim after this many bytes were dropped from memory (None: never).
        self._trim_every = max_bytes // 20 if trim_memory and max_bytes and trimming_available() else None
        self._dropped_since_trim = 0
        self._trimming = False

    @property
    def max_items(self) -> int:
        return self._lru.max_items

    @property
    def max_bytes(self) -> int | None:
        return self._lru.max_bytes

    def __len__(self) -> int:
        """The number of items in memory in the LRU order."""
        with self._lock:
            self._purge_locked()
            return len(self._lru)

    @property
    def stats(self) -> PoolStats:
        """A snapshot of the pool's counters."""
        with self._lock:
            self._purge_locked()
            return PoolStats(items=len(self._lru), bytes=self._lru.nbytes, **self._counts)

    def __repr__(self) -> str:
        return f"<FBPool {len(self)}/{self.max_items} items, store={self.store!r}>"

    def close(self) -> None:
        """Close the pool's store (`BackingStore.close`). For a pool that owns its
        store, such as one from `file_backed.open_pool`; other pools on the same
        store can no longer load anything afterwards."""
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- creating handles ----------------------------------------------------------

    def insert(self, value: T) -> Fb[T]:
        """Put `value` in memory under a new key. Returns without waiting for the
        eviction write this causes; waits first while the backlog of running
        eviction writes is over its limit (see the class notes)."""
        self.store._check_open()
        size = self._sizeof(value)
        item: Fb[T] = Fb(self, uuid.uuid4(), value, None, size)
        with self._lock:
            while self._backlog_over_locked():
                self._backlog_done.wait()
            self._purge_locked()
            if self._lru.max_bytes is not None and size > self._lru.max_bytes:
                self._evict_locked(item)
            else:
                self._enter_locked(item)
        return item

    def _backlog_over_locked(self) -> bool:
        if self._lru.max_bytes is not None:
            return self._backlog_bytes > self._lru.max_bytes // 20
        return self._backlog_items > max(self._lru.max_items, 2 * self.store.workers)

    def register(self, tracked: TrackedPath, key: uuid.UUID | str) -> Fb[T] | None:
        """A handle to `key` persisted at `tracked`, not loaded; None when `key` is
        not persisted there. Registering a key twice shares its blob."""
        key = as_key(key)
        token = self.store.register_blob(tracked, key)
        if token is None:
            return None
        return Fb(self, key, ABSENT, token, 0)

    async def aregister(self, tracked: TrackedPath, key: uuid.UUID | str) -> Fb[T] | None:
        """Coroutine twin of `register`."""
        return await self.store.call(self.register, tracked, key)

    # -- guards (called by Fb) -------------------------------------------------------

    def _acquire_read(self, item: Fb[T], *, wait: bool, rescue: bool) -> ReadGuard[T] | None:
        with self._lock:
            self._purge_locked()
            while True:
                if not item._writer:
                    if item._value is not ABSENT:
                        if not rescue and self._being_evicted(item):
                            return None
                        item._readers += 1
                        self._counts["hits"] += 1
                        self._enter_locked(item)
                        return ReadGuard(item, item._value)
                    if not item._loading and wait:
                        break
                if not wait:
                    return None
                self._wait_locked(item)
            token = self._start_load_locked(item)
        return self._load_unlocked(item, token, guard="read")

    def _acquire_write(self, item: Fb[T], *, wait: bool) -> WriteGuard[T] | None:
        token: Token | None = None
        with self._lock:
            self._purge_locked()
            while True:
                free = not item._writer and not item._loading and not item._writing
                if free and item._value is not ABSENT and item._readers == 0:
                    if not wait and self._being_evicted(item):
                        return None
                    self._counts["hits"] += 1
                    item._writer = True
                    self._enter_locked(item)
                    break
                if free and item._value is ABSENT and wait:
                    token = self._start_load_locked(item)
                    break
                if not wait:
                    return None
                self._wait_locked(item)
        if token is not None:
            self._load_unlocked(item, token, guard="write")
        with self._lock:  # the item is write-locked: nobody else changes it now
            old_token, item._token = item._token, None
            item._key = uuid.uuid4()
            guard = WriteGuard(item, item._value)
        del old_token  # outside the lock: its finalizer defers the blob's deletion
        return guard

    def _start_load_locked(self, item: Fb[T]) -> Token:
        token = item._token
        if token is None:
            raise RuntimeError(f"{item!r} has neither a value in memory nor a stored blob")
        item._loading = True
        self._counts["misses"] += 1
        return token

    def _load_unlocked(self, item: Fb[T], token: Token, *, guard: str) -> ReadGuard[T] | None:
        """Load `item` (marked loading by `_start_load_locked`), make it resident,
        take the `guard` (``"read"``: a read guard, returned; ``"write"``: the
        write lock) and enter it in the LRU order, all in one step so the item
        cannot be evicted before it is guarded. The caller does not hold the lock."""
        try:
            value = self.store.load_blob(token)
            size = self._sizeof(value)
        except BaseException:
            with self._lock:
                item._loading = False
                self._notify_locked(item)
            raise
        with self._lock:
            item._loading = False
            item._value = value
            item._size = size
            self._counts["loads"] += 1
            self._counts["bytes_loaded"] += size
            if guard == "read":
                item._readers += 1
            else:
                item._writer = True
            self._enter_locked(item)
            self._notify_locked(item)
        return ReadGuard(item, value) if guard == "read" else None

    def _release_read(self, item: Fb[T]) -> None:
        with self._lock:
            item._readers -= 1
            if item._readers == 0 and (item._evict_on_release or item._cond is not None):
                self._after_release_locked(item)

    def _release_write(self, item: Fb[T], value: T) -> None:
        size = self._sizeof(value)
        with self._lock:
            item._writer = False
            item._value = value
            if size != item._size:
                item._size = size
                if self._lru.remove(item._ref):
                    self._enter_locked(item)
            self._after_release_locked(item)

    def _after_release_locked(self, item: Fb[T]) -> None:
        if item._evict_on_release and item._readers == 0 and not item._writer:
            item._evict_on_release = False
            self._evict_locked(item)
        self._notify_locked(item)

    def _get(self, item: Fb[T]) -> T:
        with self._lock:
            if item._value is not ABSENT and not item._writer:
                self._counts["hits"] += 1
                self._enter_locked(item)
                return item._value  # type: ignore[no-any-return]
        guard = self._acquire_read(item, wait=True, rescue=True)
        assert guard is not None, "a waiting acquisition always returns a guard"
        with guard as value:
            return value

    # -- writing and persisting --------------------------------------------------------

    def _write_now(self, item: Fb[T]) -> Token:
        with self._lock:
            while True:
                self.store._check_open()
                if item._token is not None:
                    return item._token
                if not (item._writing or item._writer or item._loading):
                    break
                self._wait_locked(item)
            item._writing = True
            item._drop_after_write = False
            key, value = item._key, item._value
        return self._write(item._ref, key, value, False)  # type: ignore[return-value]

    def _persist(self, item: Fb[T], tracked: TrackedPath) -> uuid.UUID:
        token = self._write_now(item)
        self.store.persist_blob(token, tracked)
        return token.key

    def _write_back(self, ref: _ItemRef, key: uuid.UUID, value: Any, size: int) -> None:
        """The background eviction write of an item of `size` bytes."""
        try:
            self._write(ref, key, value, True)
        finally:
            with self._lock:
                self._backlog_items -= 1
                self._backlog_bytes -= size
                self._backlog_done.notify_all()

    def _write(self, ref: _ItemRef, key: uuid.UUID, value: Any, background: bool) -> Token | None:
        """Write `value` under `key` for the item behind `ref`, which the caller
        marked as writing. Runs on a worker for evictions, on the caller's thread
        for `write_now`."""
        try:
            if background and ref() is None:
                token, written = None, None  # the handle is gone: nothing to keep
            else:
                token, written = self.store.store_blob(key, value)
        except BaseException:
            with self._lock:
                if background:
                    self._counts["eviction_failures"] += 1
                item = ref()
                if item is not None:
                    item._writing = False
                    if item._drop_after_write and item._key == key and self._idle(item):
                        item._drop_after_write = False
                        self._lru.insert_last(item._ref, item._size)  # retried by the next eviction
                    self._notify_locked(item)
            raise
        with self._lock:
            if token is not None:
                self._counts["stores"] += 1
                self._counts["bytes_stored"] += written or 0
            item = ref()
            if item is not None:
                item._writing = False
                if item._key == key:
                    item._token = token
                    if item._drop_after_write and self._idle(item) and item._ref not in self._lru:
                        self._drop_value_locked(item)
                item._drop_after_write = False
                self._notify_locked(item)
        return token

    # -- eviction (under the lock) ---------------------------------------------------------

    def _enter_locked(self, item: Fb[T]) -> None:
        """Record an access: enter or move `item` in the LRU order and evict what
        falls off. Cancels a pending eviction of `item`."""
        item._evict_on_release = False
        item._drop_after_write = False
        victims = self._lru.insert(item._ref, item._size)
        for ref in victims:
            victim = ref()
            if victim is not None:
                self._evict_locked(victim)

    def _evict_locked(self, item: Fb[T]) -> None:
        """`item` left the LRU order: drop its value, write it first, or defer
        until its guards are released."""
        if item._value is ABSENT:
            return
        if item._readers or item._writer:
            item._evict_on_release = True
        elif item._token is not None:
            self._drop_value_locked(item)
        elif item._writing:
            item._drop_after_write = True
        else:
            item._writing = True
            item._drop_after_write = True
            self._backlog_items += 1
            self._backlog_bytes += item._size
            self.store.spawn(self._write_back, item._ref, item._key, item._value, item._size)

    def _drop_value_locked(self, item: Fb[T]) -> None:
        item._value = ABSENT
        self._counts["evictions"] += 1
        if self._trim_every is not None:
            self._dropped_since_trim += item._size
            if not self._trimming and self._dropped_since_trim >= self._trim_every:
                self._trimming = True
                self._dropped_since_trim = 0
                self.store.spawn(self._trim)

    def _trim(self) -> None:
        try:
            release_free_memory()
        finally:
            with self._lock:
                self._trimming = False

    @staticmethod
    def _idle(item: Fb[T]) -> bool:
        return item._readers == 0 and not item._writer

    def _being_evicted(self, item: Fb[T]) -> bool:
        return item._ref not in self._lru and (item._drop_after_write or item._evict_on_release)

    def _forget(self, ref: _ItemRef) -> None:
        """Weakref callback of a dead handle (may run in any thread, at any point)."""
        self._dead.append(ref)

    def _purge_locked(self) -> None:
        dead = self._dead
        while dead:
            self._lru.remove(dead.popleft())

    def _wait_locked(self, item: Fb[T]) -> None:
        if item._cond is None:
            item._cond = threading.Condition(self._lock)
        item._cond.wait()

    @staticmethod
    def _notify_locked(item: Fb[T]) -> None:
        if item._cond is not None:
            item._cond.notify_all()
