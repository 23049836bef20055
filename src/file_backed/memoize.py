"""`memoize`: cache a function's results in a pool, optionally persisted.

>>> import file_backed as fb
>>> with fb.open_store("memory") as store:
...     pool = fb.FBPool(store, max_items=10)
...     @fb.memoize(pool)
...     def square(x):
...         print("computing")
...         return x * x
...     square(3), square(3)
computing
(9, 9)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import inspect
import io
import logging
import pickle
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, Protocol, TypeVar, cast

import attrs

from file_backed.derived_keys import memo_key
from file_backed.errors import EncodeError, UnhashableArgumentError
from file_backed.handle import Fb
from file_backed.pool import FBPool
from file_backed.store import TrackedPath

__all__ = ["MemoInfo", "Memoized", "call_digest", "memoize"]

logger = logging.getLogger("file_backed")

P = ParamSpec("P")
R = TypeVar("R")


@attrs.frozen
class MemoInfo:
    """Counters of a memoized function since it was decorated (or cleared).

    hits: calls answered from the pool.
    restored: calls answered by a result persisted earlier (another process, a
        previous run), registered from the location.
    misses: calls that ran the function.
    waited: calls that waited for the same call running in another thread or
        coroutine, and shared its outcome.
    size: results this function keeps handles to now.
    """

    hits: int = 0
    restored: int = 0
    misses: int = 0
    waited: int = 0
    size: int = 0


class Memoized(Protocol[P, R]):
    """What `memoize` returns: the function, plus its cache's controls."""

    __wrapped__: Callable[P, R]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def cache_info(self) -> MemoInfo:
        """A snapshot of the counters."""
        ...

    def cache_clear(self) -> None:
        """Drop the handles to the results kept in the pool. Results persisted at
        the location stay (and are found again)."""
        ...

    def key(self, *args: P.args, **kwargs: P.kwargs) -> uuid.UUID:
        """The key under which the result of this call is (or would be) persisted."""
        ...


# -- the key of a call -------------------------------------------------------------------------


class _SortedSet(tuple[Any, ...]):
    """A set or frozenset in canonical order, as it is hashed: the iteration order
    of a set of strings depends on string hashing, which is randomised per process."""

    __slots__ = ()


def _canonical(obj: Any) -> Any:
    """`obj` with every set and frozenset inside tuples, lists and dicts (the
    containers arguments arrive in) replaced by a `_SortedSet` of its elements
    ordered by their pickled bytes."""
    kind = type(obj)
    if kind is set or kind is frozenset:
        elements = [_canonical(element) for element in obj]
        return _SortedSet((kind.__name__, *sorted(elements, key=_pickled)))
    if kind is tuple or kind is list:
        return kind(_canonical(element) for element in obj)
    if kind is dict:
        return {key: _canonical(value) for key, value in obj.items()}
    return obj


def _pickled(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=5)


def call_digest(function_id: str, version: str, arguments: object) -> bytes:
    """A stable 32-byte BLAKE2b digest of a call: the function's identity, its
    version and the pickled `arguments` (sets and frozenset among tuples, lists
    and dicts in a canonical order, so they hash alike in every process; sets
    held by other objects are pickled as they iterate). Large buffers (numpy arrays, pickle
    protocol-5 buffers) are hashed in place, without a copy.

    Raises `UnhashableArgumentError` when `arguments` cannot be pickled."""
    stream = io.BytesIO()
    buffers: list[pickle.PickleBuffer] = []
    try:
        pickle.Pickler(stream, protocol=5, buffer_callback=buffers.append).dump(_canonical(arguments))
    except Exception as error:
        raise UnhashableArgumentError(
            f"{function_id} is memoized, but its arguments cannot be pickled, so they have no stable hash: "
            f"{type(error).__name__}: {error}"
        ) from error
    digest = hashlib.blake2b(digest_size=32, person=b"fb.memoize")
    for part in (function_id, version):
        encoded = part.encode()
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    digest.update(stream.getbuffer())
    for buffer in buffers:
        raw = buffer.raw()
        digest.update(raw.nbytes.to_bytes(8, "big"))
        digest.update(raw)
    return digest.digest()


# -- the cache ---------------------------------------------------------------------------------------


class _Cache:
    """The results of one memoized function, and the calls running now."""

    def __init__(self, pool: FBPool[Any], tracked: TrackedPath | None, function_id: str, version: str) -> None:
        self.pool = pool
        self.tracked = tracked
        self.function_id = function_id
        self.version = version
        self.lock = threading.Lock()
        self.handles: dict[bytes, Fb[Any]] = {}
        self.running: dict[bytes, tuple[concurrent.futures.Future[Any], object]] = {}
        self.counts = {"hits": 0, "restored": 0, "misses": 0, "waited": 0}
        self.warned_unencodable = False

    def digest(self, signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        arguments: object
        if signature is not None:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = tuple(
                (name, sorted(value.items()) if isinstance(value, dict) and _is_var_keyword(signature, name) else value)
                for name, value in bound.arguments.items()
            )
        else:
            arguments = (args, sorted(kwargs.items()))
        return call_digest(self.function_id, self.version, arguments)

    def claim(self, digest: bytes, owner: object) -> tuple[Fb[Any] | None, concurrent.futures.Future[Any], bool]:
        """The kept handle of `digest`, else the future of the running call and
        whether the caller is to run it (it owns the future)."""
        with self.lock:
            handle = self.handles.get(digest)
            if handle is not None:
                self.counts["hits"] += 1
                return handle, concurrent.futures.Future(), False
            running = self.running.get(digest)
            if running is not None:
                future, running_owner = running
                if running_owner == owner:
                    raise RecursionError(
                        f"{self.function_id} called itself with the same arguments while computing them"
                    )
                self.counts["waited"] += 1
                return None, future, False
            future = concurrent.futures.Future()
            self.running[digest] = (future, owner)
            return None, future, True

    def finish(self, digest: bytes, future: concurrent.futures.Future[Any], error: BaseException | None) -> None:
        """End the call that owns `future`: its waiters get `error`, or retry
        when it was cancelled or interrupted."""
        with self.lock:
            self.running.pop(digest, None)
        if error is None:
            return
        if isinstance(error, Exception):
            future.set_exception(error)
        else:
            future.cancel()

    def restore(self, digest: bytes) -> tuple[bool, Any]:
        """``(True, result)`` when a result of `digest` is persisted at the location."""
        tracked = self.tracked
        if tracked is None:
            return False, None
        key = memo_key(digest)
        if key not in tracked:
            return False, None
        handle = self.pool.register(tracked, key)
        if handle is None:
            return False, None
        value = handle.get()
        with self.lock:
            self.handles[digest] = handle
            self.counts["restored"] += 1
        return True, value

    def keep(self, digest: bytes, value: Any) -> None:
        """Keep `value` as the result of `digest`: in the pool, and persisted."""
        handle: Fb[Any] | None = None
        tracked = self.tracked
        if tracked is not None:
            handle = self._persist(digest, value, tracked)
        if handle is None:
            handle = self.pool.insert(value)
        with self.lock:
            self.handles[digest] = handle
            self.counts["misses"] += 1

    def _persist(self, digest: bytes, value: Any, tracked: TrackedPath) -> Fb[Any] | None:
        store = self.pool.store
        key = memo_key(digest)
        if key not in tracked:
            try:
                token, _written = store.store_blob(key, value)
            except EncodeError as error:
                if not self.warned_unencodable:
                    self.warned_unencodable = True
                    logger.warning(
                        "%s: a result cannot be encoded (%s); it is kept in memory only, not persisted",
                        self.function_id,
                        error,
                    )
                return None
            except RuntimeError:  # a blob of this key is still in the temporary area
                return None
            store.persist_blob(token, tracked)
            store.fsync(tracked)
            handle = self.pool.register(tracked, key)  # shares the token just written
            del token
            return handle
        return self.pool.register(tracked, key)

    def info(self) -> MemoInfo:
        with self.lock:
            return MemoInfo(size=len(self.handles), **self.counts)

    def clear(self) -> None:
        with self.lock:
            handles = self.handles
            self.handles = {}
            self.counts = dict.fromkeys(self.counts, 0)
        del handles


def _is_var_keyword(signature: inspect.Signature, name: str) -> bool:
    return signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD


def _signature(function: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None


def memoize(
    pool: FBPool[Any],
    tracked: TrackedPath | None = None,
    *,
    version: str | int = 0,
    name: str | None = None,
) -> Callable[[Callable[P, R]], Memoized[P, R]]:
    """Decorate a function (plain or ``async def``) so that its results are kept
    in `pool`, keyed by the function and its arguments.

    Parameters
    ----------
    pool:
        Where results are kept; they are evicted to its store like any item.
    tracked:
        Optional persisted location: each result is also persisted there
        (durably, before the call returns), so later processes find it instead
        of computing it again.
    version:
        Bump it when the function's code changes meaning: results of other
        versions are not used.
    name:
        The function's identity in keys; default ``module.qualname``. Set it to
        keep results when moving or renaming the function.

    The key of a call is a BLAKE2b hash of the name, the version and the
    pickled arguments, bound to the signature (so ``f(1)``, ``f(x=1)`` and
    defaults give one key; sets are hashed in a canonical order). Arguments
    need not be hashable, but must pickle alike whenever they are equal.

    Concurrent calls with the same arguments compute once: the other threads
    (or coroutines) wait and get the same result, or the same exception.
    Exceptions are not cached. A call that is cancelled or interrupted lets a
    waiting one compute instead.

    The result is shared by every caller: do not mutate it.

    Raises
    ------
    UnhashableArgumentError
        From a call whose arguments cannot be pickled; the function is not called.
    RecursionError
        From a call that recursively calls itself with the same arguments.
    """
    version_text = str(version)

    def decorate(function: Callable[P, R]) -> Memoized[P, R]:
        function_id = name if name is not None else f"{function.__module__}.{function.__qualname__}"
        cache = _Cache(pool, tracked, function_id, version_text)
        signature = _signature(function)

        if inspect.iscoroutinefunction(function):
            async_function = cast(Callable[..., Awaitable[Any]], function)

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                digest = cache.digest(signature, args, kwargs)
                store = pool.store
                while True:
                    handle, future, owner = cache.claim(digest, asyncio.current_task())
                    if handle is not None:
                        async with handle.aload() as value:
                            return value
                    if not owner:
                        try:
                            return await asyncio.shield(asyncio.wrap_future(future))
                        except (asyncio.CancelledError, concurrent.futures.CancelledError):
                            task = asyncio.current_task()
                            if future.cancelled() and not (task is not None and task.cancelling()):
                                continue  # the running call was cancelled, not this one: run it here
                            raise
                    try:
                        found, value = await store.call(cache.restore, digest)
                        if not found:
                            value = await async_function(*args, **kwargs)
                            await store.call(cache.keep, digest, value)
                    except BaseException as error:
                        cache.finish(digest, future, error)
                        raise
                    cache.finish(digest, future, None)
                    future.set_result(value)
                    return value

            wrapper: Any = async_wrapper
        else:

            @functools.wraps(function)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                digest = cache.digest(signature, args, kwargs)
                while True:
                    handle, future, owner = cache.claim(digest, threading.get_ident())
                    if handle is not None:
                        return handle.get()
                    if not owner:
                        try:
                            return future.result()
                        except concurrent.futures.CancelledError:
                            continue  # the running call was interrupted: run it here
                    try:
                        found, value = cache.restore(digest)
                        if not found:
                            value = function(*args, **kwargs)
                            cache.keep(digest, value)
                    except BaseException as error:
                        cache.finish(digest, future, error)
                        raise
                    cache.finish(digest, future, None)
                    future.set_result(value)
                    return value

            wrapper = sync_wrapper

        def key(*args: Any, **kwargs: Any) -> uuid.UUID:
            return memo_key(cache.digest(signature, args, kwargs))

        wrapper.cache_info = cache.info
        wrapper.cache_clear = cache.clear
        wrapper.key = key
        return cast(Memoized[P, R], wrapper)

    return decorate
