"""8 threads and 200 asyncio tasks over one fs_hardlink pool: no deadlock, every
value correct, every persisted key intact, no blob left once all handles go."""

from __future__ import annotations

import asyncio
import copy
import gc
import random
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

import file_backed as fb

from .conftest import stray_files

THREADS = 8
TASKS = 200
THREAD_OPS = 300
TASK_OPS = 25
DEADLINE = 60.0

Value = dict[str, Any]


class Shared:
    """What every actor sees: the pool, a tracked location, read-only handles
    anyone may load or persist, and the value persisted under each key."""

    def __init__(self, pool: fb.FBPool[Value], tracked: fb.TrackedPath) -> None:
        self.pool = pool
        self.tracked = tracked
        self.lock = threading.Lock()
        self.frozen: list[tuple[fb.Fb[Value], Value]] = []
        self.persisted: dict[uuid.UUID, Value] = {}

    def record(self, key: uuid.UUID, value: Value) -> None:
        with self.lock:
            assert self.persisted.setdefault(key, value) == value, f"key {key} persisted with two values"

    def any_frozen(self, rng: random.Random) -> tuple[fb.Fb[Value], Value] | None:
        with self.lock:
            return rng.choice(self.frozen) if self.frozen else None


def make_value(owner: str, rng: random.Random) -> Value:
    return {"owner": owner, "n": 0, "pad": rng.randbytes(rng.choice((10, 3000, 40_000)))}


def thread_actor(shared: Shared, name: str, seed: int) -> None:
    rng = random.Random(seed)
    mine: list[tuple[fb.Fb[Value], Value]] = []
    for _ in range(THREAD_OPS):
        op = rng.choice(("insert", "insert", "load", "load_mut", "persist", "drop", "frozen"))
        if op == "insert" or not mine:
            value = make_value(name, rng)
            handle = shared.pool.insert(copy.deepcopy(value))
            mine.append((handle, value))
            if rng.random() < 0.1:
                with shared.lock:
                    shared.frozen.append((handle, value))
                mine.pop()
            continue
        index = rng.randrange(len(mine))
        handle, expected = mine[index]
        if op == "load":
            with handle.load() as value:
                assert value == expected
        elif op == "load_mut":
            with handle.load_mut() as value:
                assert value == expected
                value["n"] += 1
            expected = copy.deepcopy(expected)
            expected["n"] += 1
            mine[index] = (handle, expected)
        elif op == "persist":
            shared.record(handle.persist(shared.tracked), expected)
        elif op == "drop":
            mine.pop(index)
        else:
            other = shared.any_frozen(rng)
            if other is not None:
                assert other[0].get() == other[1]
                shared.record(other[0].persist(shared.tracked), other[1])
    for handle, expected in mine:
        assert handle.get() == expected


async def task_actor(shared: Shared, name: str, seed: int) -> None:
    rng = random.Random(seed)
    mine: list[tuple[fb.Fb[Value], Value]] = []
    for _ in range(TASK_OPS):
        op = rng.choice(("insert", "load", "load_mut", "persist", "drop", "frozen"))
        if op == "insert" or not mine:
            value = make_value(name, rng)
            mine.append((shared.pool.insert(copy.deepcopy(value)), value))
            continue
        index = rng.randrange(len(mine))
        handle, expected = mine[index]
        if op == "load":
            async with handle.aload() as value:
                assert value == expected
        elif op == "load_mut":
            async with handle.aload_mut() as value:
                assert value == expected
                value["n"] += 1
            expected = copy.deepcopy(expected)
            expected["n"] += 1
            mine[index] = (handle, expected)
        elif op == "persist":
            shared.record(await handle.apersist(shared.tracked), expected)
        elif op == "drop":
            mine.pop(index)
        else:
            other = shared.any_frozen(rng)
            if other is not None:
                async with other[0].aload() as value:
                    assert value == other[1]
    for handle, expected in mine:
        async with handle.aload() as value:
            assert value == expected


@pytest.mark.timeout(120)
def test_threads_and_tasks_over_one_pool(tmp_path: Path) -> None:
    area, location = tmp_path / "area", tmp_path / "persisted"
    rng = random.Random()
    failures: list[BaseException] = []

    def guarded(name: str, seed: int) -> None:
        try:
            thread_actor(shared, name, seed)
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            failures.append(error)

    with fb.open_store("fs_hardlink", path=area, workers=4) as store:
        pool: fb.FBPool[Value] = fb.FBPool(store, max_items=16)
        shared = Shared(pool, store.track_path(location))
        threads = [
            threading.Thread(target=guarded, args=(f"thread-{i}", rng.getrandbits(32)), daemon=True)
            for i in range(THREADS)
        ]
        for thread in threads:
            thread.start()

        async def all_tasks() -> None:
            tasks = [task_actor(shared, f"task-{i}", rng.getrandbits(32)) for i in range(TASKS)]
            await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)

        asyncio.run(all_tasks())
        for thread in threads:
            thread.join(DEADLINE)
            assert not thread.is_alive(), f"{thread.name} deadlocked"
        assert not failures, failures
        assert pool.stats.evictions > 0 and pool.stats.loads > 0, "the pool was never under pressure"

        del shared.frozen[:]
        gc.collect()
        store.finished(timeout=DEADLINE)
        assert stray_files(area) == [], "blobs were left in the temporary area after every handle went"
        persisted = dict(shared.persisted)
        assert len(persisted) > 50

    with fb.open_store("fs_hardlink", path=tmp_path / "fresh") as store:
        fresh: fb.FBPool[Value] = fb.FBPool(store, max_items=16)
        tracked = store.track_path(location)
        assert tracked.keys() == persisted.keys()
        for key, value in persisted.items():
            handle = fresh.register(tracked, key)
            assert handle is not None and handle.get() == value, f"persisted key {key} changed"
