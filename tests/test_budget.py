"""Byte budgets: recency-true eviction, room made before loads, buffer reuse and
the public eviction control (`evict_one`, settable limits, `Fb.nbytes`, `ainsert`)."""

from __future__ import annotations

import asyncio
import errno
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import file_backed as fb
from file_backed import hookimpl
from tests.recording import RecordingBackend

MiB = 2**20


def array(index: int, size: int = MiB) -> np.ndarray:
    return np.full(size // 8, index, dtype=np.int64)


def test_recency_decides_what_goes_under_a_byte_budget(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=1000, max_bytes=10 * MiB)
    handles = [pool.insert(array(i)) for i in range(9)]
    for _ in range(3):
        handles[0].get()
    handles += [pool.insert(array(i)) for i in range(9, 12)]
    store.finished()
    assert handles[0].resident
    assert not handles[1].resident and not handles[2].resident


def test_max_bytes_accepts_a_size_with_a_unit(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=10, max_bytes="2 MiB")
    assert pool.max_bytes == 2 * MiB


@pytest.mark.parametrize("max_bytes", ["2 GB/s", -1, 0, 1.5])
def test_max_bytes_rejects_what_is_not_a_size(store: fb.BackingStore, max_bytes: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="max_bytes"):
        fb.FBPool(store, max_items=10, max_bytes=max_bytes)


@pytest.mark.parametrize("max_items", [2.5, "10", True, 0])
def test_max_items_rejects_what_is_not_a_positive_int(store: fb.BackingStore, max_items: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="max_items"):
        fb.FBPool(store, max_items=max_items)


def test_shrinking_max_bytes_evicts_down_before_returning(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=100, max_bytes=8 * MiB)
    handles = [pool.insert(array(i)) for i in range(8)]
    pool.max_bytes = "3 MiB"
    assert pool.stats.bytes <= 3 * MiB
    assert [h.resident for h in handles] == [False] * 5 + [True] * 3


def test_setting_a_byte_budget_on_a_pool_without_one_measures_its_items(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=100)
    handles = [pool.insert(array(i)) for i in range(4)]
    pool.max_bytes = 2 * MiB
    assert sum(h.resident for h in handles) == 2
    assert pool.stats.bytes == 2 * MiB


def test_shrinking_max_items_evicts_down_before_returning(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=10)
    handles = [pool.insert(i) for i in range(10)]
    pool.max_items = 4
    assert len(pool) == 4
    assert [h.resident for h in handles] == [False] * 6 + [True] * 4


def test_nbytes_is_the_size_by_sizeof(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=10, sizeof=lambda value: 7 * len(value))
    assert pool.insert([1, 2, 3]).nbytes == 21


def test_nbytes_survives_eviction(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=1, max_bytes=4 * MiB)
    first = pool.insert(array(0))
    pool.insert(array(1))
    store.finished()
    assert not first.resident and first.nbytes == MiB


def test_a_negative_sizeof_is_an_error(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=10, max_bytes=100, sizeof=lambda value: -1)
    with pytest.raises(ValueError, match="non-negative"):
        pool.insert(b"x")


def test_evict_one_drops_the_least_recently_used_item_and_returns_its_size(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=10, max_bytes=100 * MiB)
    first, second = pool.insert(array(0)), pool.insert(array(1, 2 * MiB))
    assert pool.evict_one() == MiB
    assert not first.resident and second.resident
    assert first.get()[0] == 0


def test_evict_one_skips_items_held_by_a_guard(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=10)
    first, second = pool.insert(b"first"), pool.insert(b"second")
    with first.load():
        assert pool.evict_one() > 0
        assert first.resident and not second.resident


def test_evict_one_returns_zero_when_nothing_can_go(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=10)
    assert pool.evict_one() == 0
    handle = pool.insert(b"held")
    with handle.load():
        assert pool.evict_one() == 0


def test_evict_one_keeps_an_item_whose_write_fails_and_counts_it(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=10)
    handle = pool.insert(b"value")
    backend.fail_stores = OSError(28, "No space left on device")
    assert pool.evict_one() == 0
    assert handle.resident and handle.get() == b"value"
    assert pool.stats.eviction_failures == 1
    backend.fail_stores = None
    assert pool.evict_one() > 0
    assert not handle.resident


def _insert_in_thread(
    pool: fb.FBPool[Any], value: Any, handles: list[fb.Fb[Any]]
) -> tuple[threading.Thread, threading.Event]:
    """Insert `value` on a new thread, appending its handle to `handles`."""
    inserted = threading.Event()
    inserter = threading.Thread(target=lambda: (handles.append(pool.insert(value)), inserted.set()))
    inserter.start()
    return inserter, inserted


def _start_gated(
    backend: RecordingBackend, key: Any, target: Callable[[], object]
) -> tuple[threading.Thread, threading.Event]:
    """Run `target` on a new thread until the store of `key` it causes has
    started and is held; returns the thread and the event that lets that
    store finish."""
    held, release = backend.gate(key)
    thread = threading.Thread(target=target)
    thread.start()
    assert held.wait(10)
    return thread, release


def _insert_waits_for(release: threading.Event, pool: fb.FBPool[Any], value: Any, handles: list[fb.Fb[Any]]) -> None:
    """An insert of `value` on another thread finds no room in the budget until
    `release` lets a held write end, and then goes in."""
    inserter, inserted = _insert_in_thread(pool, value, handles)
    assert not inserted.wait(0.1)
    release.set()
    inserter.join(10)
    assert inserted.is_set()


@pytest.mark.timeout(30)
def test_a_wait_for_an_eviction_write_writes_the_next_least_recent_item_ahead(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=100, max_bytes=100_000)
    first, second = pool.insert(bytes(40_000)), pool.insert(bytes(40_000))
    held, release = backend.gate(first.key)
    ahead, release_ahead = backend.gate(second.key)
    handles: list[fb.Fb[Any]] = []
    inserter, inserted = _insert_in_thread(pool, bytes(40_000), handles)  # evicts `first`, waits for its write
    assert held.wait(10) and ahead.wait(10)  # both writes run at once
    release_ahead.set()
    release.set()
    inserter.join(10)
    assert inserted.is_set()
    store.finished()
    assert second.resident and not first.resident  # written ahead, still in memory
    handles.append(pool.insert(bytes(40_000)))  # evicts `second`: already stored, dropped without a write
    store.finished()
    assert not second.resident and backend.count("store", second.key) == 1
    assert second.get() == bytes(40_000)


def test_without_evictions_nothing_is_written_ahead(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=100, max_bytes=200_000)
    handles = [pool.insert(bytes(45_000)) for _ in range(4)]
    store.finished()
    assert all(handle.resident for handle in handles)
    assert backend.count("store") == 0


BUDGET = 400_000  # ten items of 40 000 bytes fit; an eighth (50 000 bytes) holds one


def _unwritten(handles: list[fb.Fb[Any]], backend: RecordingBackend) -> list[fb.Fb[Any]]:
    return [handle for handle in handles if handle.resident and backend.count("store", handle.key) == 0]


def _budgeted_pool_holding(store: fb.BackingStore, count: int) -> tuple[fb.FBPool[bytes], list[fb.Fb[bytes]]]:
    """A pool with a budget of `BUDGET` after `count` inserts of 40 000 bytes, its background work done."""
    pool: fb.FBPool[bytes] = fb.FBPool(store, max_items=1000, max_bytes=BUDGET)
    handles = [pool.insert(bytes(40_000)) for _ in range(count)]
    store.finished()
    return pool, handles


def test_an_evicting_pool_writes_ahead_all_but_the_newest_eighth_of_its_budget(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    _pool, handles = _budgeted_pool_holding(store, 30)
    unwritten = _unwritten(handles, backend)
    assert sum(handle.nbytes for handle in unwritten) <= BUDGET // 8
    assert unwritten == [handles[-1]]
    assert len([handle for handle in handles if handle.resident]) == 10


def test_an_item_written_ahead_is_evicted_without_another_write(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool, handles = _budgeted_pool_holding(store, 30)
    oldest = next(handle for handle in handles if handle.resident)
    assert backend.count("store", oldest.key) == 1
    handles.append(pool.insert(bytes(40_000)))
    store.finished()
    assert not oldest.resident and backend.count("store", oldest.key) == 1
    assert oldest.get() == bytes(40_000)


def test_dropped_handles_stop_counting_as_unwritten(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=1000, max_bytes=BUDGET)
    handles = [pool.insert(bytes(40_000)) for _ in range(8)]
    del handles[1:]  # seven unwritten items gone; counted, they would push every later item out to the store
    handles += [pool.insert(bytes(40_000)) for _ in range(12)]
    store.finished()
    assert _unwritten(handles, backend) == [handles[-1]]


def test_an_item_under_a_read_guard_is_written_ahead_like_any_other(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool, handles = _budgeted_pool_holding(store, 10)  # full, nothing evicted or written yet
    with handles[1].load():
        handles.append(pool.insert(bytes(40_000)))  # evicts handles[0]; handles[1] is the oldest unwritten
        store.finished()
        assert handles[1].resident and backend.count("store", handles[1].key) == 1


@pytest.mark.timeout(30)
def test_an_insert_whose_room_cannot_be_written_out_goes_in_over_the_budget(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=100, max_bytes=150_000)
    first = pool.insert(bytes(110_000))
    backend.fail_stores = OSError(errno.ENOSPC, "No space left on device")
    second = pool.insert(bytes(110_000))  # the eviction write of `first` fails: both stay in memory
    with pytest.raises(fb.BackgroundTaskError):
        store.finished()
    assert first.resident and second.resident
    assert backend.count("store") <= 3  # a try or two by this insert, not one after another while it fails
    backend.fail_stores = None
    pool.insert(bytes(10_000))  # the next eviction retries, and the budget holds again
    store.finished()
    assert pool.stats.bytes <= 150_000
    assert first.get() == bytes(110_000)


@pytest.mark.timeout(30)
def test_a_load_whose_room_cannot_be_written_out_loads_over_the_budget(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=100, max_bytes=150_000)
    first = pool.insert(bytes(110_000))
    second = pool.insert(bytes([1]) * 110_000)  # evicts `first`, which is written
    store.finished()
    backend.fail_stores = OSError(errno.ENOSPC, "No space left on device")
    assert first.get() == bytes(110_000)  # the eviction write of `second` fails: it stays
    with pytest.raises(fb.BackgroundTaskError):
        store.finished()
    assert second.resident and backend.count("store", second.key) <= 2
    backend.fail_stores = None
    assert second.get() == bytes([1]) * 110_000


@pytest.mark.timeout(30)
def test_a_failed_write_ahead_is_retried_only_when_the_pool_evicts_again(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool, handles = _budgeted_pool_holding(store, 12)
    backend.fail_stores = OSError(errno.EIO, "Input/output error")
    handles += [pool.insert(bytes(40_000)) for _ in range(3)]
    with pytest.raises(fb.BackgroundTaskError):
        store.finished()
    attempts = backend.count("store")
    store.finished()
    assert backend.count("store") == attempts
    assert all(handle.resident for handle in handles[-3:])
    backend.fail_stores = None
    assert handles[-1].get() == bytes(40_000)


@pytest.mark.timeout(30)
def test_an_item_evicted_while_written_ahead_holds_its_bytes_until_the_write_ends(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=100, max_bytes=100_000)
    first, second = pool.insert(bytes(40_000)), pool.insert(bytes(40_000))
    held, release = backend.gate(first.key)
    ahead, release_ahead = backend.gate(second.key)
    handles: list[fb.Fb[Any]] = []
    inserter, inserted = _insert_in_thread(pool, bytes(40_000), handles)
    assert held.wait(10) and ahead.wait(10)
    release.set()
    inserter.join(10)
    assert inserted.is_set()
    _insert_waits_for(release_ahead, pool, bytes(40_000), handles)  # evicts `second`, in memory until written
    assert not second.resident
    assert pool.stats.bytes <= 100_000
    store.finished()


@pytest.mark.timeout(30)
def test_an_item_evicted_during_write_now_holds_its_bytes_until_the_write_ends(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=100, max_bytes=100_000)
    first = pool.insert(bytes(60_000))
    writer, release = _start_gated(backend, first.key, first.write_now)
    handles: list[fb.Fb[Any]] = []
    _insert_waits_for(release, pool, bytes(60_000), handles)  # evicts `first`, in memory until its write ends
    writer.join(10)
    assert not first.resident
    assert pool.stats.bytes <= 100_000
    store.finished()


@pytest.mark.timeout(30)
def test_the_write_of_evict_one_counts_against_the_budget_while_it_runs(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=100, max_bytes=100_000)
    first = pool.insert(bytes(60_000))
    freed: list[int] = []
    evicter, release = _start_gated(backend, first.key, lambda: freed.append(pool.evict_one()))
    handles: list[fb.Fb[Any]] = []
    _insert_waits_for(release, pool, bytes(60_000), handles)  # `first` is in memory until evict_one's write ends
    evicter.join(10)
    assert freed == [60_000] and not first.resident
    store.finished()


async def test_ainsert_returns_a_handle_like_insert(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=2)
    handles = [await pool.ainsert(index) for index in range(5)]
    await store.afinished()
    assert [h.get() for h in handles] == list(range(5))


async def test_ainsert_waits_for_the_backlog_without_blocking_the_loop(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=1, max_bytes=10_000)
    big = pool.insert(bytes(1_000))
    entered, release = backend.gate(big.key)
    pool.insert(bytes(10))  # evicts `big` by count, whose write is held: the backlog is over its limit
    assert await asyncio.to_thread(entered.wait, 10)
    insert = asyncio.create_task(pool.ainsert(bytes(10)))
    await asyncio.sleep(0)  # the loop keeps running while the insert waits
    assert not insert.done()
    release.set()
    handle = await asyncio.wait_for(insert, 10)
    assert handle.get() == bytes(10)


async def test_a_pool_is_an_async_context_manager_that_closes_its_store(backend: RecordingBackend) -> None:
    store = fb.BackingStore(backend, workers=2)
    async with fb.FBPool(store, max_items=2) as pool:
        pool.insert(1)
    assert store.closed


class LoadWatcher:
    """Middleware recording, at each load, the bytes the pool holds in memory."""

    def __init__(self) -> None:
        self.pool: fb.FBPool[Any] | None = None
        self.seen: list[int] = []
        self.lock = threading.Lock()

    @hookimpl(wrapper=True)
    def load(self, key: Any) -> Generator[None, Any, Any]:
        assert self.pool is not None
        with self.lock:
            self.seen.append(self.pool.stats.bytes + self.pool._reserved)
        return (yield)


@pytest.mark.timeout(60)
def test_loads_make_room_before_they_read_also_when_concurrent(tmp_path: Any) -> None:
    watcher = LoadWatcher()
    budget = 8 * MiB
    with fb.open_store("fs_hardlink", path=tmp_path / "area", plugins=[watcher]) as store:
        pool: fb.FBPool[np.ndarray] = fb.FBPool(store, max_items=1000, max_bytes=budget)
        watcher.pool = pool
        handles = [pool.insert(array(i)) for i in range(32)]
        store.finished()

        def scan(offset: int) -> None:
            for index in range(32):
                handle = handles[(index + offset) % 32]
                assert handle.get()[0] == (index + offset) % 32

        threads = [threading.Thread(target=scan, args=(offset,)) for offset in (0, 8, 16, 24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert watcher.seen, "nothing was loaded"
    # Resident values plus the loads in progress (each reserved before it reads).
    assert max(watcher.seen) <= budget + 4 * 4096


def test_a_budgeted_scan_reuses_the_buffers_of_dropped_values() -> None:
    # The memory backend reads every blob into a buffer (fs_hardlink maps large files).
    with fb.open_store("memory") as store:
        pool: fb.FBPool[np.ndarray] = fb.FBPool(store, max_items=1000, max_bytes=4 * MiB)
        handles = [pool.insert(array(i)) for i in range(16)]
        store.finished()
        for _ in range(2):
            firsts = [int(handle.get()[0]) for handle in handles]
            assert firsts == list(range(16))
        assert pool.stats.buffers_reused >= 16


def test_a_buffer_still_referenced_by_the_user_is_never_reused() -> None:
    with fb.open_store("memory") as store:
        pool: fb.FBPool[np.ndarray] = fb.FBPool(store, max_items=1000, max_bytes=2 * MiB)
        handles = [pool.insert(array(i)) for i in range(8)]
        store.finished()
        kept = [handle.get()[10:20] for handle in handles]  # views into the load buffers
        for _ in range(2):
            firsts = [int(handle.get()[0]) for handle in handles]
            assert firsts == list(range(8))
        assert pool.stats.buffers_reused > 0
        assert [int(view[0]) for view in kept] == list(range(8))


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to measure peak memory")
@pytest.mark.timeout(120)
def test_concurrent_coroutine_loads_keep_memory_within_the_budget_plus_held_items(tmp_path: Path) -> None:
    """Four coroutines load 256 MiB through a 64 MiB budget, each holding one
    8 MiB item at a time; measured in a child process (VmHWM over the loads)."""
    budget, items, item_bytes, tasks = 64 * MiB, 32, 8 * MiB, 4
    child = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("budget_child.py")),
            str(tmp_path / "area"),
            str(budget),
            str(items),
            str(item_bytes),
            str(tasks),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        check=True,
    )
    figures = json.loads(child.stdout)
    assert figures["peak"] - figures["baseline"] <= 1.1 * budget + tasks * item_bytes, figures
