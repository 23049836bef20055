"""`Fb` handles and the guards that keep their values in memory."""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Callable, Coroutine, Generator
from threading import get_ident
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from file_backed import forking

if TYPE_CHECKING:
    from file_backed.buffers import Allocation
    from file_backed.pool import FBPool, WriteCharge
    from file_backed.store import Token, TrackedPath

__all__ = ["Fb", "ReadGuard", "WriteGuard"]

T = TypeVar("T")
G = TypeVar("G", bound="_Guard[Any]")


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<not in memory>"


#: The value slot of an item that is not in memory.
ABSENT: Any = _Absent()


class Fb(Generic[T]):
    """A handle to one item of an `FBPool`: in memory, in the store, or both.

    Obtain one from `FBPool.insert` or `FBPool.register`. Access the value
    through a guard (`load`, `load_mut`) or `get`. When the last reference to
    the handle goes, its blob in the temporary area is deleted in the
    background; persisted copies stay.

    Notes on thread safety: a handle may be shared by any number of threads and
    coroutines. Read guards are shared, a write guard is exclusive; loading an
    item that is not in memory happens once however many threads ask for it.
    The state below is guarded by the pool's lock.
    """

    __slots__ = (
        "__weakref__",
        "_buffers",
        "_charge",
        "_cond",
        "_drop_after_write",
        "_evict_on_release",
        "_key",
        "_loading",
        "_pool",
        "_readers",
        "_ref",
        "_size",
        "_token",
        "_unencodable",
        "_value",
        "_writer",
        "_writing",
    )

    def __init__(self, pool: FBPool[T], key: uuid.UUID, value: Any, token: Token | None, size: int) -> None:
        self._pool = pool
        self._key = key
        self._value = value
        self._token = token
        self._size = size  # by the pool's sizeof; -1 while not measured
        self._buffers: list[Allocation] | None = None  # what a loaded value was read into
        self._readers: list[int] | None = None  # the threads holding read guards, once per guard
        self._writer = 0  # the thread holding the write guard, 0 when none
        self._loading = False
        self._writing = False
        self._charge: WriteCharge | None = None  # what the running write holds in the eviction backlog
        self._drop_after_write = False
        self._evict_on_release = False
        self._unencodable = False  # the codec refused the value: not written again until it changes
        self._cond: threading.Condition | None = None
        self._ref = weakref.ref(self, pool._forget)
        hash(self._ref)  # a weakref hashes only while alive; the pool looks dead ones up

    # -- identity -----------------------------------------------------------------

    @property
    def key(self) -> uuid.UUID:
        """The key of the item's current contents; a new one after each `load_mut`."""
        return self._key

    @property
    def pool(self) -> FBPool[T]:
        return self._pool

    @property
    def nbytes(self) -> int:
        """The item's size as measured by the pool's ``sizeof`` when it was last
        in memory (measured now if it is in memory and was not measured yet;
        0 for an item never in memory since it was registered)."""
        return self._pool._nbytes(self)

    @property
    def resident(self) -> bool:
        """Whether the value is in memory now (a snapshot; not an access)."""
        return self._value is not ABSENT

    def __repr__(self) -> str:
        state = "in memory" if self._value is not ABSENT else "stored"
        return f"<Fb {self._key} {state}>"

    def __reduce__(self) -> Any:
        raise TypeError("an Fb handle cannot be pickled; persist it and register its key instead")

    # -- blocking access ----------------------------------------------------------

    def load(self) -> ReadGuard[T]:
        """Acquire a shared guard, loading the value if it is not in memory.

        The item stays in memory while the guard is held. Do not mutate the
        value; use `load_mut`. Raises `BlobNotFoundError` or `CorruptBlobError`
        when the stored blob cannot be loaded (the handle stays usable).
        """
        pool = self._pool
        if pool.store._epoch != forking.epoch:
            pool.store._check_process()
        lock = pool._lock
        lock.acquire()  # the hit path takes the lock without `with` (see FBPool._hit_locked)
        try:
            if self._value is not ABSENT and not self._writer and not pool._dead:
                # FBPool._hit_locked and _read_guard_locked written out: each
                # call costs a twentieth of a hit
                next(pool._hit_count)
                if self._ref not in pool._lru.front:
                    pool._enter_locked(self)
                thread = get_ident()
                readers = self._readers
                if readers is None:
                    self._readers = [thread]
                else:
                    readers.append(thread)
                guard: ReadGuard[T] = _new_guard(ReadGuard)
                guard._item = self
                guard.value = self._value
                guard._thread = thread
                return guard
            token = pool._miss_locked(self)
        finally:
            lock.release()
        if token is None:
            return pool._acquire_read(self, wait=True, rescue=True)  # type: ignore[return-value]
        return pool._load_unlocked(self, token, guard="read")  # type: ignore[no-any-return]

    def _read_guard_locked(self) -> ReadGuard[T]:
        """A read guard of the calling thread on the resident value (pool lock
        held). The hit path of `load` has the same steps written out."""
        thread = get_ident()
        readers = self._readers
        if readers is None:
            self._readers = [thread]  # kept once made: most items are never guarded
        else:
            readers.append(thread)
        guard: ReadGuard[T] = _new_guard(ReadGuard)  # no __init__: called from type(), a third of a guard's cost
        guard._item = self
        guard.value = self._value
        guard._thread = thread
        return guard

    def load_mut(self) -> WriteGuard[T]:
        """Acquire the exclusive guard, loading the value if needed.

        The stored copy is dropped and the handle gets a new key at once; the
        changed value is written on a later eviction (or ahead of it, see
        `FBPool`) or `write_now`. Persisted copies are not touched.
        """
        return self._pool._acquire_write(self, wait=True)  # type: ignore[return-value]

    def try_load(self) -> ReadGuard[T] | None:
        """A shared guard if the value is in memory and not being evicted, else None.

        Never blocks on I/O."""
        return self._pool._acquire_read(self, wait=False, rescue=False)

    def try_load_mut(self) -> WriteGuard[T] | None:
        """The exclusive guard if the value is in memory, not being evicted and not
        guarded, else None. Never blocks on I/O."""
        return self._pool._acquire_write(self, wait=False)

    def get(self) -> T:
        """The value, loaded if needed and released at once. Do not mutate it."""
        pool = self._pool
        if pool.store._epoch != forking.epoch:
            pool.store._check_process()
        # A hit in the front half of the LRU order changes nothing but the hit
        # count, which `next` changes atomically: it takes no lock. Every read
        # here is atomic; reading `_value` again after `_writer` makes sure no
        # write guard replaced the value in between, so this returns what a
        # locked hit at the moment `_writer` was read would have returned.
        value = self._value
        if (
            value is not ABSENT
            and not self._writer
            and self._value is value
            and self._ref in pool._lru.front
            and not pool._dead
        ):
            next(pool._hit_count)
            return value  # type: ignore[no-any-return]
        lock = pool._lock
        lock.acquire()
        try:
            if pool._hit_locked(self):
                return self._value  # type: ignore[no-any-return]
            token = pool._miss_locked(self)
        finally:
            lock.release()
        if token is None:
            return pool._get_missed(self)
        return pool._load_unlocked(self, token, guard="none")  # type: ignore[no-any-return]

    def write_now(self) -> None:
        """Write the value to the temporary area now, unless a blob of the current
        contents is there already. Blocks while a write guard is held."""
        self._pool._write_now(self)

    def persist(self, tracked: TrackedPath) -> uuid.UUID:
        """Persist the item at `tracked` (writing it first if needed) and return
        the key it is persisted under. A no-op when already persisted there."""
        return self._pool._persist(self, tracked)

    # -- coroutine twins -----------------------------------------------------------

    def aload(self) -> _Acquire[ReadGuard[T]]:
        """Coroutine twin of `load`: ``guard = await h.aload()`` or
        ``async with h.aload() as value``."""
        pool = self._pool
        return _Acquire(
            lambda: pool._acquire_read(self, wait=False, rescue=True),
            lambda: pool._acquire_read(self, wait=True, rescue=True),
            pool,
        )

    def aload_mut(self) -> _Acquire[WriteGuard[T]]:
        """Coroutine twin of `load_mut`: ``await`` it or use ``async with``."""
        pool = self._pool
        return _Acquire(
            lambda: pool._acquire_write(self, wait=False),
            lambda: pool._acquire_write(self, wait=True),
            pool,
        )

    async def awrite_now(self) -> None:
        """Coroutine twin of `write_now`."""
        await self._pool.store.call(self.write_now)

    async def apersist(self, tracked: TrackedPath) -> uuid.UUID:
        """Coroutine twin of `persist`."""
        return await self._pool.store.call(self.persist, tracked)


class _Guard(Generic[T]):
    __slots__ = ("_item", "value")

    _item: Fb[T] | None
    value: T

    def __init__(self, item: Fb[T], value: T) -> None:
        self._item = item
        self.value = value

    @property
    def released(self) -> bool:
        return self._item is None

    def __enter__(self) -> T:
        return self.value

    def __exit__(self, _exc_type: object, _exc: object, _traceback: object) -> None:
        self.release()

    def release(self) -> None:
        """Release the guard; idempotent. The guard then holds no reference to the
        value or the handle."""
        raise NotImplementedError

    def __del__(self) -> None:
        item = self._item
        if item is not None:
            # Released on a worker, where taking the pool's lock cannot deadlock
            # with the thread that dropped the guard. The deferred call keeps the
            # guard alive until it runs; a finalizer runs once (PEP 442), so a
            # call dropped by a closed store does not come back here.
            item._pool.store.defer(self.release)


class ReadGuard(_Guard[T]):
    """A shared guard: the value stays in memory until `release` (or the end of
    the ``with`` block, or garbage collection)."""

    __slots__ = ("_thread",)

    _thread: int

    def release(self, _exc_type: object = None, _exc: object = None, _traceback: object = None) -> None:
        # On the hit path of `Fb.load`: the pool's side is written out here
        # rather than in a method of the pool (a call is a twentieth of a hit),
        # and `__exit__`'s three arguments are parameters, not ``*args`` (a
        # call with exactly the parameters is the interpreter's fastest).
        item = self._item
        if item is None:
            return
        self._item = None
        del self.value
        pool = item._pool
        if pool.store._epoch != forking.epoch:
            return  # a guard taken before a fork: the pool is unusable in the child
        lock = pool._lock
        lock.acquire()  # not `with` (see FBPool._hit_locked)
        try:
            readers = item._readers
            assert readers is not None, "a read guard is released after it was taken"
            readers.remove(self._thread)
            if not readers and (item._evict_on_release or item._cond is not None):
                pool._after_release_locked(item)
        finally:
            lock.release()

    __exit__ = release

    def __repr__(self) -> str:
        return f"<ReadGuard {'released' if self._item is None else self._item.key}>"


class WriteGuard(_Guard[T]):
    """The exclusive guard. Mutate `value` in place, or assign a new object to
    `value`; the item holds whatever `value` is at release."""

    __slots__ = ()

    def release(self, _exc_type: object = None, _exc: object = None, _traceback: object = None) -> None:
        item = self._item
        if item is not None:
            self._item = None
            value = self.value
            del self.value
            item._pool._release_write(item, value)

    __exit__ = release

    def __repr__(self) -> str:
        return f"<WriteGuard {'released' if self._item is None else self._item.key}>"


class _Acquire(Coroutine[Any, Any, G]):
    """An acquisition that is a coroutine (await it, or pass it to
    `asyncio.create_task`, for the guard) and an async context manager (for the
    value, released on exit).

    Resident values are acquired without leaving the event loop; loads run on
    the store's call threads. Cancelling the await releases a guard that
    arrives after the cancellation.
    """

    __slots__ = ("_blocking", "_coroutine", "_guard", "_pool", "_try")

    _try: Callable[[], G | None]
    _blocking: Callable[[], G | None]
    _coroutine: Coroutine[Any, Any, G]

    def __init__(self, try_acquire: Callable[[], G | None], acquire: Callable[[], G | None], pool: FBPool[Any]) -> None:
        self._try = try_acquire
        self._blocking = acquire
        self._pool = pool
        self._guard: G | None = None
        self._coroutine = self._acquire()

    async def _acquire(self) -> G:
        guard = self._try()
        if guard is None:
            guard = await self._pool.store.call(self._blocking, on_abandon=_release_guard)
        assert guard is not None, "a blocking acquisition always returns a guard"
        return guard

    def send(self, value: Any) -> Any:
        return self._coroutine.send(value)

    def throw(self, *args: Any) -> Any:
        return self._coroutine.throw(*args)

    def close(self) -> None:
        self._coroutine.close()

    def __await__(self) -> Generator[Any, None, G]:
        return self._coroutine.__await__()

    async def __aenter__(self) -> Any:
        self._guard = await self._coroutine
        return self._guard.value

    async def __aexit__(self, *exc_info: object) -> None:
        if self._guard is not None:
            self._guard.release()
            self._guard = None


_new_guard = object.__new__


def _release_guard(guard: _Guard[Any] | None) -> None:
    if guard is not None:
        guard.release()
