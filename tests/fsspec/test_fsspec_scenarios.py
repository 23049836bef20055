"""The core's behavioural scenarios through the public API, on the fsspec backend
with its temporary area on ``file://``, ``memory://`` and the loopback S3 server.

Every check of what is stored lists the filesystem itself.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import uuid
from typing import Any

import pytest

import file_backed as fb


def test_insert_writes_nothing_and_eviction_writes_the_item_past_the_end(area: Any) -> None:
    with area.open_store() as store:
        pool = fb.FBPool(store, max_items=2)
        first = pool.insert({"n": 1})
        assert area.keys(area.url) == set()
        second, third = pool.insert({"n": 2}), pool.insert({"n": 3})
        store.finished()
        assert area.keys(area.url) == {first.key}
        assert not first.resident and second.resident and third.resident
        assert pool.stats.evictions == 1


def test_reload_returns_the_value_and_keeps_the_blob(area: Any) -> None:
    with area.open_store() as store:
        pool = fb.FBPool(store, max_items=2)
        values = [{"n": n, "data": bytes(range(256)) * n} for n in range(5)]
        handles = [pool.insert(value) for value in values]
        store.finished()
        for handle, value in zip(handles, values, strict=True):
            with handle.load() as loaded:
                assert loaded == value
        store.finished()
        assert pool.stats.loads >= 3  # items 0-2 were not in memory; 3 and 4 may have been
        assert {h.key for h in handles} == area.keys(area.url)


def test_write_now_stores_once(area: Any) -> None:
    with area.open_store() as store:
        pool = fb.FBPool(store, max_items=4)
        handle = pool.insert(b"value")
        handle.write_now()
        handle.write_now()
        assert area.keys(area.url) == {handle.key}
        assert pool.stats.stores == 1 and handle.resident


def test_persist_to_two_locations_then_fsync(area: Any) -> None:
    with area.open_store() as store:
        pool = fb.FBPool(store, max_items=4)
        handle = pool.insert([1, 2, 3])
        here = store.track_path(area.location("here"))
        there = store.track_path(area.location("there"))
        assert handle.persist(here) == handle.key
        assert handle.persist(here) == handle.key  # already there: no-op
        handle.persist(there)
        store.fsync(here)
        store.fsync(there)
        assert area.keys(area.location("here")) == area.keys(area.location("there")) == {handle.key}
        assert handle.key in here and handle.key in there
        assert pool.stats.stores == 1


def test_restart_registers_persisted_keys_without_loading(area: Any) -> None:
    location = area.location("persisted")
    values = {f"item {n}": list(range(n)) for n in range(4)}
    with area.open_store() as store:
        pool = fb.FBPool(store, max_items=2)
        tracked = store.track_path(location)
        keys = {name: pool.insert(value).persist(tracked) for name, value in values.items()}
        store.fsync(tracked)
    with area.open_store() as store:
        tracked = store.track_path(location)
        assert tracked.keys() == set(keys.values())
        pool = fb.FBPool(store, max_items=2)
        handles = {name: pool.register(tracked, key) for name, key in keys.items()}
        assert all(h is not None and not h.resident for h in handles.values())
        assert pool.stats.loads == 0
        for name, handle in handles.items():
            assert handle is not None and handle.get() == values[name]
        assert pool.register(tracked, uuid.uuid4()) is None


def test_register_twice_shares_one_blob_and_survives_delete_persisted(area: Any) -> None:
    location = area.location("persisted")
    with area.open_store() as store:
        pool = fb.FBPool(store, max_items=2)
        tracked = store.track_path(location)
        original = pool.insert("shared")
        key = original.persist(tracked)
        del original
        gc.collect()
        store.finished()
        assert area.keys(area.url) == set()
        first, second = pool.register(tracked, key), pool.register(tracked, key)
        assert first is not None and second is not None
        assert area.keys(area.url) == {key}
        store.delete_persisted(tracked, key)
        store.delete_persisted(tracked, key)  # not there any more: no-op
        assert area.keys(location) == set() and key not in tracked
        assert first.get() == second.get() == "shared"
        del first, second
        gc.collect()
        store.finished()
        assert area.keys(area.url) == set()


def test_load_mut_changes_the_key_and_drops_the_stored_copy(area: Any) -> None:
    with area.open_store() as store:
        pool = fb.FBPool(store, max_items=2)
        handle = pool.insert([1])
        pool.insert(0), pool.insert(0)
        store.finished()
        old = handle.key
        assert area.keys(area.url) == {old}
        with handle.load_mut() as value:
            value.append(2)
        store.finished()
        assert handle.key != old and old not in area.keys(area.url)
        handle.write_now()
        assert handle.key in area.keys(area.url)
        assert handle.get() == [1, 2]


def test_dropping_every_handle_deletes_every_blob(area: Any) -> None:
    with area.open_store() as store:
        pool = fb.FBPool(store, max_items=2)
        handles = [pool.insert(n) for n in range(10)]
        store.finished()
        assert len(area.keys(area.url)) == 8
        del handles
        gc.collect()
        store.finished()
        assert area.keys(area.url) == set()


def test_codecs_other_than_pickle(area: Any) -> None:
    with area.open_store(codec="json") as store:
        pool = fb.FBPool(store, max_items=1)
        handle = pool.insert({"a": [1, 2]})
        pool.insert({})
        store.finished()
        assert not handle.resident and handle.get() == {"a": [1, 2]}
    with area.open_store(codec="bytes") as store:
        pool = fb.FBPool(store, max_items=1)
        handle = pool.insert(b"raw bytes")
        pool.insert(b"")
        store.finished()
        assert handle.get() == bytearray(b"raw bytes")


def test_coroutine_twins(area: Any) -> None:
    async def main(store: fb.BackingStore) -> None:
        pool = fb.FBPool(store, max_items=2)
        handles = [pool.insert(n) for n in range(4)]
        await store.afinished()
        async with handles[0].aload() as value:
            assert value == 0
        tracked = await store.atrack_path(area.location("persisted"))
        key = await handles[1].apersist(tracked)
        await store.afsync(tracked)
        registered = await pool.aregister(tracked, key)
        assert registered is not None and registered.get() == 1
        await store.adelete_persisted(tracked, key)
        assert area.keys(area.location("persisted")) == set()

    with area.open_store() as store:
        asyncio.run(main(store))


@pytest.mark.timeout(60)
def test_threads_inserting_then_loading_through_a_small_pool(area: Any) -> None:
    with area.open_store(workers=4) as store:
        pool = fb.FBPool(store, max_items=4)
        handles: dict[int, list[tuple[fb.Fb[Any], tuple[int, int]]]] = {}
        errors: list[BaseException] = []

        def run_threads(target: Any) -> None:
            start = threading.Barrier(4)

            def guarded(number: int) -> None:
                try:
                    start.wait()
                    target(number)
                except BaseException as error:  # noqa: BLE001 - reported by the main thread
                    errors.append(error)

            threads = [threading.Thread(target=guarded, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []

        def insert(number: int) -> None:
            handles[number] = [(pool.insert((number, n)), (number, n)) for n in range(12)]

        def load(number: int) -> None:
            for _ in range(2):
                for handle, value in handles[number]:
                    with handle.load() as loaded:
                        assert loaded == value

        run_threads(insert)
        store.finished()
        assert len(area.keys(area.url)) == 48 - 4
        run_threads(load)
        store.finished()
        assert pool.stats.eviction_failures == 0
        assert pool.stats.loads >= 44
