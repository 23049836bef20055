"""The Rust crate's behavioural scenarios: which hooks run, and when."""

from __future__ import annotations

import gc
import sys
import threading

import pytest

import file_backed as fb
from tests.recording import RecordingBackend


def test_insert_writes_nothing(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=4)
    handle = pool.insert("value")
    store.finished()
    assert backend.hooks() == []
    assert handle.resident


def test_eviction_writes_the_item_past_the_end_and_drops_it(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=2)
    first, second, third = pool.insert("a"), pool.insert("b"), pool.insert("c")
    store.finished()
    assert backend.calls == [("store", first.key)]
    assert not first.resident and second.resident and third.resident
    assert pool.stats.evictions == 1


def test_reload_loads_once_and_keeps_the_stored_blob(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=2)
    first = pool.insert("a")
    pool.insert("b"), pool.insert("c")
    store.finished()
    with first.load() as value:
        assert value == "a"
    assert backend.count("load", first.key) == 1
    assert first.key in backend.blobs


def test_re_evicting_an_item_whose_blob_exists_writes_nothing(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=2)
    handles = [pool.insert(i) for i in range(3)]
    store.finished()
    assert handles[0].get() == 0
    for i in range(3):
        handles.append(pool.insert(i))
    store.finished()
    assert not handles[0].resident
    assert backend.count("store", handles[0].key) == 1


def test_write_now_stores_once(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=4)
    handle = pool.insert("value")
    handle.write_now()
    handle.write_now()
    assert backend.calls == [("store", handle.key)]
    assert handle.resident


@pytest.mark.timeout(30)
def test_a_held_write_never_delays_the_writes_of_other_items(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=1000)
    held_item = pool.insert("held")
    entered, release = backend.gate(held_item.key)
    holder = threading.Thread(target=held_item.write_now)
    holder.start()
    assert entered.wait(10)
    others = [pool.insert(i) for i in range(500)]
    for other in others:
        other.write_now()  # would wait for `release` if two keys could share a lock
    assert backend.count("store") == 501
    release.set()
    holder.join(10)
    assert not holder.is_alive()


def test_write_now_then_eviction_drops_without_writing(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=1)
    handle = pool.insert("value")
    handle.write_now()
    pool.insert("other")
    store.finished()
    assert not handle.resident
    assert backend.count("store") == 1


def test_persist_to_two_paths_stores_once_and_persists_to_each(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=4)
    handle = pool.insert("value")
    one, two = store.track_path("one"), store.track_path("two")
    assert handle.persist(one) == handle.key
    handle.persist(one)
    handle.persist(two)
    assert backend.count("store") == 1
    assert backend.count("persist", ("one", handle.key)) == 1
    assert backend.count("persist", ("two", handle.key)) == 1
    assert handle.key in one and handle.key in two


def test_track_path_prepares_and_sanitizes(store: fb.BackingStore, backend: RecordingBackend) -> None:
    tracked = store.track_path("here")
    assert backend.hooks() == ["prepare_path", "sanitize_path"]
    assert tracked.path == "here" and len(tracked) == 0


def test_fsync_syncs_the_tracked_path(store: fb.BackingStore, backend: RecordingBackend) -> None:
    tracked = store.track_path("here")
    store.fsync(tracked)
    assert backend.calls[-1] == ("sync_persisted", "here")


def _persisted_key(store: fb.BackingStore, backend: RecordingBackend, location: str) -> fb.TrackedPath:
    """A tracked location holding one persisted key whose temporary blob is gone;
    the backend's call record starts afresh."""
    pool = fb.FBPool(store, max_items=4)
    tracked = store.track_path(location)
    handle = pool.insert("persisted value")
    handle.persist(tracked)
    del handle
    gc.collect()
    store.finished()
    backend.calls.clear()
    return tracked


def test_register_present_links_without_loading(store: fb.BackingStore, backend: RecordingBackend) -> None:
    tracked = _persisted_key(store, backend, "p")
    (key,) = tracked.keys()
    pool = fb.FBPool(store, max_items=4)
    handle = pool.register(tracked, key)
    assert handle is not None and handle.key == key
    assert backend.count("register", ("p", key)) == 1
    assert backend.count("load", key) == 0
    assert not handle.resident
    assert handle.get() == "persisted value"


def test_register_missing_key_returns_none(store: fb.BackingStore, backend: RecordingBackend) -> None:
    import uuid

    tracked = store.track_path("p")
    pool = fb.FBPool(store, max_items=4)
    assert pool.register(tracked, uuid.uuid4()) is None
    assert backend.count("register") == 0


def test_register_same_key_twice_shares_one_blob(store: fb.BackingStore, backend: RecordingBackend) -> None:
    tracked = _persisted_key(store, backend, "p")
    (key,) = tracked.keys()
    pool = fb.FBPool(store, max_items=4)
    first, second = pool.register(tracked, key), pool.register(tracked, str(key))
    assert backend.count("register") == 1
    del first
    gc.collect()
    store.finished()
    assert backend.count("delete", key) == 0
    assert second is not None and second.get() == "persisted value"
    del second
    gc.collect()
    store.finished()
    assert backend.count("delete", key) == 1
    assert key in backend.persisted["p"]


def test_register_again_after_drop_reuses_the_pending_blob(store: fb.BackingStore, backend: RecordingBackend) -> None:
    tracked = _persisted_key(store, backend, "p")
    (key,) = tracked.keys()
    pool = fb.FBPool(store, max_items=4)
    for _ in range(3):
        handle = pool.register(tracked, key)
        assert handle is not None
        del handle
    gc.collect()
    store.finished()
    assert backend.count("delete", key) == 1
    assert key not in backend.blobs


def test_load_mut_of_resident_item_changes_key_and_drops_stored_copy(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=4)
    handle = pool.insert([1])
    handle.write_now()
    old_key = handle.key
    with handle.load_mut() as value:
        value.append(2)
    store.finished()
    assert handle.key != old_key
    assert backend.calls == [("store", old_key), ("delete", old_key)]
    assert handle.get() == [1, 2]


def test_load_mut_of_evicted_item_loads_then_changes_key(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=1)
    handle = pool.insert([1])
    pool.insert("other")
    store.finished()
    old_key = handle.key
    with handle.load_mut() as value:
        value.append(2)
    store.finished()
    assert backend.count("load", old_key) == 1
    assert backend.count("delete", old_key) == 1
    assert handle.key != old_key and handle.key not in backend.blobs


def test_load_mut_result_is_written_on_next_eviction(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=1)
    handle = pool.insert([1])
    with handle.load_mut() as value:
        value.append(2)
    pool.insert("other")
    store.finished()
    assert backend.count("store", handle.key) == 1
    assert handle.get() == [1, 2]


def test_write_guard_value_can_be_replaced(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=4)
    handle = pool.insert(1)
    guard = handle.load_mut()
    guard.value = 2
    guard.release()
    assert handle.get() == 2


def test_held_guard_defers_eviction_until_release(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=1)
    handle = pool.insert("held")
    guard = handle.load()
    pool.insert("other")
    store.finished()
    assert backend.count("store") == 0 and handle.resident
    guard.release()
    store.finished()
    assert backend.count("store", handle.key) == 1 and not handle.resident


def test_front_half_hit_does_not_move(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=4)  # front 2, back 2
    a, b, c, d = (pool.insert(x) for x in "abcd")  # front: d c, back: b a
    c.get()  # front half: stays where it is
    e = pool.insert("e")  # front: e d, back: c b -> a evicted
    f = pool.insert("f")  # front: f e, back: d c -> b evicted
    store.finished()
    assert [h.resident for h in (a, b, c, d, e, f)] == [False, False, True, True, True, True]


def test_back_half_hit_moves_to_front(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=4)  # front 2, back 2
    a, b, c, d = (pool.insert(x) for x in "abcd")  # front: d c, back: b a
    a.get()  # back half: moves to the front -> front: a d, back: c b
    e = pool.insert("e")  # front: e a, back: d c -> b evicted
    f = pool.insert("f")  # front: f e, back: a d -> c evicted
    store.finished()
    assert [h.resident for h in (a, b, c, d, e, f)] == [True, False, False, True, True, True]


def test_a_dropped_handle_frees_its_place(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=2)
    kept = pool.insert("kept")
    pool.insert("dropped at once")
    pool.insert("dropped at once too")
    store.finished()
    assert kept.resident and len(pool) == 1
    assert backend.count("store") == 0


def test_registered_item_is_not_in_memory(store: fb.BackingStore, backend: RecordingBackend) -> None:
    tracked = _persisted_key(store, backend, "p")
    (key,) = tracked.keys()
    pool = fb.FBPool(store, max_items=2)
    handle = pool.register(tracked, key)
    assert handle is not None and not handle.resident and len(pool) == 0


def test_handle_dropped_while_eviction_write_runs_is_deleted_after_it(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=1)
    handle = pool.insert("slow")
    key = handle.key
    entered, release = backend.gate(key)
    pool.insert("other")
    assert entered.wait(10)
    del handle
    gc.collect()
    done = threading.Event()
    finisher = threading.Thread(target=lambda: (store.finished(), done.set()))
    finisher.start()
    assert not done.wait(0.05)  # finished() waits for the gated write
    release.set()
    finisher.join(10)
    assert done.is_set()
    assert backend.calls == [("store", key), ("delete", key)]


def test_loads_of_one_evicted_item_from_many_threads_load_once(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=1)
    handle = pool.insert("shared")
    pool.insert("other")
    store.finished()
    barrier = threading.Barrier(8)
    results: list[str] = []

    def reader() -> None:
        barrier.wait()
        results.append(handle.get())

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == ["shared"] * 8
    assert backend.count("load", handle.key) == 1


def test_access_during_eviction_write_keeps_the_item(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=1)
    handle = pool.insert("value")
    entered, release = backend.gate(handle.key)
    pool.insert("other")
    assert entered.wait(10)
    assert handle.try_load() is None  # being evicted
    assert handle.get() == "value"  # an access rescues it
    release.set()
    store.finished()
    assert handle.resident
    assert backend.count("load") == 0


def test_dropping_every_handle_deletes_every_blob(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=3)
    handles = [pool.insert(i) for i in range(20)]
    handles[0].write_now()
    store.finished()
    assert backend.blobs
    del handles
    gc.collect()
    store.finished()
    assert backend.blobs == {}
    assert len(pool) == 0


def test_failed_eviction_write_keeps_the_item_and_retries(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=1)
    handle = pool.insert("precious")
    backend.fail_stores = OSError(28, "No space left on device")
    pool.insert("other")
    with pytest.raises(fb.BackgroundTaskError) as raised:
        store.finished()
    assert raised.group_contains(OSError)
    assert handle.resident and handle.get() == "precious"
    assert pool.stats.eviction_failures == 1
    backend.fail_stores = None
    pool.insert("third")
    store.finished()
    assert backend.count("store", handle.key) == 2
    assert not handle.resident and handle.get() == "precious"


def test_try_load_of_stored_item_is_none(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=1)
    handle = pool.insert("value")
    pool.insert("other")
    store.finished()
    assert handle.try_load() is None and handle.try_load_mut() is None


def test_try_load_mut_is_none_while_a_reader_holds(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=2)
    handle = pool.insert("value")
    with handle.load():
        assert handle.try_load_mut() is None
    guard = handle.try_load_mut()
    assert guard is not None
    guard.release()


def test_released_guard_keeps_no_reference(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=2)
    handle = pool.insert(["value"])
    guard = handle.load()
    guard.release()
    guard.release()
    assert guard.released and not hasattr(guard, "value")


def test_garbage_collected_guard_is_released(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=2)
    handle = pool.insert("value")
    handle.load()  # dropped at once
    store.finished()
    guard = handle.try_load_mut()
    assert guard is not None
    guard.release()


def test_garbage_collected_write_guard_is_released_with_its_value(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=2)
    handle = pool.insert("value")
    guard = handle.load_mut()
    guard.value = "changed"
    del guard
    store.finished()
    assert handle.get() == "changed"
    assert handle.try_load_mut() is not None


def test_a_guard_dropped_after_its_store_closed_raises_nothing(store: fb.BackingStore) -> None:
    raised: list[object] = []
    pool = fb.FBPool(store, max_items=2)
    guard = pool.insert("value").load()
    store.close()
    hook, sys.unraisablehook = sys.unraisablehook, raised.append
    try:
        del guard
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert raised == []


def test_max_bytes_bounds_resident_bytes(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=100, max_bytes=10_000)
    handles = [pool.insert(bytes(3_000)) for _ in range(10)]
    store.finished()
    assert pool.stats.bytes <= 10_000
    # Three fit; while eviction writes run, their values count against the budget too.
    assert 2 <= sum(h.resident for h in handles) <= 3


def test_item_larger_than_the_byte_budget_goes_straight_to_the_store(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=100, max_bytes=10_000)
    small = pool.insert(bytes(100))
    big = pool.insert(bytes(20_000))
    store.finished()
    assert small.resident and not big.resident
    assert backend.calls == [("store", big.key)]


def test_stats_count_hits_misses_and_loads(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=1)
    first = pool.insert("a")
    pool.insert("b")
    store.finished()
    first.get()
    first.get()
    stats = pool.stats
    assert (stats.hits, stats.misses, stats.loads, stats.stores) == (1, 1, 1, 1)


def test_reading_stats_leaves_the_hit_count_as_it_is(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=2)
    handle = pool.insert("a")
    handle.get()
    assert pool.stats.hits == pool.stats.hits == 1
    handle.get()
    assert pool.stats.hits == 2


@pytest.mark.timeout(30)
def test_hits_from_many_threads_are_all_counted(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=4)
    handle = pool.insert("shared")
    barrier = threading.Barrier(8)

    def reader() -> None:
        barrier.wait()
        for _ in range(5_000):
            handle.get()

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert pool.stats.hits == 8 * 5_000


@pytest.mark.timeout(30)
def test_get_waits_for_a_write_guard_and_returns_the_value_it_leaves(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=4)
    handle = pool.insert("old")
    guard = handle.load_mut()
    results: list[str] = []
    reader = threading.Thread(target=lambda: results.append(handle.get()))
    reader.start()
    reader.join(0.05)
    assert reader.is_alive() and results == []  # the write guard is held
    guard.value = "new"
    guard.release()
    reader.join(20)
    assert results == ["new"]


@pytest.mark.parametrize("size", [100, 200_000], ids=["small blob", "reusable buffer"])
def test_bytes_loaded_counts_the_blob_bytes_read_back(real_store: fb.BackingStore, size: int) -> None:
    pool = fb.FBPool(real_store, max_items=1)
    handle = pool.insert(bytes(size))
    handle.write_now()
    assert pool.evict_one() >= 0 and not handle.resident
    assert handle.get() == bytes(size)
    assert pool.stats.bytes_loaded == pool.stats.bytes_stored > size  # the one blob, read back once


def test_store_closed_rejects_use(backend: RecordingBackend) -> None:
    store = fb.BackingStore(backend)
    pool = fb.FBPool(store, max_items=1)
    store.close()
    store.close()
    with pytest.raises(fb.StoreClosedError):
        pool.insert("x")
    with pytest.raises(fb.StoreClosedError):
        store.track_path("p")


def test_insert_never_waits_for_an_eviction_write(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=1)
    first = pool.insert("held in the write")
    entered, release = backend.gate(first.key)
    pool.insert("second")
    assert entered.wait(10)
    later = [pool.insert(i) for i in range(5)]  # returns while the first write is still held
    assert not release.is_set() and later[-1].resident
    release.set()
    store.finished()


def test_insert_waits_while_eviction_writes_hold_more_than_a_twentieth_of_the_budget(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=1, max_bytes=10_000)
    big = pool.insert(bytes(1_000))
    entered, release = backend.gate(big.key)
    pool.insert(bytes(10))  # evicts `big` by count: its write holds 1 000 bytes > 500
    assert entered.wait(10)
    inserted = threading.Event()
    inserter = threading.Thread(target=lambda: (pool.insert(bytes(10)), inserted.set()))
    inserter.start()
    assert not inserted.wait(0.1)  # bounded memory: waits for the backlog
    release.set()
    inserter.join(10)
    assert inserted.is_set()
    store.finished()


def test_an_insert_over_the_byte_budget_waits_until_the_value_it_evicts_is_written(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool = fb.FBPool(store, max_items=100, max_bytes=10_000)
    big = pool.insert(bytes(9_000))
    entered, release = backend.gate(big.key)
    inserted = threading.Event()
    inserter = threading.Thread(target=lambda: (pool.insert(bytes(2_000)), inserted.set()))
    inserter.start()
    assert entered.wait(10)
    assert not inserted.is_set()  # `big` is still in memory until written: no room yet
    release.set()
    inserter.join(10)
    assert inserted.is_set() and not big.resident
    assert pool.stats.bytes <= 10_000
    store.finished()


def test_load_mut_of_an_item_larger_than_the_budget(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=10, max_bytes=1_000)
    handle = pool.insert(bytearray(5_000))
    store.finished()
    with handle.load_mut() as value:
        value[0] = 1
    store.finished()
    assert not handle.resident  # written again and dropped once released
    assert handle.get()[0] == 1


def test_pool_as_context_manager_closes_its_store(backend: RecordingBackend) -> None:
    with fb.FBPool(fb.BackingStore(backend), max_items=2) as pool:
        pool.insert("x")
    assert pool.store.closed


def test_byte_budget_trims_freed_memory_after_a_twentieth_of_it_was_evicted(
    store: fb.BackingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from file_backed import pool as pool_module

    trims: list[None] = []
    monkeypatch.setattr(pool_module, "trimming_available", lambda: True)
    monkeypatch.setattr(pool_module, "release_free_memory", lambda: trims.append(None))
    pool = fb.FBPool(store, max_items=100, max_bytes=10_000)
    handles = [pool.insert(bytes(500)) for _ in range(20)]  # nothing evicted yet: 10 000 bytes
    store.finished()
    assert trims == []
    handles.append(pool.insert(bytes(500)))  # 500 bytes dropped: a twentieth
    store.finished()
    assert len(trims) == 1


def test_trimming_can_be_turned_off(store: fb.BackingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from file_backed import pool as pool_module

    monkeypatch.setattr(pool_module, "trimming_available", lambda: True)
    monkeypatch.setattr(pool_module, "release_free_memory", lambda: pytest.fail("trimmed"))
    pool = fb.FBPool(store, max_items=100, max_bytes=1_000, trim_memory=False)
    handles = [pool.insert(bytes(500)) for _ in range(10)]
    store.finished()
    assert pool.stats.evictions >= 8
    assert 0 < pool.stats.bytes <= 1_000
    assert sum(h.resident for h in handles) == pool.stats.items


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("outer", "inner"),
    [
        ("load", "load_mut"),
        ("load_mut", "load"),
        ("load_mut", "load_mut"),
        ("load_mut", "get"),
        ("load_mut", "write_now"),
    ],
)
def test_a_guard_that_would_wait_for_one_of_the_same_thread_raises(
    store: fb.BackingStore, outer: str, inner: str
) -> None:
    pool = fb.FBPool(store, max_items=4)
    handle = pool.insert([1])
    with (
        getattr(handle, outer)(),
        pytest.raises(fb.GuardConflictError, match="release the guard first"),
    ):
        getattr(handle, inner)()
    assert handle.get() == [1]


def test_nested_read_guards_on_one_thread_are_fine(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=4)
    handle = pool.insert([1])
    with handle.load() as outer, handle.load() as inner:
        assert outer is inner
    with handle.load_mut() as value:
        value.append(2)
    assert handle.get() == [1, 2]
