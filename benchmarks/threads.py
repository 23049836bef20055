"""Threads: loading evicted 1 MiB items with one thread and with four.

Items are inserted into a pool of eight, so all but the last few are evicted
to ``fs_hardlink``; after a warm-up pass every blob is in the temporary area
and the page cache. Each pass loads every item once with ``h.get()``: one
thread in order, or four threads each taking every fourth item (threads
started before the timing). Reloading a pool of eight evicts without writing
(the blobs are kept), so passes measure loads only. The same blob files read
raw (``readinto`` a new buffer) with one and four threads give the machine's
own scaling for comparison. Passes alternate their order per repeat.

Warm passes read blobs from the page cache. In ``--full`` mode, where the page
cache may be dropped, cold passes (page cache dropped before each) are added:
they measure loads from the disk itself.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

import file_backed as fb

from .common import Context, KiB, MiB, Row, Section, Target, Workload

__all__ = ["WORKLOADS"]

T = TypeVar("T")


@dataclass(frozen=True)
class ThreadSizes:
    """How many items of which size."""

    items: int
    item_bytes: int


SIZES = {
    "smoke": ThreadSizes(16, 64 * KiB),
    "quick": ThreadSizes(96, 1 * MiB),
    "full": ThreadSizes(256, 1 * MiB),
}
THREADS = 4


def _pass(
    executor: concurrent.futures.ThreadPoolExecutor | None, items: Sequence[T], load: Callable[[T], object]
) -> float:
    """Seconds to apply `load` to every item, on the caller's thread or split
    over the executor's threads (every `THREADS`-th item each)."""

    def chunk(part: Sequence[T]) -> None:
        for item in part:
            load(item)

    started = time.perf_counter()
    if executor is None:
        chunk(items)
    else:
        for future in [executor.submit(chunk, items[start::THREADS]) for start in range(THREADS)]:
            future.result()
    return time.perf_counter() - started


def _read_file(path: Path) -> bytearray:
    """The whole file `path`, read with ``readinto`` into a new buffer."""
    with open(path, "rb", buffering=0) as file:
        data = bytearray(os.fstat(file.fileno()).st_size)
        view = memoryview(data)
        while view.nbytes:
            count = file.readinto(view)
            if not count:
                break
            view = view[count:]
    return data


def run(ctx: Context) -> Section:
    """Loads per second with one and with four threads, library and raw files."""
    sizes = SIZES[ctx.mode]
    section = Section(
        "threads",
        TITLE,
        f"{sizes.items} evicted items of {sizes.item_bytes // KiB} KiB, 1 vs {THREADS} threads, {ctx.repeats} repeats",
    )
    rng = np.random.default_rng(ctx.seed)
    temperatures = ("warm", "cold") if ctx.drop_caches else ("warm",)
    figures: dict[str, list[float]] = {
        f"{kind}-{threads}-{temperature}": []
        for kind in ("lib", "raw")
        for threads in (1, THREADS)
        for temperature in temperatures
    }
    store = fb.open_store("fs_hardlink", path=ctx.scratch("threads"))
    handles: list[fb.Fb[np.ndarray]] = []
    try:
        pool: fb.FBPool[np.ndarray] = fb.FBPool(store, max_items=sizes.items)
        handles = [pool.insert(rng.integers(0, 256, sizes.item_bytes, dtype=np.uint8)) for _ in range(sizes.items)]
        for handle in handles:
            handle.write_now()  # a file per blob, as the raw reads below expect
        pool.max_items = 8
        store.finished()
        root: Path = store.backend.root  # type: ignore[attr-defined]
        files = [root / handle.key.hex[:2] / handle.key.hex for handle in handles]
        with concurrent.futures.ThreadPoolExecutor(THREADS) as executor:
            for future in [executor.submit(time.sleep, 0.01) for _ in range(THREADS)]:
                future.result()  # all threads started
            _pass(executor, handles, fb.Fb.get)  # warm-up: every item evicted once, blobs cached
            store.finished()
            for repeat in range(ctx.repeats):
                names = list(figures) if repeat % 2 == 0 else list(figures)[::-1]
                for name in names:
                    kind, threads, temperature = name.split("-")
                    ctx.settle(drop=temperature == "cold")
                    pool_executor = executor if threads != "1" else None
                    if kind == "lib":
                        with ctx.profile(f"threads-{name}"):
                            seconds = _pass(pool_executor, handles, fb.Fb.get)
                    else:
                        seconds = _pass(pool_executor, files, _read_file)
                    figures[name].append(sizes.items / seconds)
        misses = pool.stats.misses
    finally:
        store.finished()
        ctx.defer(store.close, handles)  # closing deletes the live handles' blobs: not before other workloads
    for temperature in temperatures:
        where = "page cache" if temperature == "warm" else "disk, cold cache"
        section.rows.extend(_rows(figures, temperature, where))
    expected = sizes.items * (2 * len(temperatures) * ctx.repeats + 1)
    if misses < expected:
        section.notes.append(f"only {misses} of {expected} loads missed the pool: some items were still resident")
    section.notes.append(
        f"{os.cpu_count()} CPUs; warm passes read from the page cache ({sizes.items * sizes.item_bytes // MiB} MiB "
        "of blobs, never dropped before them)" + ("; cold passes after dropping it" if ctx.drop_caches else "")
    )
    return section


def _rows(figures: dict[str, list[float]], temperature: str, where: str) -> list[Row]:
    """The three rows of one temperature: library 4 vs 1 thread (the target),
    raw 4 vs 1 thread, library vs raw with one thread."""

    def row(metric: str, ours: str, other_name: str, other: str, target: Target | None = None) -> Row:
        return Row(
            workload="threads",
            metric=f"{metric} ({where})",
            unit="/s",
            runs=tuple(figures[ours]),
            other_name=other_name,
            other_runs=tuple(figures[other]),
            target=target,
        )

    return [
        row(
            f"loads/s, {THREADS} threads vs 1",
            f"lib-{THREADS}-{temperature}",
            "file_backed, 1 thread",
            f"lib-1-{temperature}",
            Target("ratio", ">=", 1.7, ">= 1.7x one thread") if temperature == "warm" else None,
        ),
        row(
            f"raw reads/s, {THREADS} threads vs 1",
            f"raw-{THREADS}-{temperature}",
            "raw, 1 thread",
            f"raw-1-{temperature}",
        ),
        row("loads/s vs raw reads, 1 thread", f"lib-1-{temperature}", "raw, 1 thread", f"raw-1-{temperature}"),
    ]


TITLE = "Threads: loading evicted 1 MiB items, 1 vs 4 threads"
WORKLOADS = (Workload("threads", TITLE, run),)
