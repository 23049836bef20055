"""Pool statistics for people: labelled rows with a hit rate and sizes in
KiB/MiB/GiB. ``str(pool.stats)`` and the summary of ``file-backed demo`` are
both made of these rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from file_backed.sizes import format_size

if TYPE_CHECKING:
    from file_backed.pool import PoolStats

__all__ = ["format_stats", "hit_rate", "stats_rows"]


def hit_rate(stats: PoolStats) -> float | None:
    """The share of accesses that found their value in memory; None before any access."""
    accesses = stats.hits + stats.misses
    return stats.hits / accesses if accesses else None


def _size(size: int) -> str:
    return format_size(size, exact=False)


def stats_rows(stats: PoolStats) -> list[tuple[str, str]]:
    """``(label, value)`` rows describing `stats`, in reading order."""
    rate = hit_rate(stats)
    in_memory = f"{stats.items} items" + (f", {_size(stats.bytes)}" if stats.bytes else "")
    stores = f"{stats.stores}, {_size(stats.bytes_stored)} written ({stats.evictions} evictions"
    stores += f", {stats.eviction_failures} failed)" if stats.eviction_failures else ")"
    loads = f"{stats.loads}, {_size(stats.bytes_loaded)} read"
    if stats.buffers_reused:
        loads += f" ({stats.buffers_reused} into reused buffers)"
    return [
        ("hit rate", "no accesses yet" if rate is None else f"{rate:.0%} ({stats.hits} hits, {stats.misses} misses)"),
        ("in memory", in_memory),
        ("stores", stores),
        ("loads", loads),
    ]


def format_stats(stats: PoolStats, title: str = "pool stats") -> str:
    """`stats` as a plain-text table: a title line, then one aligned row per `stats_rows` entry."""
    rows = stats_rows(stats)
    width = max(len(label) for label, _ in rows)
    return "\n".join([title, *(f"  {label:<{width}}  {value}" for label, value in rows)])
