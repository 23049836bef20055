"""W4 and aload: arrays larger than the byte budget, scanned; and concurrent
coroutine loads under a budget.

W4: numpy arrays (8 MiB in the full run) totalling ten times ``max_bytes`` are
inserted, then read in two sequential scans. Every system runs in a child
process of its own (so nothing of the parent's heap counts), the systems in a
rotating order within each repeat: file_backed (``fs_hardlink``, pickle
codec), a hand-written write-once pickle LRU with the same byte budget, zict
(``Buffer`` over ``Func(pickle) / File`` with ``weight=nbytes``), diskcache
(a ``Cache`` holding every array; nothing in memory), and the raw disk: one
file per array written with ``open``/``write``/``os.replace`` and read back
with ``open``/``readv`` into one reused, page-aligned buffer (the best case:
always the same memory, hot in the CPU caches). Array creation is not timed;
dirty pages are written back (``sync``) between the inserts and the scans.
Each child reports insert and scan throughput and its peak resident set
(``VmHWM``) minus its resident set after imports.

aload: four coroutines scan the same items (four times the budget in all),
each holding the item it reads with ``async with h.aload()`` while the others
load; peak resident set minus baseline against the budget plus the four held
items.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

from .common import Context, MiB, Row, Section, Target, Workload, page_cache_note, run_child

__all__ = ["WORKLOADS"]


@dataclass(frozen=True)
class BudgetSizes:
    """A byte budget, the size of each array and how many arrays flow through."""

    budget: int
    item_bytes: int
    items: int

    def describe(self) -> str:
        return f"{self.items} arrays of {self.item_bytes // MiB} MiB through a {self.budget // MiB} MiB budget"


W4_SIZES = {
    "smoke": BudgetSizes(4 * MiB, 1 * MiB, 40),
    "quick": BudgetSizes(32 * MiB, 4 * MiB, 80),
    "full": BudgetSizes(256 * MiB, 8 * MiB, 320),
}
ALOAD_SIZES = {
    "smoke": BudgetSizes(8 * MiB, 1 * MiB, 32),
    "quick": BudgetSizes(32 * MiB, 4 * MiB, 32),
    "full": BudgetSizes(128 * MiB, 8 * MiB, 64),
}
SYSTEMS = ("file_backed", "hand-written LRU", "zict", "diskcache", "raw disk")

_STATUS = r"""
def status(field):
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0
"""

#: One system of W4 in a child: prints its figures as one JSON object.
W4_CHILD = (
    r"""
import collections, json, os, pickle, sys, time
import numpy as np
"""
    + _STATUS
    + r"""
system, budget, item_bytes, count, directory = json.loads(sys.argv[1])


def array(index):
    return np.full(item_bytes // 8, index, dtype=np.int64)


class HandLRU:
    # An OrderedDict of values within a byte budget; an evicted value is pickled
    # to a file of its own once (write-once) and read back with pickle.load.
    def __init__(self):
        self.values, self.weight, self.on_disk = collections.OrderedDict(), 0, set()

    def __setitem__(self, key, value):
        self.values[key] = value
        self.weight += value.nbytes
        self._evict()

    def __getitem__(self, key):
        if key in self.values:
            self.values.move_to_end(key)
            return self.values[key]
        with open(os.path.join(directory, str(key)), "rb") as file:
            value = pickle.load(file)
        self[key] = value
        return value

    def _evict(self):
        while self.weight > budget and len(self.values) > 1:
            key, value = self.values.popitem(last=False)
            self.weight -= value.nbytes
            if key not in self.on_disk:
                with open(os.path.join(directory, str(key)), "wb") as file:
                    pickle.dump(value, file, protocol=5)
                self.on_disk.add(key)


if system == "file_backed":
    import file_backed as fb
    store = fb.open_store("fs_hardlink", path=os.path.join(directory, "area"))
    pool = fb.FBPool(store, max_items=10**9, max_bytes=budget)
    handles = []
    insert, finish = (lambda key, value: handles.append(pool.insert(value))), store.finished
    read = lambda key: handles[key].get()
elif system == "hand-written LRU":
    cache = HandLRU()
    insert, finish, read = cache.__setitem__, (lambda: None), cache.__getitem__
elif system == "zict":
    import zict
    cache = zict.Buffer(
        {}, zict.Func(lambda v: pickle.dumps(v, protocol=5), pickle.loads, zict.File(directory)),
        n=budget, weight=lambda key, value: value.nbytes,
    )
    insert, finish = (lambda key, value: cache.__setitem__(str(key), value)), (lambda: None)
    read = lambda key: cache[str(key)]  # zict.File names files after str keys
elif system == "diskcache":
    import diskcache
    cache = diskcache.Cache(directory, size_limit=2**50)
    insert, finish, read = cache.__setitem__, (lambda: None), cache.__getitem__
else:  # the raw disk
    import mmap
    # One page-aligned buffer: the kernel copies several times faster into a
    # destination on a 32-byte boundary than into one off it (malloc's 16).
    buffer = memoryview(mmap.mmap(-1, item_bytes))

    def insert(key, value):
        final = os.path.join(directory, str(key))
        with open(final + ".tmp", "wb") as file:
            file.write(memoryview(value).cast("B"))
        os.replace(final + ".tmp", final)

    def read(key):
        fd = os.open(os.path.join(directory, str(key)), os.O_RDONLY)
        try:
            os.readv(fd, [buffer])
        finally:
            os.close(fd)
        return np.frombuffer(buffer, dtype=np.int64)

    finish = lambda: None

baseline = status("VmRSS")
inserting = 0.0
for index in range(count):
    value = array(index)
    started = time.perf_counter()
    insert(index, value)
    inserting += time.perf_counter() - started
    del value
started = time.perf_counter()
finish()
inserting += time.perf_counter() - started
os.sync()  # the scans read the page cache, not pages still being written back
scans = []
for _ in range(2):
    started = time.perf_counter()
    for index in range(count):
        value = read(index)
        assert int(value[0]) == index, (system, index)
        del value
    scans.append(time.perf_counter() - started)
print(json.dumps({"baseline": baseline, "peak": status("VmHWM"), "insert": inserting, "scans": scans}), flush=True)
os._exit(0)
"""
)

#: The aload case in a child: prints its baseline and peak.
ALOAD_CHILD = (
    r"""
import asyncio, gc, json, os, sys
import numpy as np
import file_backed as fb
"""
    + _STATUS
    + r"""
budget, item_bytes, count, directory, tasks = json.loads(sys.argv[1])


async def scan(handles, offset):
    for index in range(len(handles)):
        key = (index + offset) % len(handles)
        async with handles[key].aload() as value:
            assert int(value[0]) == key
            await asyncio.sleep(0)  # the other coroutines load while this guard is held
        del value


async def main():
    store = fb.open_store("fs_hardlink", path=directory)
    pool = fb.FBPool(store, max_items=10**9, max_bytes=budget)
    baseline = status("VmRSS")
    handles = []
    for index in range(count):
        handles.append(await pool.ainsert(np.full(item_bytes // 8, index, dtype=np.int64)))
    await store.afinished()
    gc.collect()
    with open("/proc/self/clear_refs", "w") as control:  # the peak from here on
        control.write("5")
    await asyncio.gather(*(scan(handles, task * count // tasks) for task in range(tasks)))
    print(json.dumps({"baseline": baseline, "peak": status("VmHWM"), "reused": pool.stats.buffers_reused}), flush=True)
    os._exit(0)


asyncio.run(main())
"""
)


def run_w4(ctx: Context) -> Section:
    """Insert and scan throughput and peak memory of every system under one budget."""
    sizes = W4_SIZES[ctx.mode]
    section = Section("w4", W4_TITLE, sizes.describe() + "; two sequential scans; each system in a child process")
    total = sizes.items * sizes.item_bytes
    inserts: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    scans: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    first_scans: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    second_scans: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    end_to_end: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    peaks: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    for repeat in range(ctx.repeats):
        for offset in range(len(SYSTEMS)):
            name = SYSTEMS[(repeat + offset) % len(SYSTEMS)]
            ctx.settle()
            scratch = ctx.scratch("w4")
            figures = run_child(
                W4_CHILD,
                [name, sizes.budget, sizes.item_bytes, sizes.items, str(scratch)],
                what="a w4 child",
                timeout=900,
            )
            # A few hundred large files per run: removed at once, so the full
            # sizes (2.5 GiB per run) never fill the disk.
            shutil.rmtree(scratch, ignore_errors=True)
            inserts[name].append(total / figures["insert"] / 1e9)
            scans[name].append(2 * total / sum(figures["scans"]) / 1e9)
            first_scans[name].append(total / figures["scans"][0] / 1e9)
            second_scans[name].append(total / figures["scans"][1] / 1e9)
            end_to_end[name].append(3 * total / (figures["insert"] + sum(figures["scans"])) / 1e9)
            peaks[name].append((figures["peak"] - figures["baseline"]) / MiB)
    library = "file_backed"
    indicative = ctx.mode != "full"

    def against_raw(metric: str, figures: dict[str, list[float]], raw: str, **extra: Any) -> Row:
        return Row("w4", metric, "GB/s", tuple(figures[library]), raw, tuple(figures["raw disk"]), **extra)

    section.rows += [
        against_raw(
            "insert GB/s",
            inserts,
            "raw write+rename",
            note=(
                "time inside insert and the final finished(): file_backed's"
                " background writes while the next array is made are not counted"
            ),
        ),
        against_raw(
            "scan GB/s",
            scans,
            "raw open+readv",
            target=Target("ratio", ">=", 0.8, ">= 0.8x raw read"),
            indicative=indicative,
        ),
        against_raw(
            "first scan GB/s",
            first_scans,
            "raw open+readv",
            note="also writes, as they are evicted, the values the inserts left unwritten (file_backed: an eighth of the budget)",
        ),
        against_raw("second scan GB/s", second_scans, "raw open+readv"),
        against_raw(
            "inserts and scans GB/s",
            end_to_end,
            "raw disk",
            note="three times the data over the whole run: every write and read counted once",
        ),
    ]
    for peer in SYSTEMS[1:4]:
        section.rows.append(
            Row(
                "w4",
                "scan GB/s",
                "GB/s",
                tuple(scans[library]),
                peer,
                tuple(scans[peer]),
                Target("ratio", ">=", 1.0, "ahead of every peer"),
                indicative,
            )
        )
        section.rows.append(Row("w4", "insert GB/s", "GB/s", tuple(inserts[library]), peer, tuple(inserts[peer])))
    budget = sizes.budget / MiB
    section.rows.append(
        Row(
            "w4",
            "peak RSS - baseline",
            "MiB",
            tuple(peaks[library]),
            "max_bytes budget",
            (budget,) * len(peaks[library]),
            Target("ratio", "<=", 1.05, "<= 1.05x budget"),
            indicative,
        )
    )
    for peer in SYSTEMS[1:3]:
        section.rows.append(
            Row(
                "w4",
                "peak RSS - baseline",
                "MiB",
                tuple(peaks[library]),
                peer,
                tuple(peaks[peer]),
                Target("ratio", "<=", 1.0, "ahead of every peer"),
                indicative,
            )
        )
    section.rows.append(
        Row(
            "w4",
            "peak RSS - baseline",
            "MiB",
            tuple(peaks[library]),
            "diskcache",
            tuple(peaks["diskcache"]),
            note="diskcache keeps no values in memory",
        )
    )
    section.notes.append(page_cache_note(ctx, sizes.items * sizes.item_bytes))
    return section


def run_aload(ctx: Context) -> Section:
    """Peak memory of four coroutines loading concurrently under a budget."""
    sizes = ALOAD_SIZES[ctx.mode]
    tasks = 4
    section = Section("aload", ALOAD_TITLE, sizes.describe() + f"; {tasks} coroutines each hold one item while loading")
    growth: list[float] = []
    for _ in range(ctx.repeats):
        ctx.settle()
        figures = run_child(
            ALOAD_CHILD,
            [sizes.budget, sizes.item_bytes, sizes.items, str(ctx.scratch("aload")), tasks],
            what="the aload child",
            timeout=900,
        )
        growth.append((figures["peak"] - figures["baseline"]) / MiB)
    allowed = (sizes.budget + tasks * sizes.item_bytes) / MiB
    section.rows.append(
        Row(
            "aload",
            "peak RSS - baseline",
            "MiB",
            tuple(growth),
            "budget + held items",
            (allowed,) * len(growth),
            Target("value", "<=", (1.1 * sizes.budget + tasks * sizes.item_bytes) / MiB, "<= 1.1x budget + held"),
            ctx.mode != "full",
        )
    )
    return section


W4_TITLE = "W4: arrays 10x the byte budget, inserted and scanned twice"
ALOAD_TITLE = "aload: concurrent coroutine loads under a byte budget"
WORKLOADS = (Workload("w4", W4_TITLE, run_w4), Workload("aload", ALOAD_TITLE, run_aload))
