"""`FBPool`: the in-memory pool of items backed by a `BackingStore`."""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import uuid
import weakref
from collections.abc import Callable
from typing import Any, Generic, Literal, Self, TypeAlias, TypeVar, overload

import attrs

from file_backed import forking
from file_backed.buffers import Allocation, collecting, is_mapping, sole_owner
from file_backed.errors import EncodeError, GuardConflictError
from file_backed.handle import ABSENT, Fb, ReadGuard, WriteGuard
from file_backed.keys import new_key
from file_backed.lru import SegmentedLRU
from file_backed.sizes import parse_size
from file_backed.sizing import default_sizeof
from file_backed.store import BackingStore, Token, TrackedPath, as_key
from file_backed.trimming import release_free_memory, trimming_available

__all__ = ["FBPool", "PoolStats"]

logger = logging.getLogger("file_backed")

T = TypeVar("T")
_ItemRef: TypeAlias = "weakref.ref[Fb[Any]]"  # the LRU's entries

#: Load buffers smaller than this are not kept for reuse: allocating them is cheap.
_REUSE_FROM = 64 * 1024
#: Without a byte budget (the pool then never gives free memory back), only
#: buffers larger than this are kept: smaller ones come from the allocator's
#: heap, which recycles freed memory as well as the pool would (a 64 KiB miss
#: costs 1.5 µs less without the bookkeeping), while larger ones (above
#: glibc's default mmap threshold) come from fresh mappings or from thread
#: arenas it trims, whose pages cost a fault each (1 MiB loads on 4 threads:
#: 4 400 a second without reuse, 6 500 with).
_REUSE_UNBUDGETED_ABOVE = 128 * 1024
#: Without a byte budget, at most this many buffers are kept for reuse.
_REUSE_COUNT = 4
#: How many of the oldest unwritten items are searched for one that can be
#: written ahead of its eviction.
_WRITE_AHEAD_WINDOW = 4
#: Under a byte budget that evicts, items not stored yet may hold at most this
#: share of the budget (1/n); older ones are written ahead of their eviction.
_UNWRITTEN_SHARE = 8


class WriteCharge:
    """The bytes a running write of an item holds in the pool's eviction backlog.

    An eviction write holds its item's size from the start; a write that began
    while the item stayed in memory (`Fb.write_now`, a write ahead of eviction)
    holds nothing until the item is evicted while it runs. Released when the
    write ends. `nbytes` is None while it holds nothing.
    """

    __slots__ = ("nbytes",)

    def __init__(self) -> None:
        self.nbytes: int | None = None


@attrs.frozen
class PoolStats:
    """Counters of one pool since it was created (a snapshot).

    hits: accesses that found the value in memory.
    misses: accesses that had to load it.
    loads: values read back from the store.
    stores: blobs written to the temporary area (evictions, writes ahead of
        eviction and `write_now`).
    evictions: values dropped from memory.
    eviction_failures: eviction writes that failed; their items stayed in memory.
    items: values in memory and in the LRU order now.
    bytes: their size as measured by the pool's ``sizeof`` (measured only with
        ``max_bytes``; 0 without a byte budget).
    bytes_stored: bytes written to the temporary area, as the backend reports them.
    bytes_loaded: bytes of blobs read back (the buffers the backend read them
        into, or the blob sizes the store recorded).
    buffers_reused: loads that read into the buffer of a dropped value instead
        of fresh memory.

    ``print(pool.stats)`` shows them as a table with the hit rate and sizes in
    KiB/MiB/GiB; ``repr`` shows the raw counters.
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
    buffers_reused: int = 0

    def __str__(self) -> str:
        """A table for people: hit rate, items and bytes in memory, stores and
        loads with their sizes in KiB/MiB/GiB (`file_backed.stats_table`)."""
        from file_backed.stats_table import format_stats

        return format_stats(self)


#: The counters of `PoolStats` that the pool keeps in `FBPool._counts`.
_COUNTED = tuple(field.name for field in attrs.fields(PoolStats) if field.name not in ("hits", "items", "bytes"))


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
        Optional bound on the bytes in memory, as measured by `sizeof`: an int
        or text with a unit (``"2 GiB"``). The LRU halves are then measured in
        bytes too, so the least recently used items go first. An item larger
        than the whole budget goes straight to the store.
    sizeof:
        Measures an item's bytes; default `file_backed.sizing.default_sizeof`.
        Called only when there is a byte budget (and by `Fb.nbytes`); must
        return a non-negative int.
    trim_memory:
        With `max_bytes`: each time evictions have freed a twentieth of the budget,
        a background task returns the allocator's free pages to the operating
        system (glibc ``malloc_trim``), so the resident set stays near the
        budget instead of keeping every freed buffer. Pass False to keep them.

    How the byte budget holds: the values in the LRU order, the eviction
    writes still running, the loads in progress (counted from the blob's size
    before they allocate) and the buffers kept for reuse together stay within
    `max_bytes`. A load makes room before it reads, so concurrent loads from
    threads and coroutines do not overshoot. Items held by a guard are outside
    the budget until released. A buffer that a loaded value used is kept for the
    next load of a blob of about the same size once the value is dropped and
    nothing else references it, so reloading under a budget needs no fresh
    memory from the operating system.

    Once it evicts under a byte budget, the pool writes the items it has not
    written yet ahead of their eviction, oldest first, until those left hold
    at most an eighth of the budget (they stay in memory), so evicting rarely
    waits for a write.

    `insert` does not wait for the eviction write it causes; it waits only
    while the running eviction writes hold more than a twentieth of `max_bytes`
    (without a byte budget: more than `max_items` items or twice the store's
    worker threads, whichever is more), so memory stays bounded when inserts
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
        max_bytes: int | str | None = None,
        sizeof: Callable[[Any], int] | None = None,
        *,
        trim_memory: bool = True,
    ) -> None:
        if not isinstance(store, BackingStore):
            raise TypeError(f"FBPool needs a BackingStore, got {type(store).__name__}")
        self.store = store
        self._lru: SegmentedLRU[_ItemRef] = SegmentedLRU(_as_max_items(max_items), _as_max_bytes(max_bytes))
        self._sizeof = sizeof if sizeof is not None else default_sizeof
        self._lock = threading.Lock()
        self._dead: collections.deque[_ItemRef] = collections.deque()
        # The weak reference callback of every handle (no object per handle):
        # a dead handle's entry is purged from the LRU order under the lock.
        self._forget: Callable[[_ItemRef], None] = self._dead.append
        # A dict of every counter, not a Counter: `+=` on a Counter's item costs
        # 2.5x as much, and a miss counts four times.
        self._counts: dict[str, int] = dict.fromkeys(_COUNTED, 0)
        # Hits apart from `_counts`: drawn from a counter, as `next` on it is
        # atomic, so `Fb.get` counts a hit in the front half without the lock.
        # `stats` reads it by drawing too, and subtracts its own draws.
        self._hit_count = itertools.count()
        self._hit_count_reads = 0
        # Eviction writes running now, and the condition `insert` waits on
        # while they hold more than the backlog limit.
        self._backlog_items = 0
        self._backlog_bytes = 0
        self._backlog_done = threading.Condition(self._lock)
        self._writing_ahead = 0
        # With a byte budget: the items in memory that are neither stored nor
        # being written, oldest first, with the bytes each counts (`_unwritten_bytes`).
        self._unwritten: dict[_ItemRef, int] = {}
        self._unwritten_bytes = 0
        # Bytes that loads in progress will hold once loaded.
        self._reserved = 0
        # Buffers of dropped values, for reuse by later loads, each with the
        # bytes it counts against the budget (the size of the value it held).
        self._reusable: list[tuple[Allocation, int]] = []
        self._reusable_bytes = 0
        # Eviction writes that `insert` or a load runs itself once it released
        # the lock (a list only while one holds the lock), and the mean blob
        # size that decides whether it does.
        self._inline_writes: list[tuple[Any, ...]] | None = None
        self._mean_written: float | None = None
        self._trim_memory = trim_memory
        self._trim_every: int | None = None
        self._dropped_since_trim = 0
        self._trimming = False
        # Bytes dropped since a trim last finished (one may be running).
        self._untrimmed = 0
        self._set_trim_interval()

    # -- budget ------------------------------------------------------------------------

    @property
    def max_items(self) -> int:
        """How many items stay in memory; setting it evicts down to it before returning."""
        return self._lru.max_items

    @max_items.setter
    def max_items(self, value: int) -> None:
        self._set_limits(_as_max_items(value), self._lru.max_bytes)

    @property
    def max_bytes(self) -> int | None:
        """The byte budget (None: none). Settable to an int, text with a unit, or
        None; shrinking evicts down to it before returning."""
        return self._lru.max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int | str | None) -> None:
        max_bytes = _as_max_bytes(value)
        if max_bytes is not None and self._lru.max_bytes is None:
            self._measure_resident()
        self._set_limits(self._lru.max_items, max_bytes)

    def _set_limits(self, max_items: int, max_bytes: int | None) -> None:
        with self._lock:
            self._purge_locked()
            was_unbounded = self._lru.max_bytes is None
            if max_bytes is None:
                self._unwritten.clear()
                self._unwritten_bytes = 0
            self._evict_all_locked(self._lru.set_limits(max_items, max_bytes))
            if was_unbounded and max_bytes is not None:
                for ref in self._lru.least_recent():
                    item = ref()
                    if item is not None:
                        self._count_unwritten_locked(item)
            self._set_trim_interval()
            self._fit_reusable_locked()
            while self._backlog_items:
                self._backlog_done.wait()

    def _measure_resident(self) -> None:
        """Measure the items in memory that were entered without a size."""
        with self._lock:
            unmeasured = [(item, item._value) for item in map(_live, self._lru.order()) if item and item._size < 0]
        sizes = [(item, value, self._measure(value)) for item, value in unmeasured]
        with self._lock:
            for item, value, size in sizes:
                if item._value is value:
                    item._size = size
                    self._lru.set_size(item._ref, size)
        del unmeasured, sizes

    def _set_trim_interval(self) -> None:
        max_bytes = self._lru.max_bytes
        self._trim_every = max_bytes // 20 if self._trim_memory and max_bytes and trimming_available() else None

    def _measure(self, value: Any) -> int:
        size = self._sizeof(value)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(
                f"sizeof returned {size!r} for a {type(value).__name__}; it must return a non-negative int"
            )
        return size

    def __len__(self) -> int:
        """The number of items in memory in the LRU order."""
        self.store._check_process()
        with self._lock:
            self._purge_locked()
            return len(self._lru)

    @property
    def stats(self) -> PoolStats:
        """A snapshot of the pool's counters."""
        self.store._check_process()
        with self._lock:
            self._purge_locked()
            hits = next(self._hit_count) - self._hit_count_reads
            self._hit_count_reads += 1
            return PoolStats(items=len(self._lru), bytes=self._lru.nbytes, hits=hits, **self._counts)

    def __repr__(self) -> str:
        return f"<FBPool {len(self)}/{self.max_items} items, store={self.store!r}>"

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pool's store (`BackingStore.close`). For a pool that owns its
        store, such as one from `file_backed.open_pool`; other pools on the same
        store can no longer load anything afterwards."""
        self.store.close()

    async def aclose(self) -> None:
        """Coroutine twin of `close`."""
        import asyncio

        await asyncio.to_thread(self.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- creating handles ----------------------------------------------------------

    def insert(self, value: T) -> Fb[T]:
        """Put `value` in memory under a new key. Returns without waiting for the
        eviction write this causes; waits first while the backlog of running
        eviction writes is over its limit (see the class notes)."""
        item = self._new_item(value)
        with self._lock:
            if not self._small_blobs_locked():
                self._admit_waiting_locked(item)
                return item
            while self._backlog_over_locked():
                self._backlog_done.wait()
            writes = self._collecting_writes_locked(True, self._admit_locked, item)
        self._write_here(writes)
        return item

    def _small_blobs_locked(self) -> bool:
        """Whether the blobs written so far are small enough on average that the
        thread evicting an item writes it itself (handing it to a worker thread
        would cost more than the write)."""
        mean = self._mean_written
        return mean is not None and mean <= self.store.cheap_writes_up_to

    def _collecting_writes_locked(
        self, inline: bool, enter: Callable[[Fb[T]], None], item: Fb[T]
    ) -> list[tuple[Any, ...]]:
        """Call ``enter(item)``; the eviction writes it causes are returned (when
        `inline`) for `_write_here` to run once the lock is released, instead of
        going to the worker threads."""
        writes: list[tuple[Any, ...]] = []
        if inline:
            self._inline_writes = writes
        try:
            enter(item)
        finally:
            self._inline_writes = None
        return writes

    def _write_here(self, writes: list[tuple[Any, ...]]) -> None:
        """Run on this thread the eviction writes collected under the lock, after
        the deletes queued before them (the space they free comes first)."""
        if writes:
            self.store.run_deferred_here()
        for write in writes:
            self.store.run_here(self._write_back, *write)

    async def ainsert(self, value: T) -> Fb[T]:
        """Coroutine twin of `insert`: waits for the eviction backlog on the
        store's call threads, never blocking the event loop."""
        item = self._new_item(value)
        with self._lock:
            if not self._backlog_over_locked() and self._make_room_for_locked(item, wait=False):
                self._admit_locked(item)
                return item
        await self.store.call(self._admit_when_possible, item)
        return item

    def _new_item(self, value: T) -> Fb[T]:
        self.store._check_open()
        size = self._measure(value) if self._lru.max_bytes is not None else -1
        return Fb(self, new_key(), value, None, size)

    def _admit_when_possible(self, item: Fb[T]) -> None:
        with self._lock:
            self._admit_waiting_locked(item)

    def _admit_waiting_locked(self, item: Fb[T]) -> None:
        """Admit `item` once the eviction backlog is within its limit and, with a
        byte budget, there is room for it (waiting, the lock released, for
        eviction writes)."""
        while self._backlog_over_locked():
            self._backlog_done.wait()
        self._make_room_for_locked(item, wait=True)
        self._admit_locked(item)

    def _make_room_for_locked(self, item: Fb[T], *, wait: bool) -> bool:
        """With a byte budget, make room for the new `item` before it enters:
        evict, and with `wait` wait for the eviction writes, until the pool's
        values, the writes in progress and `item` fit in the budget (an evicted
        value not stored yet stays in memory until its write is done). Returns
        whether they fit."""
        max_bytes = self._lru.max_bytes
        if max_bytes is None or item._size > max_bytes:
            return True
        self._make_room_locked(item._size, wait=wait)
        return self._lru.nbytes + item._size + self._reserved + self._backlog_bytes <= max_bytes

    def _admit_locked(self, item: Fb[T]) -> None:
        self._purge_locked()
        max_bytes = self._lru.max_bytes
        if max_bytes is not None and item._size > max_bytes:
            self._evict_locked(item)
        else:
            self._count_unwritten_locked(item)
            self._enter_locked(item)

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
        return Fb(self, key, ABSENT, token, -1)

    async def aregister(self, tracked: TrackedPath, key: uuid.UUID | str) -> Fb[T] | None:
        """Coroutine twin of `register`."""
        return await self.store.call(self.register, tracked, key)

    # -- eviction control ------------------------------------------------------------

    def evict_one(self) -> int:
        """Write (if not stored yet) and drop the least recently used item that no
        guard holds, on the calling thread.

        Returns the bytes freed as measured by `sizeof`, 0 when nothing can go.
        A failed write keeps the item in memory (it becomes the next victim), is
        counted in ``stats.eviction_failures`` and logged, and returns 0: this
        method never raises for it.
        """
        self.store._check_open()
        with self._lock:
            self._purge_locked()
            item = self._least_recent_idle_locked()
            if item is None:
                return 0
            if item._size < 0:
                item._size = self._measure(item._value)
            self._lru.remove(item._ref)
            size = item._size
            if item._token is not None:
                self._drop_value_locked(item)
                return size
            charge = self._start_write_locked(item, max(size, 0))
            key = item._key
        try:
            self._write_back(item._ref, key, item._value, charge)  # the value cannot change while written
        except Exception as error:  # noqa: BLE001 - the item stays; reported through stats and the log
            logger.warning("could not evict %s: %r; it stays in memory", key, error)
            return 0
        with self._lock:
            return size if item._value is ABSENT else 0

    def _least_recent_idle_locked(self) -> Fb[T] | None:
        """The least recently used item that no guard, write or load holds and
        that can be written."""
        for ref in self._lru.least_recent():
            item = ref()
            if item is not None and self._idle(item) and not (item._writing or item._loading or item._unencodable):
                return item
        return None

    # -- guards (called by Fb) -------------------------------------------------------

    @overload
    def _acquire_read(self, item: Fb[T], *, wait: bool, rescue: bool) -> ReadGuard[T] | None: ...

    @overload
    def _acquire_read(self, item: Fb[T], *, wait: Literal[True], rescue: bool, guarded: Literal[False]) -> T: ...

    def _acquire_read(self, item: Fb[T], *, wait: bool, rescue: bool, guarded: bool = True) -> ReadGuard[T] | T | None:
        """A read guard on `item` (None when not `wait` and it is not at hand);
        not `guarded`: the value itself, which the caller's reference keeps
        alive (`Fb.get`)."""
        if self.store._epoch != forking.epoch:
            self.store._check_process()
        lock = self._lock
        lock.acquire()  # not `with`: on every miss (see `_hit_locked`)
        try:
            self._purge_locked()
            while True:
                if not item._writer:
                    if item._value is not ABSENT:
                        if not rescue and self._being_evicted(item):
                            return None
                        next(self._hit_count)
                        self._enter_locked(item)
                        return item._read_guard_locked() if guarded else item._value
                    if not item._loading and wait:
                        break
                if not wait:
                    return None
                _refuse_waiting_on_own_guard(item, "a read guard")
                self._wait_locked(item)
            token = self._start_load_locked(item)
        finally:
            lock.release()
        loaded: ReadGuard[T] | T = self._load_unlocked(item, token, guard="read" if guarded else "none")
        return loaded

    def _acquire_write(self, item: Fb[T], *, wait: bool) -> WriteGuard[T] | None:
        token: Token | None = None
        self.store._check_process()
        with self._lock:
            self._purge_locked()
            while True:
                free = not item._writer and not item._loading and not item._writing
                if free and item._value is not ABSENT and not item._readers:
                    if not wait and self._being_evicted(item):
                        return None
                    next(self._hit_count)
                    item._writer = threading.get_ident()
                    self._enter_locked(item)
                    break
                if free and item._value is ABSENT and wait:
                    token = self._start_load_locked(item)
                    break
                if not wait:
                    return None
                _refuse_waiting_on_own_guard(item, "the write guard")
                self._wait_locked(item)
        if token is not None:
            self._load_unlocked(item, token, guard="write")
        with self._lock:  # the item is write-locked: nobody else changes it now
            old_token, item._token = item._token, None
            item._key = new_key()
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

    def _load_unlocked(self, item: Fb[T], token: Token, *, guard: str) -> Any:
        """Load `item` (marked loading by `_start_load_locked`), make it resident,
        take the `guard` (``"read"``: a read guard, returned; ``"write"``: the
        write lock; ``"none"``: no guard, the value is returned) and enter it in
        the LRU order, all in one step so the item cannot be evicted before it
        is guarded. With a byte budget, room for the blob is made before it is
        read. The caller does not hold the lock."""
        reserved = 0
        load: collecting | None = None
        try:
            budget = self._lru.max_bytes is not None
            blob_size = self.store.blob_size(token) if budget else token.nbytes
            reusable = blob_size is not None and (
                blob_size >= _REUSE_FROM if budget else blob_size > _REUSE_UNBUDGETED_ABOVE
            )
            if reusable or blob_size is None:  # else: no buffer worth recording (see _worth_recording)
                load = collecting(None)
            if budget or reusable:  # else: nothing to reserve or reuse
                with self._lock:
                    if budget:
                        reserved = item._size if item._size >= 0 else blob_size or 0
                        self._make_room_locked(reserved, wait=True)
                        self._reserved += reserved
                    if load is not None:
                        load.buffers.spare = self._take_reusable_locked(blob_size)
                    trim = self._trim_before_locked(reserved)
                if trim:
                    release_free_memory()
            if load is None:
                value = self.store.load_blob(token)
            else:
                with load:
                    value = self.store.load_blob(token)
            size = self._measure(value) if budget else -1
        except BaseException:
            with self._lock:
                self._reserved -= reserved
                if load is not None:
                    self._keep_reusable_locked(load.buffers.spare, reserved)
                item._loading = False
                self._notify_locked(item)
            raise
        lock = self._lock
        lock.acquire()  # not `with`: on every miss (see `_hit_locked`)
        try:
            self._reserved -= reserved
            if load is None:
                item._buffers = None
                loaded = blob_size or 0
            else:
                buffers = load.buffers
                if buffers.spare is not None:
                    self._keep_reusable_locked(buffers.spare, reserved)
                elif buffers.reused:
                    self._counts["buffers_reused"] += 1
                item._buffers = _worth_recording(buffers.owned)
                loaded = buffers.allocated or token.nbytes or 0
            item._loading = False
            item._value = value
            item._size = size
            self._counts["loads"] += 1
            self._counts["bytes_loaded"] += loaded
            result: Any = value
            if guard == "read":
                result = item._read_guard_locked()
            elif guard == "write":
                item._writer = threading.get_ident()
            writes = self._collecting_writes_locked(self._small_blobs_locked(), self._enter_locked, item)
            self._notify_locked(item)
        finally:
            lock.release()
        self._write_here(writes)
        return result

    def _release_write(self, item: Fb[T], value: T) -> None:
        if forking.inherited(self.store._epoch):
            return  # a guard taken before a fork: the pool is unusable in the child
        size = self._measure(value) if self._lru.max_bytes is not None else -1
        with self._lock:
            item._value = value  # before `_writer` is cleared: `Fb.get` reads both without the lock
            item._writer = 0
            item._unencodable = False
            resized, item._size = size != item._size, size
            self._uncount_unwritten_locked(item._ref)  # counted again: the newest, with its new size
            self._count_unwritten_locked(item)
            if resized:
                self._evict_all_locked(self._lru.set_size(item._ref, max(size, 0)))
            self._after_release_locked(item)

    def _after_release_locked(self, item: Fb[T]) -> None:
        if item._evict_on_release and not item._readers and not item._writer:
            item._evict_on_release = False
            self._evict_locked(item)
        self._notify_locked(item)

    def _hit_locked(self, item: Fb[T]) -> bool:
        """Record a hit on `item` when its value is resident and not write-guarded
        (the hit path of `Fb.get` outside the front half; `Fb.load` has it
        written out); False otherwise. An access in the front half of the LRU
        changes nothing there.

        The hit path's callers take the lock with ``acquire`` and ``try``/
        ``finally`` rather than ``with``: the ``with`` statement's two special
        method calls cost as much as the rest of a hit (~100 ns a section)."""
        if item._value is ABSENT or item._writer or self._dead:
            return False
        next(self._hit_count)
        if item._ref not in self._lru.front:
            self._enter_locked(item)
        return True

    def _miss_locked(self, item: Fb[T]) -> Token | None:
        """After `_hit_locked` missed: start loading `item` (see `_load_unlocked`)
        when nothing stands in the way, in the same hold of the lock; None when
        something does (a load or write guard in progress, handles to purge, no
        blob): the caller then takes the slow path (`_acquire_read`)."""
        if item._value is not ABSENT or item._writer or item._loading or self._dead or item._token is None:
            return None
        return self._start_load_locked(item)

    def _get_missed(self, item: Fb[T]) -> T:
        """`Fb.get` after its hit path missed: load (or wait for) the value. No
        guard is taken: the reference returned keeps the value alive."""
        value: T = self._acquire_read(item, wait=True, rescue=True, guarded=False)
        return value

    def _nbytes(self, item: Fb[T]) -> int:
        size = item._size
        if size >= 0:
            return size
        value = item._value
        if value is ABSENT:
            return 0
        size = self._measure(value)
        with self._lock:
            if item._value is value and item._size < 0:
                item._size = size
        return size

    # -- writing and persisting --------------------------------------------------------

    def _write_now(self, item: Fb[T]) -> Token:
        self.store._check_open()
        with self._lock:
            while True:
                self.store._check_open()
                if item._token is not None:
                    return item._token
                if not (item._writing or item._writer or item._loading):
                    break
                _refuse_waiting_on_own_guard(item, "a write of the value")
                self._wait_locked(item)
            charge = self._start_write_locked(item, None)
            key, value = item._key, item._value
        try:
            return self._write(item._ref, key, value, False)  # type: ignore[return-value]
        finally:
            if charge.nbytes is not None:  # final: `_write` detached it from the item
                with self._lock:
                    self._release_charge_locked(charge)

    def _persist(self, item: Fb[T], tracked: TrackedPath) -> uuid.UUID:
        token = self._write_now(item)
        self.store.persist_blob(token, tracked)
        return token.key

    def _write_back(self, ref: _ItemRef, key: uuid.UUID, value: Any, charge: WriteCharge, ahead: bool = False) -> None:
        """The eviction write of an item, on a worker or the evicting thread;
        `ahead`: a background write ahead of its eviction, which starts the next
        one when it succeeded."""
        written = False
        try:
            self._write(ref, key, value, True)
            written = True
        finally:
            with self._lock:
                self._release_charge_locked(charge)
                if ahead:
                    self._writing_ahead -= 1
                    if written:
                        self._write_behind_locked()

    def _start_write_locked(self, item: Fb[T], evicting: int | None) -> WriteCharge:
        """Mark `item` as writing; `evicting`: the bytes its eviction write holds
        in the backlog (None: the item stays in memory while written)."""
        item._writing = True
        item._drop_after_write = evicting is not None
        self._uncount_unwritten_locked(item._ref)
        charge = item._charge = WriteCharge()
        if evicting is not None:
            self._charge_locked(charge, evicting)
        return charge

    def _charge_locked(self, charge: WriteCharge, nbytes: int) -> None:
        charge.nbytes = nbytes
        self._backlog_items += 1
        self._backlog_bytes += nbytes

    def _release_charge_locked(self, charge: WriteCharge) -> None:
        if charge.nbytes is not None:
            self._backlog_items -= 1
            self._backlog_bytes -= charge.nbytes
            charge.nbytes = None
            self._backlog_done.notify_all()

    def _write(self, ref: _ItemRef, key: uuid.UUID, value: Any, background: bool) -> Token | None:
        """Write `value` under `key` for the item behind `ref`, which the caller
        marked as writing. Runs on a worker for evictions, on the caller's thread
        for `write_now`."""
        try:
            if background and ref() is None:
                token, written = None, None  # the handle is gone: nothing to keep
            else:
                token, written = self.store.store_blob(key, value, spill=background)
        except BaseException as error:
            with self._lock:
                if background:
                    self._counts["eviction_failures"] += 1
                item = ref()
                if item is not None:
                    item._writing = False
                    item._charge = None
                    if isinstance(error, EncodeError):
                        item._unencodable = item._key == key  # kept in memory, not retried until it changes
                        item._drop_after_write = False
                    elif item._drop_after_write and item._key == key and self._idle(item):
                        item._drop_after_write = False
                        self._lru.insert_last(item._ref, max(item._size, 0))  # retried by the next eviction
                    if item._key == key and item._ref in self._lru:
                        self._count_unwritten_locked(item)
                    self._notify_locked(item)
            raise
        del value
        with self._lock:
            if token is not None:
                self._counts["stores"] += 1
                if written is not None:
                    self._counts["bytes_stored"] += written
                    mean = self._mean_written
                    self._mean_written = written if mean is None else 0.9 * mean + 0.1 * written
            item = ref()
            if item is not None:
                item._writing = False
                item._charge = None
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
        self._evict_all_locked(self._lru.insert(item._ref, max(item._size, 0)))
        if self._reserved or self._backlog_bytes:
            self._make_room_locked(0, keep=item._ref)

    def _make_room_locked(self, incoming: int, keep: _ItemRef | None = None, *, wait: bool = False) -> None:
        """With a byte budget, evict the least recently used items (never `keep`)
        until the LRU order, the running eviction writes, the loads in progress
        and `incoming` more bytes fit in it. Evicting an item not stored yet
        frees its memory only once its write is done: with `wait`, wait for
        such writes while the budget is exceeded (releasing the lock).

        Once an eviction write failed while it waited, it returns over the
        budget: the failed items stay in memory and are retried by the next
        eviction, instead of being retried at once for as long as the store
        keeps failing."""
        max_bytes = self._lru.max_bytes
        if max_bytes is None:
            return
        lru = self._lru
        failures = self._counts["eviction_failures"]
        while True:
            excess = lru.nbytes + incoming + self._reserved + self._backlog_bytes - max_bytes
            if excess <= 0 or self._counts["eviction_failures"] != failures:
                return
            victims = []
            for ref in lru.least_recent():
                if ref is not keep:
                    victims.append(ref)
                    excess -= lru.size_of(ref) or 0
                    if excess <= 0:
                        break
            for ref in victims:
                lru.remove(ref)
            self._evict_all_locked(victims)
            if not wait or not self._backlog_bytes:
                return
            if lru.nbytes + incoming + self._reserved + self._backlog_bytes <= max_bytes:
                return
            self._write_behind_locked(waiting=True)
            self._backlog_done.wait()

    def _evict_all_locked(self, victims: list[_ItemRef]) -> None:
        for ref in victims:
            victim = ref()
            if victim is not None:
                self._evict_locked(victim)
        if victims and self._unwritten_bytes:
            self._write_behind_locked()

    # -- writing ahead of eviction (under the lock, with a byte budget) ----------------------

    def _count_unwritten_locked(self, item: Fb[T]) -> None:
        """Count `item` as unwritten if, under a byte budget, it is in memory,
        neither stored nor being written, and can be written."""
        ref = item._ref
        if (
            self._lru.max_bytes is not None
            and item._token is None
            and item._value is not ABSENT
            and not (item._writing or item._unencodable)
            and ref not in self._unwritten
        ):
            size = max(item._size, 0)
            self._unwritten[ref] = size
            self._unwritten_bytes += size

    def _uncount_unwritten_locked(self, ref: _ItemRef) -> None:
        size = self._unwritten.pop(ref, None)
        if size is not None:
            self._unwritten_bytes -= size

    def _write_behind_locked(self, *, waiting: bool = False) -> None:
        """Start writes ahead of eviction, at most one per worker thread of the
        store at once, for the oldest unwritten items while they hold more than
        1/`_UNWRITTEN_SHARE` of the budget (with `waiting`, a thread waits for
        an eviction write: whatever they hold). They stay in memory and in the
        LRU order; evicting them later frees their memory at once, without a
        write, and the writes overlap the caller's work. Called when the pool
        evicts, so a pool that never fills its budget writes nothing ahead.
        Small blobs are left to their evictions, which write them inline."""
        max_bytes = self._lru.max_bytes
        if max_bytes is None or self.store.closed or (not waiting and self._small_blobs_locked()):
            return
        self._purge_locked()
        limit = -1 if waiting else max_bytes // _UNWRITTEN_SHARE
        while self._writing_ahead < self.store.workers and self._unwritten_bytes > limit:
            item = self._oldest_writable_locked()
            if item is None:
                return
            self._writing_ahead += 1
            charge = self._start_write_locked(item, None)
            self.store.spawn(self._write_back, item._ref, item._key, item._value, charge, True)

    def _oldest_writable_locked(self) -> Fb[T] | None:
        """Among the oldest unwritten items, the first that no write guard holds
        (read guards do not change the value, as for `Fb.write_now`)."""
        for ref in itertools.islice(self._unwritten, _WRITE_AHEAD_WINDOW):
            item = ref()
            if item is not None and not item._writer:
                return item
        return None

    def _evict_locked(self, item: Fb[T]) -> None:
        """`item` left the LRU order: drop its value, write it first, or defer
        until its guards are released."""
        if item._value is ABSENT:
            return
        if item._readers or item._writer:
            item._evict_on_release = True
        elif item._token is not None:
            self._drop_value_locked(item)
        elif item._unencodable:
            return  # stays in memory, outside the LRU order, until it changes or is used again
        elif item._writing:
            item._drop_after_write = True
            charge = item._charge
            if charge is not None and charge.nbytes is None:
                self._charge_locked(charge, max(item._size, 0))  # in memory until the write ends
        else:
            charge = self._start_write_locked(item, max(item._size, 0))
            write = (item._ref, item._key, item._value, charge)
            if self._inline_writes is not None:
                self._inline_writes.append(write)
            else:
                self.store.spawn(self._write_back, *write)

    def _drop_value_locked(self, item: Fb[T]) -> None:
        item._value = ABSENT
        self._counts["evictions"] += 1
        freed = max(item._size, 0)
        allocations = item._buffers
        if allocations is not None:
            item._buffers = None
            for allocation in allocations:
                if is_mapping(allocation) or self._keep_reusable_locked(allocation, max(item._size, 0)):
                    freed -= allocation[2]  # unmapped without the allocator, or kept
        if self._trim_every is not None and freed > 0:
            self._untrimmed += freed
            self._dropped_since_trim += freed
            if not self._trimming and self._dropped_since_trim >= self._trim_every:
                self._trimming = True
                self._dropped_since_trim = 0
                self.store.spawn(self._trim)

    # -- buffers kept for reuse (under the lock) -----------------------------------------

    def _keep_reusable_locked(self, allocation: Allocation | None, accounted: int) -> bool:
        """Keep `allocation` for a later load if nothing else references it and
        it fits the budget, counting `accounted` bytes against it (without a
        budget: while fewer than a few are kept)."""
        if allocation is None or allocation[2] < _REUSE_FROM or not sole_owner(allocation):
            return False
        max_bytes = self._lru.max_bytes
        if max_bytes is None:
            fits = allocation[2] > _REUSE_UNBUDGETED_ABOVE and len(self._reusable) < _REUSE_COUNT
        else:
            held = self._lru.nbytes + self._reserved + self._backlog_bytes + self._reusable_bytes
            fits = held + accounted <= max_bytes
        if fits:
            self._reusable.append((allocation, accounted))
            self._reusable_bytes += accounted
        return fits

    def _take_reusable_locked(self, size: int | None) -> Allocation | None:
        """A kept buffer for a blob of `size` bytes (at most an eighth larger)."""
        if size is None or size < _REUSE_FROM:
            return None
        reusable = self._reusable
        for index in range(len(reusable) - 1, -1, -1):
            allocation, accounted = reusable[index]
            if size <= allocation[2] <= size + size // 8:
                self._reusable_bytes -= accounted
                del reusable[index]
                return allocation
        return None

    def _fit_reusable_locked(self) -> None:
        """Let go of kept buffers that no longer fit the budget."""
        max_bytes = self._lru.max_bytes
        if max_bytes is None:
            del self._reusable[_REUSE_COUNT:]
        else:
            held = self._lru.nbytes + self._reserved + self._backlog_bytes
            while self._reusable and held + self._reusable_bytes > max_bytes:
                self._reusable_bytes -= self._reusable.pop(0)[1]
        self._reusable_bytes = sum(accounted for _allocation, accounted in self._reusable)

    def _trim_before_locked(self, incoming: int) -> bool:
        """Whether a load of `incoming` bytes trims first, on its own thread: the
        values dropped since a trim last finished left at least as many bytes
        with the allocator as it will take from the system (a load that maps
        its blob cannot use them). Trims running at once are harmless; one in
        the background may not have reached those bytes yet."""
        if self._trim_every is None or incoming <= 0 or self._untrimmed < incoming:
            return False
        self._untrimmed = 0
        self._dropped_since_trim = 0
        return True

    def _trim(self) -> None:
        try:
            release_free_memory()
        finally:
            with self._lock:
                self._trimming = False
                self._untrimmed = self._dropped_since_trim

    @staticmethod
    def _idle(item: Fb[T]) -> bool:
        return not item._readers and not item._writer

    def _being_evicted(self, item: Fb[T]) -> bool:
        return item._ref not in self._lru and (item._drop_after_write or item._evict_on_release)

    def _purge_locked(self) -> None:
        dead = self._dead
        while dead:
            ref = dead.popleft()
            self._lru.remove(ref)
            self._uncount_unwritten_locked(ref)

    def _wait_locked(self, item: Fb[T]) -> None:
        if item._cond is None:
            item._cond = threading.Condition(self._lock)
        item._cond.wait()

    @staticmethod
    def _notify_locked(item: Fb[T]) -> None:
        if item._cond is not None:
            item._cond.notify_all()


def _refuse_waiting_on_own_guard(item: Fb[Any], wanted: str) -> None:
    """Raise instead of waiting for a guard that the calling thread holds itself."""
    thread = threading.get_ident()
    if item._writer == thread:
        held = "its write guard (load_mut)"
    elif item._readers and thread in item._readers and wanted != "a read guard":
        held = "a read guard (load)"
    else:
        return
    raise GuardConflictError(
        f"this thread holds {held} on {item!r} and asked for {wanted} of it, which would wait for itself "
        "forever; release the guard first (end its with block)"
    )


def _worth_recording(allocations: list[Allocation]) -> list[Allocation] | None:
    """The buffers of a load that its item keeps a record of: those the pool
    may reuse or must not count as heap memory once the value is dropped
    (None when there are none: small blobs, whose record would only be more
    objects for the garbage collector to walk)."""
    if not allocations:
        return None
    kept = [allocation for allocation in allocations if allocation[2] >= _REUSE_FROM or is_mapping(allocation)]
    return kept or None


def _live(ref: _ItemRef) -> Fb[Any] | None:
    return ref()


def _as_max_items(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_items must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"max_items must be at least 1, got {value}")
    return value


def _as_max_bytes(value: object) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except (TypeError, ValueError) as error:
        raise type(error)(f"max_bytes: {error}") from None
