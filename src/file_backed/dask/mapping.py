"""`SpillMapping`: a Dask worker's ``data`` mapping over an `FBPool`."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from dask.typing import Key

from file_backed.dask.areas import Area, new_area_name, sweep
from file_backed.dask.config import AUTO, SpillConfig, resolve
from file_backed.dask.meter import SpillMeter
from file_backed.errors import StoreClosedError
from file_backed.opening import _parameters, make_codec, open_store
from file_backed.plugins import get_backend
from file_backed.pool import FBPool

if TYPE_CHECKING:
    from distributed import Worker
    from distributed.spill import SpilledSize

    from file_backed.handle import Fb

__all__ = ["SpillMapping"]

logger = logging.getLogger("file_backed")

#: Without a byte budget the pool still measures sizes, against this bound.
_UNBOUNDED = 2**62


class SpillMapping(MutableMapping[Key, object]):
    """A Dask worker's ``data``: task results in an `FBPool`, spilled to its store.

    Build it with `file_backed.dask.data` (``Worker(data=...)``,
    ``LocalCluster(data=...)``, ``Nanny(data=...)``). Keyword arguments are
    the keys of a ``[file_backed]`` table (``backend``, ``options``, ``codec``,
    ``codec_options``, ``max_items``, ``max_bytes``, ``workers``,
    ``plugins``); keys not given come from the Dask configuration namespace
    ``file_backed``, then from `file_backed.dask.config.DEFAULTS`
    (``fs_hardlink``, codec ``dask``, ``max_bytes="auto"``). ``max_bytes="auto"``
    is the worker's memory limit times ``distributed.worker.memory.target``
    (``.spill`` when target is False; no byte budget without a memory limit).

    The store is opened on first use, in an area of its own (see
    `file_backed.dask.areas`) below the backend's ``path`` or ``url`` option,
    or below the worker's local directory when neither is given; ``fsync``
    defaults to False where the backend has it (spilled data need not survive
    a crash). Opening sweeps the areas that killed workers of this host left
    there. When the mapping belongs to a worker, the area is removed when the
    worker closes (also on restart): a worker plugin closes the mapping.

    The worker memory manager's protocol (``distributed.spill.ManualEvictProto``):
    `fast`, `evict`; and `spilled_total`, `cumulative_metrics`, `slow` for
    metrics, all constant-time.

    Notes on thread safety: every method may be called from any thread; one
    lock guards the key tables and is never held across I/O. ``d[key] = v`` on
    an event loop hands the insertion to a task (the value is readable at once)
    so that waiting for the eviction backlog never blocks the loop.
    """

    def __init__(self, worker_local_directory: str | None = None, **config: Any) -> None:
        self._config: SpillConfig = resolve(config)
        self._local_directory = worker_local_directory
        self._lock = threading.Lock()
        self._handles: dict[Key, Fb[object]] = {}
        self._sizes: dict[Key, int] = {}
        self._total = 0  # sizeof of every value in `_handles`
        self._pending: dict[Key, object] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._meter = SpillMeter()
        self._memory_reads = collections.Counter[str]()
        self._pool: FBPool[object] | None = None
        self._area: Area | None = None
        self._area_name = new_area_name()
        self._closed = False

    def __repr__(self) -> str:
        where = self._area.location if self._area is not None else "not opened"
        return f"<SpillMapping {len(self)} keys, {where}>"

    # -- opening and closing ---------------------------------------------------------

    @property
    def pool(self) -> FBPool[object]:
        """The pool, opened on first use. Raises `StoreClosedError` after `close`."""
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._closed:
                raise StoreClosedError("this spill mapping is closed")
            if self._pool is None:
                self._pool = self._open()
            return self._pool

    @property
    def area(self) -> Area | None:
        """Where this mapping spills (None before first use, or for backends without a location)."""
        return self._area

    def _open(self) -> FBPool[object]:
        worker = self._find_worker()
        table = self._config.table
        options = dict(table.options)
        accepted = _parameters(get_backend(table.backend)) or []
        location_key = next((name for name in ("url", "path") if name in options or name in accepted), None)
        base = options.get(location_key) if location_key else None
        if base is None:
            base = self._local_directory
        if location_key is not None and base is not None:
            base_area = Area(str(base), options.get("storage_options") or {})
            sweep(base_area.location, base_area.storage_options)
            self._area = base_area.child(self._area_name)
            options[location_key] = self._area.location
        if "fsync" in accepted:
            options.setdefault("fsync", False)
        codec = make_codec(table.codec, dict(table.codec_options))
        store = open_store(
            table.backend, codec=codec, workers=table.workers, plugins=(*table.plugins, self._meter), **options
        )
        from distributed.sizeof import safe_sizeof

        budget = self._budget(worker)
        pool: FBPool[object] = FBPool(
            store, max_items=table.max_items, max_bytes=_UNBOUNDED if budget is None else budget, sizeof=safe_sizeof
        )
        if worker is not None:
            from file_backed.dask.plugin import CloseSpillMapping

            worker.plugins[f"file-backed-spill-{self._area_name}"] = CloseSpillMapping(self)
        return pool

    def _find_worker(self) -> Worker | None:
        """The worker whose data this mapping is (None when used on its own)."""
        from distributed import Worker

        for worker in list(Worker._instances):
            manager = getattr(worker, "memory_manager", None)
            if manager is not None and getattr(manager, "data", None) is self:
                return worker
        return None

    def _budget(self, worker: Worker | None) -> int | None:
        max_bytes = self._config.max_bytes
        if max_bytes != AUTO:
            return max_bytes  # type: ignore[return-value]
        if worker is None or not worker.memory_manager.memory_limit:
            return None
        manager = worker.memory_manager
        fraction = manager.memory_target_fraction or manager.memory_spill_fraction
        if not fraction:
            return None
        return max(1, int(manager.memory_limit * fraction))  # type: ignore[operator]

    def close(self) -> None:
        """Forget every key, close the store and remove this mapping's area. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pool, self._pool = self._pool, None
            handles = list(self._handles.values())
            self._handles.clear()
            self._sizes.clear()
            self._pending.clear()
            self._total = 0
        del handles  # the blobs' deletes start now, on the store's threads
        if pool is None:
            return
        try:
            pool.store.close()
        finally:
            if self._area is not None:
                self._area.remove()

    # -- the mapping -----------------------------------------------------------------

    def __setitem__(self, key: Key, value: object) -> None:
        pool = self.pool
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            handle = pool.insert(value)
            with self._lock:
                self._forget_locked(key)
                self._admit_locked(key, handle)
            return
        with self._lock:
            self._forget_locked(key)
            self._pending[key] = value
        task = loop.create_task(self._insert_later(pool, key, value))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _insert_later(self, pool: FBPool[object], key: Key, value: object) -> None:
        try:
            handle = await pool.ainsert(value)
        except Exception as error:  # noqa: BLE001 - the value stays readable in memory
            if not self._closed:
                logger.warning("could not hand %r to the pool: %r; it stays in memory", key, error)
            return
        with self._lock:
            if self._pending.get(key) is value:
                del self._pending[key]
                self._admit_locked(key, handle)

    def _admit_locked(self, key: Key, handle: Fb[object]) -> None:
        size = handle.nbytes
        self._handles[key] = handle
        self._sizes[key] = size
        self._total += size

    def _forget_locked(self, key: Key) -> bool:
        if self._handles.pop(key, None) is not None:
            self._total -= self._sizes.pop(key)
            return True
        return self._pending.pop(key, _MISSING) is not _MISSING

    def __getitem__(self, key: Key) -> object:
        from distributed.metrics import context_meter

        with self._lock:
            handle = self._handles.get(key)
            if handle is None:
                return self._pending[key]
            size = self._sizes[key]
        if handle.resident:
            self._memory_reads["count"] += 1
            self._memory_reads["bytes"] += size
            context_meter.digest_metric("memory-read", 1, "count")
            context_meter.digest_metric("memory-read", size, "bytes")
            return handle.get()
        start = time.perf_counter()
        value = handle.get()
        context_meter.digest_metric("disk-read", time.perf_counter() - start, "seconds")
        context_meter.digest_metric("disk-read", 1, "count")
        context_meter.digest_metric("disk-read", self._meter.blob_size(handle.key), "bytes")
        return value

    def __delitem__(self, key: Key) -> None:
        with self._lock:
            if not self._forget_locked(key):
                raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key in self._handles or key in self._pending

    def __len__(self) -> int:
        return len(self._handles) + len(self._pending)

    def __iter__(self) -> Iterator[Key]:
        with self._lock:
            keys = [*self._handles, *self._pending]
        return iter(keys)

    # -- the worker memory manager's protocol ----------------------------------------

    @property
    def fast(self) -> Mapping[Key, int]:
        """The keys whose values are in memory now, each with its size (by Dask's
        ``sizeof``). Truthiness and ``len`` are constant-time: they count the
        pool's items in memory plus the values still being handed to it."""
        return _FastView(self)

    @property
    def slow(self) -> Mapping[Key, int]:
        """The keys whose values are only in the store now, each with its size in
        memory. ``len`` is constant-time."""
        return _SlowView(self)

    def evict(self) -> int:
        """Write (if not stored yet) and drop the least recently used value now, on
        the calling thread; return its size in memory, or -1 when nothing could
        be evicted (nothing in memory, or its write failed: it stays in memory,
        counted and logged by the pool). Never raises."""
        pool = self._pool
        if pool is None:
            return -1
        try:
            freed = pool.evict_one()
        except Exception:
            logger.exception("evicting from the spill mapping failed")
            return -1
        return freed if freed > 0 else -1

    @property
    def spilled_total(self) -> SpilledSize:
        """(memory, disk): the size in memory of the values that are only in the
        store, and the bytes of the blobs in the store now (a value read back
        keeps its blob, so this may exceed what the spilled values need)."""
        from distributed.spill import SpilledSize

        pool = self._pool
        in_memory = pool.stats.bytes if pool is not None else 0
        return SpilledSize(max(0, self._total - in_memory), self._meter.live_bytes)

    @property
    def cumulative_metrics(self) -> collections.defaultdict[tuple[str, str], float]:
        """``(label, unit) -> ever-increasing value`` as Dask's ``SpillBuffer``
        reports them to Prometheus: ``memory-read`` (count, bytes),
        ``disk-read`` and ``disk-write`` (count, bytes, seconds)."""
        metrics = collections.defaultdict(float, self._meter.snapshot())
        metrics["memory-read", "count"] = self._memory_reads["count"]
        metrics["memory-read", "bytes"] = self._memory_reads["bytes"]
        return metrics

    def _resident_count(self) -> int:
        pool = self._pool
        return len(pool) if pool is not None else 0


_MISSING: Any = object()


class _View(Mapping[Key, int]):
    """A live view of part of a `SpillMapping`: key to size."""

    __slots__ = ("_mapping",)

    def __init__(self, mapping: SpillMapping) -> None:
        self._mapping = mapping


class _FastView(_View):
    __slots__ = ()

    def __getitem__(self, key: Key) -> int:
        mapping = self._mapping
        with mapping._lock:
            if key in mapping._pending:
                from distributed.sizeof import safe_sizeof

                return int(safe_sizeof(mapping._pending[key]))
            handle = mapping._handles[key]
            if not handle.resident:
                raise KeyError(key)
            return mapping._sizes[key]

    def __iter__(self) -> Iterator[Key]:
        mapping = self._mapping
        with mapping._lock:
            keys = [key for key, handle in mapping._handles.items() if handle.resident]
            keys += mapping._pending
        return iter(keys)

    def __len__(self) -> int:
        return self._mapping._resident_count() + len(self._mapping._pending)

    def __contains__(self, key: object) -> bool:
        mapping = self._mapping
        handle = mapping._handles.get(key)  # type: ignore[call-overload]
        return key in mapping._pending if handle is None else handle.resident


class _SlowView(_View):
    __slots__ = ()

    def __getitem__(self, key: Key) -> int:
        mapping = self._mapping
        with mapping._lock:
            handle = mapping._handles[key]
            if handle.resident:
                raise KeyError(key)
            return mapping._sizes[key]

    def __iter__(self) -> Iterator[Key]:
        mapping = self._mapping
        with mapping._lock:
            keys = [key for key, handle in mapping._handles.items() if not handle.resident]
        return iter(keys)

    def __len__(self) -> int:
        mapping = self._mapping
        return max(0, len(mapping._handles) - mapping._resident_count())

    def __contains__(self, key: object) -> bool:
        handle = self._mapping._handles.get(key)  # type: ignore[call-overload]
        return handle is not None and not handle.resident
