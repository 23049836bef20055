"""Child process of test_budget_memory: peak resident memory of concurrent
coroutine loads under a byte budget. Prints one JSON line."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from pathlib import Path

import numpy as np

import file_backed as fb

MiB = 2**20


def status(field: str) -> int:
    """A /proc/self/status figure in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


async def scan(handles: list[fb.Fb[np.ndarray]], offset: int) -> None:
    for index in range(len(handles)):
        async with handles[(index + offset) % len(handles)].aload() as value:
            assert int(value[0]) == (index + offset) % len(handles)
            await asyncio.sleep(0)  # let the other coroutines load while this guard is held
        del value  # the guard is released: the pool may drop the value


async def main(area: Path, budget: int, items: int, item_bytes: int, tasks: int) -> None:
    baseline = status("VmRSS")
    async with fb.FBPool(fb.open_store("fs_hardlink", path=area), max_items=10_000, max_bytes=budget) as pool:
        handles = []
        for index in range(items):
            handles.append(await pool.ainsert(np.full(item_bytes // 8, index, dtype=np.int64)))
        await pool.store.afinished()
        gc.collect()
        reset_peak()
        await asyncio.gather(*(scan(handles, offset * items // tasks) for offset in range(tasks)))
        peak = status("VmHWM")
    print(json.dumps({"baseline": baseline, "peak": peak}))


if __name__ == "__main__":
    area, budget, items, item_bytes, tasks = sys.argv[1], *map(int, sys.argv[2:])
    asyncio.run(main(Path(area), budget, items, item_bytes, tasks))
