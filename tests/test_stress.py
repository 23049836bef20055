"""Threads and coroutines over one pool: no deadlock, no lost value, no leftover blob."""

from __future__ import annotations

import asyncio
import gc
import random
import threading
from pathlib import Path

import pytest

import file_backed as fb

pytestmark = pytest.mark.timeout(120)


def _check(handle: fb.Fb[list[int]], expected: list[int]) -> None:
    assert handle.get() == expected


def _worker(pool: fb.FBPool[list[int]], tracked: fb.TrackedPath, seed: int, errors: list[BaseException]) -> None:
    rng = random.Random(seed)
    mine: list[tuple[fb.Fb[list[int]], list[int]]] = []
    try:
        for step in range(300):
            action = rng.random()
            if action < 0.3 or not mine:
                value = [seed, step]
                mine.append((pool.insert(list(value)), value))
            elif action < 0.6:
                handle, expected = rng.choice(mine)
                with handle.load() as value:
                    assert value == expected
            elif action < 0.75:
                index = rng.randrange(len(mine))
                handle, expected = mine[index]
                with handle.load_mut() as value:
                    value.append(step)
                mine[index] = (handle, [*expected, step])
            elif action < 0.85:
                rng.choice(mine)[0].persist(tracked)
            else:
                mine.pop(rng.randrange(len(mine)))
        for handle, expected in mine:
            _check(handle, expected)
    except BaseException as error:  # noqa: BLE001 - reported by the test
        errors.append(error)


async def _task(pool: fb.FBPool[list[int]], seed: int) -> None:
    rng = random.Random(seed)
    handle = pool.insert([seed])
    expected = [seed]
    for step in range(10):
        if rng.random() < 0.5:
            async with handle.aload() as value:
                assert value == expected
        else:
            async with handle.aload_mut() as value:
                value.append(step)
            expected.append(step)
        await asyncio.sleep(0)
    async with handle.aload() as value:
        assert value == expected


@pytest.mark.parametrize("max_bytes", [None, 3_000], ids=["items", "bytes"])
@pytest.mark.parametrize("backend", ["memory", "fs_hardlink"])
def test_threads_and_tasks_lose_nothing_and_leave_no_blob(backend: str, max_bytes: int | None, tmp_path: Path) -> None:
    options = {"path": tmp_path / "temporary"} if backend == "fs_hardlink" else {}
    location = str(tmp_path / "persisted") if backend == "fs_hardlink" else f"stress-{tmp_path.name}"
    with fb.open_store(backend, **options) as store:
        pool: fb.FBPool[list[int]] = fb.FBPool(store, max_items=16, max_bytes=max_bytes)
        tracked = store.track_path(location)
        errors: list[BaseException] = []
        threads = [threading.Thread(target=_worker, args=(pool, tracked, seed, errors)) for seed in range(8)]
        for thread in threads:
            thread.start()

        async def tasks() -> None:
            await asyncio.gather(*(_task(pool, 1000 + seed) for seed in range(200)))

        asyncio.run(tasks())
        for thread in threads:
            thread.join(100)
        assert not any(thread.is_alive() for thread in threads), "deadlock: a worker thread never finished"
        assert errors == []
        gc.collect()
        store.finished()
        assert len(pool) == 0
        if backend == "fs_hardlink":
            assert [p for p in (tmp_path / "temporary").rglob("*") if p.is_file() and len(p.name) == 32] == []
        else:
            assert store.backend._blobs == {}  # type: ignore[attr-defined]
