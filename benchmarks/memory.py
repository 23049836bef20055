"""Memory: peak RSS while ten times the byte budget flows through a pool.

A child process (so nothing of the parent's heap counts) opens ``fs_hardlink``
in a scratch directory, builds a pool with ``max_bytes`` = the budget and a
``max_items`` that never binds, inserts numpy items totalling ten times the
budget, then reads every item once in a shuffled order (another ten budgets of
loads). Its baseline is the resident set after imports and store creation;
the figure is the peak resident set (``VmHWM``; not ``ru_maxrss``, which
survives ``execve`` and so reports the parent's size at the fork) minus that
baseline, against the budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from .common import Context, MiB, Row, Section, Target, Workload, run_child

__all__ = ["WORKLOADS"]


@dataclass(frozen=True)
class MemorySizes:
    """The byte budget, the size of each item and how many children run."""

    budget: int
    item_bytes: int
    children: int


SIZES = {
    "smoke": MemorySizes(4 * MiB, 256 * 1024, 1),
    "quick": MemorySizes(32 * MiB, 1 * MiB, 2),
    "full": MemorySizes(256 * MiB, 1 * MiB, 3),
}

#: The child: prints one JSON object with its baseline and peak in bytes.
CHILD = r"""
import json, os, random, sys
import numpy as np
import file_backed as fb

def status(field):
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0

budget, item_bytes, directory, seed = json.loads(sys.argv[1])
with fb.open_store("fs_hardlink", path=directory) as store:
    pool = fb.FBPool(store, max_items=10**9, max_bytes=budget)
    baseline = status("VmRSS")
    handles = [pool.insert(np.full(item_bytes, i % 251, dtype=np.uint8)) for i in range(10 * budget // item_bytes)]
    store.finished()
    after_inserts = status("VmHWM")
    order = list(range(len(handles)))
    random.Random(seed).shuffle(order)
    for index in order:
        handles[index].get()
    store.finished()
    stats = pool.stats
    # VmHWM only: ru_maxrss survives execve, so it would report the parent's
    # resident set at the fork (the suite's earlier workloads), not this child's.
    peak = status("VmHWM")
    print(json.dumps({"baseline": baseline, "peak": peak, "peak_after_inserts": after_inserts,
                      "stores": stats.stores, "loads": stats.loads, "bytes_in_pool": stats.bytes}), flush=True)
    # Exit without closing: closing would delete every blob now, a mass delete
    # before the next workload; the scratch directory goes at the end of the suite.
    os._exit(0)
"""


def run(ctx: Context) -> Section:
    """Peak RSS growth of a child process against the byte budget."""
    sizes = SIZES[ctx.mode]
    flows = 10 * sizes.budget // sizes.item_bytes
    section = Section(
        "memory",
        TITLE,
        f"budget {sizes.budget // MiB} MiB, {flows} items of {sizes.item_bytes // 1024} KiB inserted "
        f"then each read once; {sizes.children} child processes, medians",
    )
    growth: list[float] = []
    baselines: list[float] = []
    after_inserts: list[float] = []
    for _ in range(sizes.children):
        ctx.settle()
        argument = [sizes.budget, sizes.item_bytes, str(ctx.scratch("memory")), ctx.seed]
        figures = run_child(CHILD, argument, what="the memory child", timeout=600)
        growth.append((figures["peak"] - figures["baseline"]) / MiB)
        after_inserts.append((figures["peak_after_inserts"] - figures["baseline"]) / MiB)
        baselines.append(figures["baseline"] / MiB)
    budget = sizes.budget / MiB
    section.rows.append(
        Row(
            workload="memory",
            metric="peak RSS - baseline",
            unit="MiB",
            runs=tuple(growth),
            other_name="max_bytes budget",
            other_runs=(budget,) * len(growth),
            target=Target("ratio", "<=", 1.10, "<= 1.10x budget"),
            indicative=ctx.mode != "full",
        )
    )
    section.rows.append(
        Row(
            workload="memory",
            metric="peak RSS - baseline, inserts only",
            unit="MiB",
            runs=tuple(after_inserts),
            other_name="max_bytes budget",
            other_runs=(budget,) * len(after_inserts),
        )
    )
    section.rows.append(Row("memory", "baseline RSS (interpreter, numpy, store)", "MiB", runs=tuple(baselines)))
    return section


TITLE = "Memory: peak RSS with max_bytes while 10x the budget flows through"
WORKLOADS = (Workload("memory", TITLE, run),)
