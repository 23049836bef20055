"""Disk floor: 16 MiB items evicted and reloaded through the pool against
writing the same bytes to a temporary file, renaming it and reading it back.

Library cycle: a pool of one item holds a fresh 16 MiB handle; reading a small
second item evicts it (a background write to the temporary area), the cycle
waits for the write (``store.finished()``), then ``h.get()`` reloads it.
Raw cycle: ``write`` to a temporary file, ``os.replace`` to its final name,
``readinto`` a new buffer. Neither fsyncs (the temporary area is not fsynced).
Bandwidth is the bytes written plus read per second; deletes of the previous
cycle's file happen outside the timed part in both.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import file_backed as fb

from .common import Context, MiB, Row, Section, Target, Workload, page_cache_note

__all__ = ["WORKLOADS"]


@dataclass(frozen=True)
class FloorSizes:
    """Item size and cycles per repeat."""

    item_bytes: int
    cycles: int


SIZES = {
    "smoke": FloorSizes(1 * MiB, 1),
    "quick": FloorSizes(16 * MiB, 4),
    "full": FloorSizes(16 * MiB, 12),
}


def _raw_cycles(directory: Path, data: np.ndarray, cycles: int) -> float:
    """Seconds spent in `cycles` write+rename+read cycles of `data` (unlinks untimed)."""
    total = 0.0
    for cycle in range(cycles):
        temporary, final = directory / f".{cycle}.tmp", directory / f"{cycle}.blob"
        started = time.perf_counter()
        with open(temporary, "wb", buffering=0) as file:
            file.write(data.data)
        os.replace(temporary, final)
        back = bytearray(data.nbytes)
        with open(final, "rb", buffering=0) as file:
            view = memoryview(back)
            while view.nbytes:
                count = file.readinto(view)
                if not count:
                    break
                view = view[count:]
        total += time.perf_counter() - started
        os.unlink(final)
    return total


def _pool_cycles(ctx: Context, directory: Path, data: np.ndarray, cycles: int) -> float:
    """Seconds spent in `cycles` evict+reload cycles of `data` through a pool of one."""
    total = 0.0
    with fb.open_store("fs_hardlink", path=directory) as store:
        pool: fb.FBPool[np.ndarray] = fb.FBPool(store, max_items=1)
        other = pool.insert(np.zeros(16, dtype=np.uint8))
        for _ in range(cycles):
            handle = pool.insert(data)  # evicts `other`: written once, later evictions are free
            store.finished()
            with ctx.profile("floor"):
                started = time.perf_counter()
                other.get()  # evicts `handle`: a background write
                store.finished()
                handle.get()  # reloads it
                total += time.perf_counter() - started
            del handle
            other.get()
            store.finished()  # the dropped handle's blob is deleted here, untimed
    return total


def run(ctx: Context) -> Section:
    """Evict+reload bandwidth against the raw write+rename+read bandwidth."""
    sizes = SIZES[ctx.mode]
    section = Section(
        "floor",
        TITLE,
        f"items of {sizes.item_bytes // MiB} MiB, {sizes.cycles} cycles per repeat, {ctx.repeats} repeats",
    )
    data = np.random.default_rng(ctx.seed).integers(0, 256, sizes.item_bytes, dtype=np.uint8)
    moved = 2 * sizes.item_bytes * sizes.cycles / 1e6
    raw: list[float] = []
    ours: list[float] = []
    for repeat in range(ctx.repeats):
        for kind in ("raw", "pool") if repeat % 2 == 0 else ("pool", "raw"):
            ctx.settle()
            directory = ctx.scratch(f"floor-{kind}")
            if kind == "raw":
                raw.append(moved / _raw_cycles(directory, data, sizes.cycles))
            else:
                ours.append(moved / _pool_cycles(ctx, directory, data, sizes.cycles))
    section.rows.append(
        Row(
            workload="floor",
            metric="evict+reload MB/s",
            unit="MB/s",
            runs=tuple(ours),
            other_name="write+rename+read",
            other_runs=tuple(raw),
            target=Target("ratio", ">=", 0.8, ">= 0.8x raw"),
        )
    )
    section.notes.append(page_cache_note(ctx, sizes.item_bytes))
    return section


TITLE = "Disk floor: 16 MiB evict+reload vs raw write+rename+read"
WORKLOADS = (Workload("floor", TITLE, run),)
