"""``print(pool.stats)``: a table for people with the hit rate and sizes in KiB/MiB/GiB."""

from __future__ import annotations

import file_backed as fb
from file_backed.sizes import format_size


def test_stats_print_as_a_table_with_hit_rate_and_binary_sizes() -> None:
    stats = fb.PoolStats(
        hits=3,
        misses=1,
        loads=1,
        stores=2,
        evictions=2,
        items=5,
        bytes=5 * 2**20,
        bytes_stored=3 * 2**30 + 2**29,
        bytes_loaded=1536,
    )
    text = str(stats)
    assert text.splitlines()[0] == "pool stats"
    assert "hit rate   75% (3 hits, 1 misses)" in text
    assert "in memory  5 items, 5 MiB" in text
    assert "stores     2, 3.50 GiB written (2 evictions)" in text
    assert "loads      1, 1.50 KiB read" in text


def test_stats_before_any_access_say_so() -> None:
    assert "hit rate   no accesses yet" in str(fb.PoolStats())


def test_failed_eviction_writes_are_shown_only_when_there_are_some() -> None:
    assert "failed" not in str(fb.PoolStats(stores=1))
    assert "(0 evictions, 4 failed)" in str(fb.PoolStats(eviction_failures=4))


def test_stats_repr_keeps_the_raw_counters() -> None:
    assert repr(fb.PoolStats(hits=7)).startswith("PoolStats(hits=7, ")


def test_a_pool_prints_its_stats_after_work(real_store: fb.BackingStore) -> None:
    pool: fb.FBPool[bytes] = fb.FBPool(real_store, max_items=2)
    handles = [pool.insert(bytes(4096)) for _ in range(6)]
    for handle in handles:
        handle.get()
    real_store.finished()
    text = str(pool.stats)
    assert "hit rate" in text and "KiB written" in text


def test_format_size_for_people_uses_the_largest_unit_with_three_digits() -> None:
    assert [
        format_size(n, exact=False) for n in (0, 1023, 1536, 10 * 2**20, 123 * 2**20 + 5, 2**31, 10 * 2**20 + 1)
    ] == [
        "0 B",
        "1023 B",
        "1.50 KiB",
        "10 MiB",
        "123 MiB",
        "2 GiB",
        "10.0 MiB",
    ]
    assert format_size(1536) == "1536 B"
