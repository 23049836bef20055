"""Threads: loading evicted 1 MiB items with one thread and with four.

Items are inserted into a pool of eight, so all but the last few are evicted
to ``fs_hardlink``; after a warm-up pass every blob is in the temporary area
and the page cache. Each pass loads every item once with ``h.get()``: one
thread in order, or four threads each taking every fourth item (threads
started before the timing). Reloading a pool of eight evicts without writing
(the blobs are kept), so passes measure loads only. The same blob files read
raw (``readinto`` a new buffer) with one and four threads give the machine's
own scaling for comparison. Passes alternate their order per repeat.
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

from .common import Context, KiB, MiB, Row, Section, Target, Workload, median, page_cache_note

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
    figures: dict[str, list[float]] = {"lib-1": [], "lib-4": [], "raw-1": [], "raw-4": []}
    with fb.open_store("fs_hardlink", path=ctx.scratch("threads")) as store:
        pool: fb.FBPool[np.ndarray] = fb.FBPool(store, max_items=8)
        handles = [pool.insert(rng.integers(0, 256, sizes.item_bytes, dtype=np.uint8)) for _ in range(sizes.items)]
        for handle in handles:
            handle.write_now()
        store.finished()
        root: Path = store.backend.root  # type: ignore[attr-defined]
        files = [root / handle.key.hex[:2] / handle.key.hex for handle in handles]
        with concurrent.futures.ThreadPoolExecutor(THREADS) as executor:
            for future in [executor.submit(time.sleep, 0.01) for _ in range(THREADS)]:
                future.result()  # all threads started
            _pass(executor, handles, fb.Fb.get)  # warm-up: every item evicted once, blobs cached
            store.finished()
            runs: list[tuple[str, concurrent.futures.ThreadPoolExecutor | None]] = [
                ("lib-1", None),
                ("lib-4", executor),
                ("raw-1", None),
                ("raw-4", executor),
            ]
            for repeat in range(ctx.repeats):
                for name, pool_executor in runs if repeat % 2 == 0 else runs[::-1]:
                    ctx.settle()
                    if name.startswith("lib"):
                        with ctx.profile(f"threads-{name}"):
                            seconds = _pass(pool_executor, handles, fb.Fb.get)
                    else:
                        seconds = _pass(pool_executor, files, _read_file)
                    figures[name].append(sizes.items / seconds)
        misses = pool.stats.misses
    section.rows.append(
        Row(
            workload="threads",
            metric=f"loads/s, {THREADS} threads vs 1",
            unit="/s",
            value=median(figures["lib-4"]),
            runs=tuple(figures["lib-4"]),
            other_name="file_backed, 1 thread",
            other=median(figures["lib-1"]),
            other_runs=tuple(figures["lib-1"]),
            target=Target("ratio", ">=", 1.7, ">= 1.7x one thread"),
        )
    )
    section.rows.append(
        Row(
            workload="threads",
            metric=f"raw file reads/s, {THREADS} threads vs 1",
            unit="/s",
            value=median(figures["raw-4"]),
            runs=tuple(figures["raw-4"]),
            other_name="raw, 1 thread",
            other=median(figures["raw-1"]),
            other_runs=tuple(figures["raw-1"]),
            note="the machine's own scaling on the same files",
        )
    )
    section.rows.append(
        Row(
            workload="threads",
            metric="loads/s, 1 thread vs raw reads",
            unit="/s",
            value=median(figures["lib-1"]),
            runs=tuple(figures["lib-1"]),
            other_name="raw, 1 thread",
            other=median(figures["raw-1"]),
            other_runs=tuple(figures["raw-1"]),
        )
    )
    expected = sizes.items * (2 * ctx.repeats + 1)
    if misses < expected:
        section.notes.append(f"only {misses} of {expected} loads missed the pool: some items were still resident")
    section.notes.append(f"{os.cpu_count()} CPUs; " + page_cache_note(ctx, sizes.items * sizes.item_bytes))
    return section


TITLE = "Threads: loading evicted 1 MiB items, 1 vs 4 threads"
WORKLOADS = (Workload("threads", TITLE, run),)
