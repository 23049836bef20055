"""Hit path: reading an item that is in memory.

``h.get()`` and ``with h.load() as v`` on a resident item against zict's
``buf[k]`` (a key in its fast mapping) and ``cachetools.LRUCache.get``. Each
statement is timed with `timeit` (the loop overhead is the same for all),
statements interleaved in a shuffled order per repeat; figures are
nanoseconds per operation, medians over the repeats.
"""

from __future__ import annotations

import contextlib
import pickle
import random
import timeit
from dataclasses import dataclass
from typing import Any

import file_backed as fb

from .common import Context, Row, Section, Target, Workload, optional_peer

__all__ = ["WORKLOADS"]


@dataclass(frozen=True)
class HitSizes:
    """Operations per timing and timings per repeat."""

    number: int
    rounds: int


SIZES = {
    "smoke": HitSizes(2_000, 1),
    "quick": HitSizes(30_000, 3),
    "full": HitSizes(200_000, 5),
}


def run(ctx: Context) -> Section:
    """Nanoseconds per hit of the library and its peers."""
    sizes = SIZES[ctx.mode]
    section = Section(
        "hit",
        TITLE,
        f"{sizes.number} operations per timing, {sizes.rounds} timings per repeat, {ctx.repeats} repeats",
    )
    statements: dict[str, tuple[str, dict[str, Any]]] = {}
    with fb.open_store("memory") as store:
        pool: fb.FBPool[bytes] = fb.FBPool(store, max_items=64)
        handle = pool.insert(b"x" * 1024)
        statements["h.get()"] = ("h.get()", {"h": handle})
        statements["with h.load()"] = ("with h.load() as v: pass", {"h": handle})
        zict = optional_peer("zict")
        if zict is None:
            section.notes.append("zict not installed: no zict figures")
        else:
            slow = zict.Func(pickle.dumps, pickle.loads, {})
            buffer = zict.Buffer({}, slow, 64)
            buffer["k"] = b"x" * 1024
            statements["zict buf[k]"] = ("buf[k]", {"buf": buffer, "k": "k"})
        cachetools = optional_peer("cachetools")
        if cachetools is None:
            section.notes.append("cachetools not installed: no cachetools figures")
        else:
            cache = cachetools.LRUCache(maxsize=64)
            cache["k"] = b"x" * 1024
            statements["cachetools get"] = ("c.get(k)", {"c": cache, "k": "k"})
        timers = {name: timeit.Timer(stmt, globals=names) for name, (stmt, names) in statements.items()}
        rng = random.Random(ctx.seed)
        nanoseconds: dict[str, list[float]] = {name: [] for name in timers}
        for _ in range(ctx.repeats):
            order = list(timers)
            rng.shuffle(order)
            for name in order:
                with ctx.profile("hit") if name in ("h.get()", "with h.load()") else contextlib.nullcontext():
                    best = min(timers[name].repeat(repeat=sizes.rounds, number=sizes.number))
                nanoseconds[name].append(best / sizes.number * 1e9)
        stats = pool.stats
    if stats.misses:
        section.notes.append(f"unexpected: {stats.misses} misses on the resident item")
    targets = {
        "h.get()": Target("ratio", "<=", 0.5, "<= 0.5x zict buf[k]"),
        "with h.load()": Target("ratio", "<=", 1.0, "<= 1.0x zict buf[k]"),
    }
    for ours in ("h.get()", "with h.load()"):
        peers: list[str] = [peer for peer in ("zict buf[k]", "cachetools get") if peer in nanoseconds] or [""]
        for peer in peers:
            target = targets[ours] if peer == "zict buf[k]" else None
            section.rows.append(
                Row(
                    workload="hit",
                    metric=ours,
                    unit="ns",
                    runs=tuple(nanoseconds[ours]),
                    other_name=peer,
                    other_runs=tuple(nanoseconds[peer]) if peer else (),
                    target=target,
                )
            )
    section.notes.append("per repeat: the best of the timings of each statement; medians of those over the repeats")
    return section


TITLE = "Hit path: resident item (vs zict buf[k], cachetools LRUCache.get)"
WORKLOADS = (Workload("hit", TITLE, run),)
