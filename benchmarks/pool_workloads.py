"""W1 and W2: many items through a small pool, read back in a skewed order.

W1: 2 000 numpy items of 64 KiB through a pool of 200, 20 000 reads; peers
zict and diskcache. W2: 300 items of 1 MiB, pool of 50, 3 000 reads; peer
zict. Reads draw keys from a bounded Zipf(1.2) law (rank r has weight
r**-1.2 over the items, ranks shuffled once by the seed); every system reads
the same sequence.

Each system runs in a fresh directory; the systems alternate their order from
repeat to repeat and the runner syncs dirty pages between runs. Insert times
include waiting for the library's background eviction writes
(``store.finished()``), so they are comparable with zict's synchronous ones.
The library reads with ``h.get()``, zict with ``buf[k]``, diskcache with
``cache[k]``; the library uses its default ``pickle`` codec on ``fs_hardlink``.
"""

from __future__ import annotations

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
) -> Section:
    section = Section(name, TITLES[name], sizes.describe())
    rng = np.random.default_rng(ctx.seed)
    values = [rng.random(sizes.item_bytes // 8) for _ in range(sizes.items)]
    order = zipf_order(sizes.items, sizes.reads, ctx.seed)
    factories: dict[str, Callable[[Path], _System]] = {
        "file_backed": lambda d: _Library(ctx, d, sizes.pool, name.lower()),
    }
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

    targets = {
        "inserts/s": Target("ratio", ">=", 1.0, ">= 1.0x zict"),
        "reads/s": Target("ratio", ">=", 1.5, ">= 1.5x zict"),
    }
    indicative = ctx.mode != "full"
    ours = figures["file_backed"]
    for peer in [p for p in peers if p in figures]:
        theirs = figures[peer]
        for metric, unit in (("inserts/s", "/s"), ("reads/s", "/s"), ("read MB/s", "MB/s"), ("hit rate", "fraction")):
            target = targets.get(metric) if peer == "zict" else None
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
    "W1": "W1: 64 KiB numpy items, Zipf reads (vs zict, diskcache)",
    "W2": "W2: 1 MiB numpy items, Zipf reads (vs zict)",
}


def run_w1(ctx: Context) -> Section:
    """W1 at the sizes of `ctx.mode`."""
    return _measure(ctx, "W1", W1_SIZES[ctx.mode], ["zict", "diskcache"])


def run_w2(ctx: Context) -> Section:
    """W2 at the sizes of `ctx.mode`."""
    return _measure(ctx, "W2", W2_SIZES[ctx.mode], ["zict"])


WORKLOADS = (Workload("w1", TITLES["W1"], run_w1), Workload("w2", TITLES["W2"], run_w2))
