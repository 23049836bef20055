"""The coroutine twins: same behaviour as the blocking methods, never blocking the loop."""

from __future__ import annotations

import asyncio

import pytest

import file_backed as fb
from tests.recording import RecordingBackend


async def test_aload_of_evicted_item_loads_it(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=1)
    handle = pool.insert("value")
    pool.insert("other")
    await store.afinished()
    guard = await handle.aload()
    assert guard.value == "value"
    guard.release()
    assert backend.count("load", handle.key) == 1


async def test_async_with_aload_gives_the_value(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=2)
    handle = pool.insert({"a": 1})
    async with handle.aload() as value:
        assert value == {"a": 1}
    assert handle.try_load_mut() is not None


async def test_aload_mut_changes_key(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=2)
    handle = pool.insert([1])
    old_key = handle.key
    async with handle.aload_mut() as value:
        value.append(2)
    assert handle.key != old_key and handle.get() == [1, 2]


async def test_awrite_now_and_apersist(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=2)
    handle = pool.insert("value")
    await handle.awrite_now()
    tracked = await store.atrack_path("p")
    assert await handle.apersist(tracked) == handle.key
    await store.afsync(tracked)
    assert backend.hooks() == ["store", "prepare_path", "sanitize_path", "persist", "sync_persisted"]


async def test_aregister_and_adelete_persisted(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=2)
    tracked = await store.atrack_path("p")
    key = await pool.insert("value").apersist(tracked)
    registered = await pool.aregister(tracked, key)
    assert registered is not None
    async with registered.aload() as value:
        assert value == "value"
    await store.adelete_persisted(tracked, key)
    assert key not in tracked and backend.count("delete_persisted") == 1


async def test_asave_with_coroutine_commit(store: fb.BackingStore) -> None:
    pool = fb.FBPool(store, max_items=2)
    tracked = store.track_path("p")
    handles = [pool.insert(i) for i in range(5)]
    committed: list[list[object]] = []

    async def commit(keys: list[object]) -> None:
        committed.append(keys)

    keys = await fb.asave(store, handles, tracked, commit=commit)
    assert committed == [keys] and set(keys) == tracked.keys()


async def test_aload_does_not_block_the_event_loop(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=1)
    handle = pool.insert("slow")
    entered, release = backend.gate(handle.key)
    pool.insert("other")
    await asyncio.to_thread(entered.wait, 10)
    # The eviction write is held; the loop keeps running other coroutines meanwhile.
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while not release.is_set():
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    write = asyncio.create_task(handle.awrite_now())
    while ticks < 100:
        await asyncio.sleep(0)
    release.set()
    await write
    await ticking
    assert ticks >= 100


async def test_cancelled_aload_releases_its_guard(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=1)
    handle = pool.insert("value")
    pool.insert("other")
    await store.afinished()
    started, finish = backend.gate(handle.key, hook="load")
    task = asyncio.create_task(handle.aload())
    assert await asyncio.to_thread(started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    finish.set()
    # load_mut waits until no reader holds the item: it returns only if the
    # guard that the cancelled coroutine never received was released.
    guard = await asyncio.wait_for(asyncio.to_thread(handle.load_mut), 10)
    assert guard.value == "value"
    guard.release()


async def test_many_tasks_share_one_load(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=1)
    handle = pool.insert("shared")
    pool.insert("other")
    await store.afinished()

    async def read() -> str:
        async with handle.aload() as value:
            return value  # type: ignore[no-any-return]

    assert await asyncio.gather(*(read() for _ in range(50))) == ["shared"] * 50
    assert backend.count("load", handle.key) == 1
