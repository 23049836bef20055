"""`BackingStore`: the manager between pools and one backend plugin."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Self, TypeVar

import pluggy

from file_backed import forking, hookspecs, spilling
from file_backed.blob import rebind, signing_key_bytes
from file_backed.errors import (
    BackgroundTaskError,
    ConfigError,
    EncodeError,
    FileBackedError,
    StoreClosedError,
    StoreForkedError,
    StoreWriteError,
)
from file_backed.key_locks import KeyLocks
from file_backed.workers import Workers

__all__ = ["BackingStore", "TrackedPath"]

logger = logging.getLogger("file_backed")

R = TypeVar("R")

_NOT_SPILLING = contextlib.nullcontext()
#: `BackingStore.cheap_writes_up_to` of a backend that does not say.
DEFAULT_CHEAP_WRITES_UP_TO = 32 * 1024


def _default_workers() -> int:
    return max(4, 2 * (os.cpu_count() or 1))


class Token:
    """Proof that a key's blob is in the temporary area.

    Every handle whose item has a blob holds one; handles registered from the
    same key share it. When the last reference goes, the blob is deleted by a
    background task (unless the key was registered again meanwhile): the
    store's weak reference to the token defers that task from its callback,
    which runs once the reference already reads as dead (unlike ``__del__``).
    """

    __slots__ = ("__weakref__", "key", "nbytes", "store")

    def __init__(self, key: uuid.UUID, store: BackingStore, nbytes: int | None) -> None:
        self.key = key
        self.store = store
        #: The blob's size in bytes where known (what `store` returned).
        self.nbytes = nbytes

    def __repr__(self) -> str:
        return f"Token({self.key})"


class TrackedPath:
    """A persisted location that a store tracks, with the keys persisted there.

    Created by `BackingStore.track_path`. `path` is the backend's persist-path
    object; `location` is what the user passed. The key set reflects every
    persist and delete made through the store since tracking began.

    Notes on thread safety: all methods may be called from any thread.
    """

    __slots__ = ("_keys", "_lock", "_store", "location", "path")

    def __init__(self, store: BackingStore, location: object, path: object, keys: Iterable[uuid.UUID]) -> None:
        self._store = store
        self.location = location
        self.path = path
        self._keys: set[uuid.UUID] = set(keys)
        self._lock = threading.Lock()

    def keys(self) -> frozenset[uuid.UUID]:
        """A snapshot of the keys persisted here."""
        with self._lock:
            return frozenset(self._keys)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._keys

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def __iter__(self) -> Iterator[uuid.UUID]:
        return iter(self.keys())

    def __repr__(self) -> str:
        return f"TrackedPath({self.location!r}, keys={len(self)})"


class BackingStore:
    """Manages one backend plugin: worker threads for background work, use counts
    of blobs in the temporary area, and tracked persisted locations.

    Parameters
    ----------
    backend:
        A plugin object implementing the hooks of `file_backed.hookspecs`.
    workers:
        Number of background threads (eviction writes, deletes); default
        ``max(4, 2 * cpu_count)``. Coroutine twins run on a separate pool of
        the same size, so they never wait behind background work.
    plugins:
        Middleware plugin objects, or names from the ``file_backed.plugins``
        entry point group.
    on_error:
        Optional callable, called with the exception of each background task
        that fails (an eviction write, a delete), on the thread where it
        failed, as it happens. Failures are also logged (logger ``file_backed``)
        and the most recent hundred are raised by `finished`.
    signing_key:
        Optional text (UTF-8) or bytes of at least 16 bytes: every blob the
        backend frames with `file_backed.blob` is signed with it (HMAC-SHA256
        bound to its key) and must carry a valid signature to load, unless the
        backend passes a signing key of its own.

    Attributes
    ----------
    cheap_writes_up_to:
        Blobs up to this many bytes cost the backend less to write than handing
        the write to a worker thread does, so a pool whose blobs average less
        writes its evictions on the thread that evicts. A backend says so with
        an int attribute of the same name (fs_hardlink: the size up to which it
        packs evicted values into segment files); default 32 KiB.

    Notes on thread safety: every method may be called from any thread, except
    that `finished` and `close` must not be called from a background task.
    """

    def __init__(
        self,
        backend: object,
        *,
        workers: int | None = None,
        plugins: Sequence[object | str] = (),
        on_error: Callable[[BaseException], object] | None = None,
        signing_key: str | bytes | None = None,
    ) -> None:
        self._pm = _PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._pm.register(backend, name="backend")
        for plugin in plugins:
            if isinstance(plugin, str):
                from file_backed.plugins import get_plugin

                self._pm.register(get_plugin(plugin), name=plugin)
            else:
                self._pm.register(plugin)
        self._pm.check_pending()
        missing = [name for name in hookspecs.BACKEND_HOOKS if not getattr(self._pm.hook, name).get_hookimpls()]
        if missing:
            raise TypeError(f"backend {backend!r} does not implement the hooks: {', '.join(missing)}")
        self.backend = backend
        self.hook = self._pm.hook
        self._store_hook = _HotHook(self._pm, "store")
        self._load_hook = _HotHook(self._pm, "load")
        self._signing_key = signing_key_bytes(signing_key)
        self.cheap_writes_up_to = _cheap_writes_up_to(backend)
        count = workers if workers is not None else _default_workers()
        self._workers = Workers(count, on_error=on_error)
        self._calls: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._use_counts: dict[uuid.UUID, weakref.KeyedRef[uuid.UUID, Token]] = {}
        # One callback for every token's weak reference (no object per token).
        self._on_token_dropped = self._token_dropped
        self._key_locks: KeyLocks[uuid.UUID] = KeyLocks(self._lock)  # writes, deletes, links of one key
        self._closed = False
        self._epoch = forking.epoch
        self._pid = os.getpid()
        # A store dropped without close() (or still open at exit) stops its
        # threads and lets the backend release what it holds (not in a forked
        # child: what the backend holds is the parent's).
        self._abandoned = weakref.finalize(self, _abandon, self._workers, self.hook, self._epoch)

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The store's plugin manager (the backend plus middleware)."""
        return self._pm

    @property
    def workers(self) -> int:
        """The number of background worker threads."""
        return self._workers.count

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<BackingStore {type(self.backend).__name__} {state}>"

    # -- persisted locations --------------------------------------------------

    def track_path(self, location: object) -> TrackedPath:
        """Prepare `location` (a path or URL the backend understands), clean up what
        a crash left there, and return it with the keys persisted there. An empty
        path or URL raises `ConfigError` (it is not the current directory)."""
        self._check_open()
        if isinstance(location, str | os.PathLike) and not os.fspath(location):
            raise ConfigError("track_path: the location is empty; give a directory path or URL")
        path = self.hook.prepare_path(location=location)
        keys = self.hook.sanitize_path(path=path)
        return TrackedPath(self, location, path, keys if keys is not None else ())

    def fsync(self, tracked: TrackedPath) -> None:
        """Make every earlier persist and delete on `tracked` durable."""
        self._check_tracked(tracked)
        self.hook.sync_persisted(path=tracked.path)

    def delete_persisted(self, tracked: TrackedPath, key: uuid.UUID) -> None:
        """Delete `key` from `tracked`; a no-op when it is not persisted there."""
        self._check_tracked(tracked)
        key = as_key(key)
        with self._key_locks.holding(key):
            if key not in tracked:
                return
            self.hook.delete_persisted(path=tracked.path, key=key)
            with tracked._lock:
                tracked._keys.discard(key)

    # -- lifetime ---------------------------------------------------------------

    def finished(self, timeout: float | None = None) -> None:
        """Wait until no background work is left, including work that background
        work started, and raise `BackgroundTaskError` with what failed since the
        last call. Raises `TimeoutError` when `timeout` seconds run out first."""
        self._check_process()
        if not self._workers.wait_idle(timeout):
            raise TimeoutError(f"background work still running after {timeout} s")
        errors, failures = self._workers.take_errors()
        if errors:
            shown = "" if failures == len(errors) else f" (the last {len(errors)} are attached)"
            raise BackgroundTaskError(f"{failures} background task(s) failed{shown}", errors)  # type: ignore[arg-type]

    def close(self) -> None:
        """Finish background work, stop the threads and release the backend.

        Idempotent. Raises what `finished` raises, after closing. Handles that
        outlive the store keep what they hold in memory, but can no longer load
        anything (`StoreClosedError`), so their blobs in the temporary area are
        deleted now; persisted copies stay.
        """
        if self._closed:
            return
        if forking.inherited(self._epoch):  # the parent's to close, not ours
            self._closed = True
            self._abandoned.detach()
            return
        try:
            self.finished()
        finally:
            self._delete_remaining_blobs()
            self._closed = True
            self._abandoned.detach()
            self._workers.shutdown()
            if self._calls is not None:
                self._calls.shutdown(wait=True)
            self.hook.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- coroutine twins ----------------------------------------------------------

    async def atrack_path(self, location: object) -> TrackedPath:
        """Coroutine twin of `track_path`."""
        return await self.call(self.track_path, location)

    async def afsync(self, tracked: TrackedPath) -> None:
        """Coroutine twin of `fsync`."""
        await self.call(self.fsync, tracked)

    async def adelete_persisted(self, tracked: TrackedPath, key: uuid.UUID) -> None:
        """Coroutine twin of `delete_persisted`."""
        await self.call(self.delete_persisted, tracked, key)

    async def afinished(self, timeout: float | None = None) -> None:
        """Coroutine twin of `finished`."""
        import asyncio

        await asyncio.to_thread(self.finished, timeout)

    async def call(self, fn: Callable[..., R], *args: Any, on_abandon: Callable[[R], object] | None = None) -> R:
        """Run ``fn(*args)`` on the store's call threads and await its result.

        If the awaiting coroutine is cancelled after `fn` started, `fn` still
        runs to completion and `on_abandon` receives its result, so a resource
        it acquired (a guard) can be released.
        """
        import asyncio

        self._check_open()
        future = self._call_executor().submit(fn, *args)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if on_abandon is not None:
                future.add_done_callback(lambda done: _hand_over(done, on_abandon))
            raise

    # -- used by pools and handles -------------------------------------------------

    def spawn(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` as background work that `finished` waits for."""
        self._check_open()
        self._workers.spawn(fn, *args)

    def run_here(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on the calling thread as background work: a failure
        is logged and raised by `finished`, not here."""
        self._workers.run_here(fn, *args)

    def run_deferred_here(self) -> None:
        """Run the deferred background work waiting now (deletes of blobs whose
        handles went) on the calling thread: a thread about to write runs the
        deletes queued before it first, so freed space is there for its write."""
        self._workers.run_deferred_here()

    def defer(self, fn: Callable[..., object], *args: Any) -> None:
        """Like `spawn`, but safe to call from a finalizer; ignored once closed."""
        self._workers.defer(fn, *args)

    def store_blob(self, key: uuid.UUID, data: object, *, spill: bool = False) -> tuple[Token, int | None]:
        """Write `data` under the new key `key`; returns its token and the bytes
        written. `spill`: the write evicts the value (see `file_backed.spilling`)."""
        self._check_open()
        with self._lock:
            self._key_locks.hold_locked(key)
            if key in self._use_counts:
                self._key_locks.release_locked(key)
                raise RuntimeError(f"a blob for key {key} already exists")
        token = None
        outer = rebind((key, self._signing_key))
        try:
            with spilling.spill() if spill else _NOT_SPILLING:
                written = self._store_hook.function()(key=key, data=data)
            token = Token(key, self, written)
        except FileBackedError:
            raise
        except OSError as error:
            raise StoreWriteError(
                error.errno, f"could not write the blob of {key}: {error.strerror or error}", error.filename
            ) from error
        except Exception as error:
            raise EncodeError(
                f"could not encode the value of {key} ({type(data).__name__}): {type(error).__name__}: {error}"
            ) from error
        finally:
            rebind(outer)
            with self._lock:
                if token is not None:
                    self._count_use_locked(token)
                self._key_locks.release_locked(key)
        return token, written

    def load_blob(self, token: Token) -> Any:
        """Decode the blob that `token` keeps in the temporary area."""
        if self._closed or self._epoch != forking.epoch:
            self._check_open()
        key = token.key
        outer = rebind((key, self._signing_key))
        try:
            return self._load_hook.function()(key=key)
        finally:
            rebind(outer)

    def blob_size(self, token: Token) -> int | None:
        """The size in bytes of the blob that `token` keeps, where the store
        recorded it or the backend can tell (the optional ``blob_size`` hook)."""
        if token.nbytes is None:
            token.nbytes = self.hook.blob_size(key=token.key)
        return token.nbytes

    def persist_blob(self, token: Token, tracked: TrackedPath) -> bool:
        """Persist the blob of `token` at `tracked`; False when it already was there."""
        self._check_tracked(tracked)
        with self._key_locks.holding(token.key):
            if token.key in tracked:
                return False
            self.hook.persist(dest_path=tracked.path, key=token.key)
            with tracked._lock:
                tracked._keys.add(token.key)
        return True

    def register_blob(self, tracked: TrackedPath, key: uuid.UUID) -> Token | None:
        """A token for `key` persisted at `tracked`, linking it into the temporary
        area unless a live or not yet deleted blob of that key is there already;
        None when `key` is not persisted at `tracked`."""
        self._check_tracked(tracked)
        with self._key_locks.holding(key):
            if key not in tracked:
                return None
            with self._lock:
                ref = self._use_counts.get(key)
                token = ref() if ref is not None else None
            if token is not None:
                return token
            if ref is None:
                self.hook.register(src_path=tracked.path, key=key)
            return self._new_token(key, None)

    # -- internals --------------------------------------------------------------------

    def _new_token(self, key: uuid.UUID, nbytes: int | None) -> Token:
        token = Token(key, self, nbytes)
        with self._lock:
            self._count_use_locked(token)
        return token

    def _count_use_locked(self, token: Token) -> None:
        """Make `token` the use of its key's blob: the blob is deleted once no
        token of it is left."""
        self._use_counts[token.key] = weakref.KeyedRef(token, self._on_token_dropped, token.key)

    def _token_dropped(self, ref: weakref.KeyedRef[uuid.UUID, Token]) -> None:
        """Weak reference callback (any thread, any point): defer the release."""
        self._workers.defer(self._release_key, ref.key)

    def _release_key(self, key: uuid.UUID) -> None:
        with self._lock:
            self._key_locks.hold_locked(key)
            ref = self._use_counts.get(key)
            if ref is None or ref() is not None:
                self._key_locks.release_locked(key)
                return  # already deleted, or registered again meanwhile
        deleted = False
        try:
            if self._closed or forking.inherited(self._epoch):
                return
            self.hook.delete(key=key)
            deleted = True
        finally:
            with self._lock:
                if deleted and self._use_counts.get(key) is ref:
                    del self._use_counts[key]
                self._key_locks.release_locked(key)

    def _delete_remaining_blobs(self) -> None:
        with self._lock:
            keys = list(self._use_counts)
            self._use_counts.clear()
        for key in keys:
            try:
                self.hook.delete(key=key)
            except Exception as error:  # noqa: BLE001 - closing goes on; the blob is only garbage
                logger.warning("could not delete the temporary blob %s while closing: %r", key, error)

    def _call_executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._calls is None:
                self._calls = concurrent.futures.ThreadPoolExecutor(
                    max_workers=2 * self._workers.count, thread_name_prefix="file_backed-call"
                )
            return self._calls

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"{self!r} is closed")
        self._check_process()

    def _check_process(self) -> None:
        if forking.inherited(self._epoch):
            raise StoreForkedError(
                f"{self!r} was opened in process {self._pid} and inherited by this forked process "
                f"({os.getpid()}), where it cannot be used: open a store in the child "
                "(file_backed.open_store or open_pool), or start processes with 'spawn' or 'forkserver'"
            )

    def _check_tracked(self, tracked: TrackedPath) -> None:
        self._check_open()
        if not isinstance(tracked, TrackedPath):
            raise TypeError(
                f"expected a TrackedPath from store.track_path(location), got {type(tracked).__name__}: {tracked!r}"
            )
        if tracked._store is not self:
            raise ValueError(f"{tracked!r} is tracked by another store; track it with this store first")


class _PluginManager(pluggy.PluginManager):
    """A plugin manager that counts registrations, so `_HotHook` notices them."""

    generation = 0

    def register(self, plugin: object, name: str | None = None) -> str | None:
        self.generation += 1
        return super().register(plugin, name)

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any | None:
        self.generation += 1
        return super().unregister(plugin, name)


class _HotHook:
    """Calls a hook of the store's plugin manager with pluggy's semantics, but
    straight to the implementation where there is exactly one and no wrapper
    (a backend without middleware), saving the dispatch on the per-item path."""

    __slots__ = ("_caller", "_direct", "_generation", "_pm")

    def __init__(self, pm: _PluginManager, name: str) -> None:
        self._pm = pm
        self._caller = getattr(pm.hook, name)
        self._generation = -1
        self._direct: Callable[..., Any] | None = None

    def function(self) -> Callable[..., Any]:
        """What to call now, with the hook's arguments by keyword."""
        if self._generation != self._pm.generation:
            self._refresh()
        direct = self._direct
        return self._caller if direct is None else direct

    def _refresh(self) -> None:
        self._generation = self._pm.generation
        impls = self._caller.get_hookimpls()
        self._direct = None
        if len(impls) == 1 and not (impls[0].wrapper or impls[0].hookwrapper):
            function, names = impls[0].function, impls[0].argnames
            spec = self._caller.spec
            if spec is not None and set(names) == set(spec.argnames):
                self._direct = function  # callers pass exactly the spec's arguments
            else:
                self._direct = lambda **kwargs: function(**{name: kwargs[name] for name in names})


def as_key(key: object) -> uuid.UUID:
    """`key` as a `uuid.UUID`; text is parsed, anything else is a `TypeError`."""
    if isinstance(key, uuid.UUID):
        return key
    if isinstance(key, str):
        try:
            return uuid.UUID(key)
        except ValueError:
            raise ValueError(f"not a key (a UUID): {key!r}") from None
    raise TypeError(f"a key is a uuid.UUID or its text, not {type(key).__name__}: {key!r}")


def _abandon(workers: Workers, hook: Any, epoch: int) -> None:
    if forking.inherited(epoch):
        return  # the parent's threads and backend: nothing of them is ours to stop
    workers.shutdown(wait=False)
    hook.shutdown()


def _hand_over(done: concurrent.futures.Future[R], receiver: Callable[[R], object]) -> None:
    if not done.cancelled() and done.exception() is None:
        receiver(done.result())


def _cheap_writes_up_to(backend: object) -> int:
    value = getattr(backend, "cheap_writes_up_to", DEFAULT_CHEAP_WRITES_UP_TO)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"backend {backend!r}: cheap_writes_up_to must be a non-negative int, got {value!r}")
    return value
