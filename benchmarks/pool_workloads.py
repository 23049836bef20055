"""W1, W2 and W3: many items through a small pool, read back in a skewed order.

W1: 2 000 numpy items of 64 KiB through a pool of 200, 20 000 reads. W2: 300
items of 1 MiB, pool of 50, 3 000 reads. W3: 50 000 dicts of about 1 KiB
pickled, pool of 5 000, 100 000 reads. Peers: zict (``Buffer`` over ``File``),
diskcache and the hand-written LRU a user would write instead (an
``OrderedDict`` of values; an evicted value is pickled to a file of its own
once and the file kept while the key lives; no threads). Reads draw keys from a bounded Zipf(1.2) law (rank r has weight
r**-1.2 over the items, ranks shuffled once by the seed); every system reads
the same sequence.

Each system runs in a fresh directory; the systems alternate their order from
repeat to repeat and the runner syncs dirty pages between runs. Insert times
include waiting for the library's background eviction writes
(``store.finished()``), so they are comparable with zict's synchronous ones.
The library reads with ``h.get()``, zict with ``buf[k]``, diskcache with
``cache[k]``, the hand-written LRU with ``lru[k]``; the library uses its default ``pickle`` codec on ``fs_hardlink``.
"""

from __future__ import annotations

import collections
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

import file_backed as fb

from .common import Context, KiB, MiB, Row, Section, Target, Workload, optional_peer, page_cache_note, timed

__all__ = ["WORKLOADS"]


@dataclass(frozen=True)
class PoolSizes:
    """The size of one W workload."""

    items: int
    item_bytes: int
    pool: int
    reads: int

    def describe(self) -> str:
        size = f"{self.item_bytes // KiB} KiB" if self.item_bytes < MiB else f"{self.item_bytes // MiB} MiB"
        return f"{self.items} items of {size}, pool of {self.pool}, {self.reads} Zipf(1.2) reads"


def numpy_items(sizes: PoolSizes, seed: int) -> list[Any]:
    """Random float64 arrays of `sizes.item_bytes` each."""
    rng = np.random.default_rng(seed)
    return [rng.random(sizes.item_bytes // 8) for _ in range(sizes.items)]


def record_items(sizes: PoolSizes, seed: int) -> list[Any]:
    """Dicts of about `sizes.item_bytes` pickled: the parsed records (rows of a
    document, JSON objects) small-item users keep."""
    rng = np.random.default_rng(seed)
    floats = max(1, (sizes.item_bytes - 200) // 10)
    return [
        {
            "id": index,
            "name": f"record-{index:08d}",
            "tags": ["alpha", "beta", str(int(rng.integers(1000)))],
            "values": [float(x) for x in rng.random(floats)],
        }
        for index in range(sizes.items)
    ]


W1_SIZES = {
    "smoke": PoolSizes(60, 64 * KiB, 10, 200),
    "quick": PoolSizes(600, 64 * KiB, 60, 4000),
    "full": PoolSizes(2000, 64 * KiB, 200, 20000),
}
W2_SIZES = {
    "smoke": PoolSizes(12, 1 * MiB, 4, 40),
    "quick": PoolSizes(120, 1 * MiB, 20, 1000),
    "full": PoolSizes(300, 1 * MiB, 50, 3000),
}
W3_SIZES = {
    "smoke": PoolSizes(500, 1 * KiB, 50, 1000),
    "quick": PoolSizes(10000, 1 * KiB, 1000, 20000),
    "full": PoolSizes(50000, 1 * KiB, 5000, 100000),
}


class _System(Protocol):
    """A cache under test: insert every value, then read by index."""

    name: str

    def insert(self, values: list[np.ndarray]) -> None: ...

    def read(self, order: list[int]) -> None: ...

    def hits(self) -> int: ...

    def close(self) -> None: ...


class _Library:
    name = "file_backed"

    def __init__(self, ctx: Context, directory: Path, pool_items: int, label: str) -> None:
        self._ctx = ctx
        self._label = label
        self.store = fb.open_store("fs_hardlink", path=directory)
        self.pool: fb.FBPool[np.ndarray] = fb.FBPool(self.store, max_items=pool_items)
        self.handles: list[fb.Fb[np.ndarray]] = []

    def insert(self, values: list[np.ndarray]) -> None:
        insert = self.pool.insert
        with self._ctx.profile(f"{self._label}-insert"):
            self.handles = [insert(value) for value in values]
            self.store.finished()

    def read(self, order: list[int]) -> None:
        handles = self.handles
        with self._ctx.profile(f"{self._label}-read"):
            for index in order:
                handles[index].get()
            self.store.finished()

    def hits(self) -> int:
        return self.pool.stats.hits

    def close(self) -> None:
        # Closing deletes the blobs of live handles: deferred to the end of the
        # suite, so no mass delete precedes another system's run.
        self.store.finished()
        self._ctx.defer(self.store.close, self.handles)
        self.handles = []


class _Zict:
    name = "zict"

    def __init__(self, zict: Any, directory: Path, pool_items: int) -> None:
        slow = zict.Func(pickle.dumps, pickle.loads, zict.File(str(directory)))
        self.buffer = zict.Buffer({}, slow, pool_items)
        self.keys: list[str] = []
        self._hits = 0

    def insert(self, values: list[np.ndarray]) -> None:
        buffer = self.buffer
        self.keys = [str(index) for index in range(len(values))]
        for key, value in zip(self.keys, values, strict=True):
            buffer[key] = value

    def read(self, order: list[int]) -> None:
        buffer, keys, fast = self.buffer, self.keys, self.buffer.fast
        hits = 0
        for index in order:
            key = keys[index]
            hits += key in fast
            buffer[key]
        self._hits += hits

    def hits(self) -> int:
        return self._hits

    def close(self) -> None:
        self.buffer.close()


class _HandWrittenLru:
    """The 40-line cache a user writes instead: an OrderedDict of at most
    `pool_items` values; an evicted value is pickled to a file of its own the
    first time it is evicted (write-once) and read back with ``pickle.load``."""

    name = "hand-written LRU"

    def __init__(self, directory: Path, pool_items: int) -> None:
        self.directory = directory
        self.capacity = pool_items
        self.values: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self.on_disk: set[int] = set()
        self._hits = 0

    def _set(self, key: int, value: Any) -> None:
        values = self.values
        values[key] = value
        while len(values) > self.capacity:
            old, evicted = values.popitem(last=False)
            if old not in self.on_disk:
                with open(os.path.join(self.directory, str(old)), "wb") as file:
                    pickle.dump(evicted, file, protocol=5)
                self.on_disk.add(old)

    def insert(self, values: list[Any]) -> None:
        for key, value in enumerate(values):
            self._set(key, value)

    def read(self, order: list[int]) -> None:
        values, hits = self.values, 0
        for key in order:
            if key in values:
                values.move_to_end(key)
                hits += 1
                continue
            with open(os.path.join(self.directory, str(key)), "rb") as file:
                self._set(key, pickle.load(file))
        self._hits += hits

    def hits(self) -> int:
        return self._hits

    def close(self) -> None:
        self.values.clear()


class _DiskCache:
    name = "diskcache"

    def __init__(self, diskcache: Any, directory: Path) -> None:
        self.cache = diskcache.Cache(str(directory))
        self.keys: list[str] = []

    def insert(self, values: list[np.ndarray]) -> None:
        cache = self.cache
        self.keys = [str(index) for index in range(len(values))]
        for key, value in zip(self.keys, values, strict=True):
            cache[key] = value

    def read(self, order: list[int]) -> None:
        cache, keys = self.cache, self.keys
        for index in order:
            cache[keys[index]]

    def hits(self) -> int:
        return 0  # no memory tier: every read goes to disk (or its page cache)

    def close(self) -> None:
        self.cache.close()


def zipf_order(items: int, reads: int, seed: int) -> list[int]:
    """`reads` indices into `items` drawn from a bounded Zipf(1.2) law whose
    rank-to-item mapping is a seeded random permutation."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, items + 1) ** 1.2
    ranks = rng.choice(items, size=reads, p=weights / weights.sum())
    permutation = rng.permutation(items)
    return [int(index) for index in permutation[ranks]]


def _measure(
    ctx: Context,
    name: str,
    sizes: PoolSizes,
    peers: list[str],
    make_items: Callable[[PoolSizes, int], list[Any]],
    targets: dict[str, Target],
) -> Section:
    """Every system of `peers` on one workload; `targets` apply to the ratio of
    the library to each peer."""
    section = Section(name, TITLES[name], sizes.describe())
    values = make_items(sizes, ctx.seed)
    order = zipf_order(sizes.items, sizes.reads, ctx.seed)
    factories: dict[str, Callable[[Path], _System]] = {
        "file_backed": lambda d: _Library(ctx, d, sizes.pool, name.lower()),
    }
    if "hand-written LRU" in peers:
        factories["hand-written LRU"] = lambda d: _HandWrittenLru(d, sizes.pool)
    zict = optional_peer("zict")
    if "zict" in peers:
        if zict is None:
            section.notes.append("zict not installed (pip install 'file-backed[bench]'): no zict figures")
        else:
            factories["zict"] = lambda d: _Zict(zict, d, sizes.pool)
    diskcache = optional_peer("diskcache")
    if "diskcache" in peers:
        if diskcache is None:
            section.notes.append("diskcache not installed: no diskcache figures")
        else:
            factories["diskcache"] = lambda d: _DiskCache(diskcache, d)

    figures: dict[str, dict[str, list[float]]] = {system: {} for system in factories}
    names = list(factories)
    for repeat in range(ctx.repeats):
        rotation = names[repeat % len(names) :] + names[: repeat % len(names)]
        for system_name in rotation:
            ctx.settle()
            system = factories[system_name](ctx.scratch(f"{name.lower()}-{system_name}"))
            try:
                insert_seconds = timed(system.insert, values)
                hits_before = system.hits()
                read_seconds = timed(system.read, order)
                hit_rate = (system.hits() - hits_before) / len(order)
            finally:
                system.close()
            record = figures[system_name]
            record.setdefault("inserts/s", []).append(sizes.items / insert_seconds)
            record.setdefault("reads/s", []).append(len(order) / read_seconds)
            record.setdefault("read MB/s", []).append(len(order) * sizes.item_bytes / 1e6 / read_seconds)
            record.setdefault("hit rate", []).append(hit_rate)

    indicative = ctx.mode != "full"
    ours = figures["file_backed"]
    for peer in [p for p in peers if p in figures]:
        theirs = figures[peer]
        for metric, unit in (("inserts/s", "/s"), ("reads/s", "/s"), ("read MB/s", "MB/s"), ("hit rate", "fraction")):
            target = targets.get(metric)
            section.rows.append(
                Row(
                    workload=name,
                    metric=metric,
                    unit=unit,
                    runs=tuple(ours[metric]),
                    other_name=peer,
                    other_runs=tuple(theirs[metric]),
                    target=target,
                    indicative=indicative and target is not None,
                )
            )
    if len(figures) == 1:
        for metric, unit in (("inserts/s", "/s"), ("reads/s", "/s"), ("read MB/s", "MB/s"), ("hit rate", "fraction")):
            section.rows.append(Row(name, metric, unit, runs=tuple(ours[metric])))
    section.notes.append(page_cache_note(ctx, sizes.items * sizes.item_bytes))
    section.notes.append(f"{ctx.repeats} repeats, medians; systems alternate their order per repeat, fresh directories")
    return section


TITLES = {
    "W1": "W1: 64 KiB numpy items, Zipf reads (vs zict, diskcache, hand-written LRU)",
    "W2": "W2: 1 MiB numpy items, Zipf reads (vs zict, hand-written LRU)",
    "W3": "W3: ~1 KiB dicts, Zipf reads (vs zict, diskcache, hand-written LRU)",
}


def _at_least(times: float) -> dict[str, Target]:
    return {
        "inserts/s": Target("ratio", ">=", times, f">= {times}x every peer"),
        "reads/s": Target("ratio", ">=", times, f">= {times}x every peer"),
    }


def run_w1(ctx: Context) -> Section:
    """W1 at the sizes of `ctx.mode`."""
    peers = ["zict", "diskcache", "hand-written LRU"]
    return _measure(ctx, "W1", W1_SIZES[ctx.mode], peers, numpy_items, _at_least(1.2))


def run_w2(ctx: Context) -> Section:
    """W2 at the sizes of `ctx.mode`."""
    return _measure(ctx, "W2", W2_SIZES[ctx.mode], ["zict", "hand-written LRU"], numpy_items, {})


def run_w3(ctx: Context) -> Section:
    """W3 at the sizes of `ctx.mode`."""
    peers = ["zict", "diskcache", "hand-written LRU"]
    return _measure(ctx, "W3", W3_SIZES[ctx.mode], peers, record_items, _at_least(1.0))


WORKLOADS = (
    Workload("w1", TITLES["W1"], run_w1),
    Workload("w2", TITLES["W2"], run_w2),
    Workload("w3", TITLES["W3"], run_w3),
)
