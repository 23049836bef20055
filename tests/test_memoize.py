"""`fb.memoize`: results kept in a pool, persisted, computed once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import file_backed as fb
from file_backed.memoize import call_digest

CHILD = Path(__file__).with_name("memo_child.py")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[fb.BackingStore]:
    with fb.open_store("fs_hardlink", path=tmp_path / "temporary") as store:
        yield store


@pytest.fixture
def pool(store: fb.BackingStore) -> fb.FBPool[Any]:
    return fb.FBPool(store, max_items=4)


@pytest.fixture
def tracked(store: fb.BackingStore, tmp_path: Path) -> fb.TrackedPath:
    return store.track_path(tmp_path / "results")


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Return once `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        threading.Event().wait(0.001)


def counted(pool: fb.FBPool[Any], tracked: fb.TrackedPath | None = None, **options: Any) -> tuple[Any, list[Any]]:
    calls: list[Any] = []

    @fb.memoize(pool, tracked, **options)
    def square(x: Any, power: int = 2) -> Any:
        calls.append(x)
        return x**power if isinstance(x, int) else [x, power]

    return square, calls


def test_a_call_with_the_same_arguments_computes_once(pool: fb.FBPool[Any]) -> None:
    square, calls = counted(pool)
    assert square(3) == 9 and square(3) == 9
    assert calls == [3]
    assert square.cache_info() == fb.MemoInfo(hits=1, misses=1, size=1)


def test_arguments_are_bound_to_the_signature(pool: fb.FBPool[Any]) -> None:
    square, calls = counted(pool)
    assert square(3) == square(x=3) == square(3, 2) == square(3, power=2) == 9
    assert calls == [3]


def test_different_arguments_compute_separately(pool: fb.FBPool[Any]) -> None:
    square, calls = counted(pool)
    assert (square(2), square(3), square(3, 3)) == (4, 9, 27)
    assert len(calls) == 3


def test_unhashable_but_picklable_arguments_are_memoized(pool: fb.FBPool[Any]) -> None:
    square, calls = counted(pool)
    assert square({"a": [1, 2]}) == square({"a": [1, 2]})
    assert len(calls) == 1


def test_unpicklable_arguments_raise_unhashable_argument_error(pool: fb.FBPool[Any]) -> None:
    square, calls = counted(pool)
    with pytest.raises(fb.UnhashableArgumentError, match="cannot be pickled") as raised:
        square(threading.Lock())
    assert isinstance(raised.value, TypeError) and isinstance(raised.value, fb.FileBackedError)
    assert calls == []


def test_bumping_the_version_computes_again(pool: fb.FBPool[Any], tracked: fb.TrackedPath) -> None:
    first, first_calls = counted(pool, tracked, version=1)
    second, second_calls = counted(pool, tracked, version=2)
    first(3)
    second(3)
    assert first_calls == second_calls == [3]


def test_results_evicted_from_the_pool_come_back_from_the_store(pool: fb.FBPool[Any]) -> None:
    square, calls = counted(pool)
    results = [square(n) for n in range(20)]
    pool.store.finished(timeout=10)
    assert [square(n) for n in range(20)] == results
    assert len(calls) == 20
    assert pool.stats.loads > 0


def test_exceptions_are_not_cached(pool: fb.FBPool[Any]) -> None:
    attempts: list[int] = []

    @fb.memoize(pool)
    def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            raise ValueError("first attempt fails")
        return x

    with pytest.raises(ValueError, match="first attempt"):
        flaky(1)
    assert flaky(1) == 1
    assert attempts == [1, 1]


def test_a_recursive_call_with_the_same_arguments_raises(pool: fb.FBPool[Any]) -> None:
    @fb.memoize(pool)
    def loop(x: int) -> int:
        return loop(x)

    with pytest.raises(RecursionError, match="same arguments"):
        loop(1)


def test_sets_hash_alike_in_processes_with_different_string_hashing() -> None:
    script = (
        "from file_backed.memoize import call_digest; "
        "print(call_digest('f', '0', ({'alpha', 'beta', 'gamma', 'delta'}, frozenset('xyzw'))).hex())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(digests) == 1
    assert (
        digests.pop().strip() == call_digest("f", "0", ({"alpha", "beta", "gamma", "delta"}, frozenset("xyzw"))).hex()
    )


def test_persisted_results_are_at_the_location(pool: fb.FBPool[Any], tracked: fb.TrackedPath, tmp_path: Path) -> None:
    square, _calls = counted(pool, tracked)
    square(3)
    assert square.key(3) in pool.store.track_path(tmp_path / "results")


def test_a_second_process_finds_persisted_results(tmp_path: Path) -> None:
    def run(temp: str) -> str:
        return subprocess.run(
            [sys.executable, str(CHILD), str(tmp_path / temp), str(tmp_path / "results"), "7"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        ).stdout.strip()

    assert run("first") == "result 49 computed 1 restored 0"
    assert run("second") == "result 49 computed 0 restored 1"


def test_a_result_the_codec_cannot_encode_is_kept_in_memory(
    pool: fb.FBPool[Any], tracked: fb.TrackedPath, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    @fb.memoize(pool, tracked)
    def make_lock(x: int) -> Any:
        calls.append(x)
        return threading.Lock()

    lock = make_lock(1)
    assert make_lock(1) is lock
    assert calls == [1]
    assert "kept in memory only" in caplog.text


@pytest.mark.timeout(30)
def test_concurrent_threads_with_the_same_arguments_compute_once(pool: fb.FBPool[Any]) -> None:
    threads_count = 8
    calls: list[int] = []

    @fb.memoize(pool)
    def slow(x: int) -> list[int]:
        calls.append(x)
        wait_until(lambda: slow.cache_info().waited == threads_count - 1)  # every other thread waits on this call
        return [x]

    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(slow(5))) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert results == [[5]] * threads_count
    assert calls == [5]


@pytest.mark.timeout(30)
def test_waiting_threads_get_the_exception_of_the_running_call(pool: fb.FBPool[Any]) -> None:
    @fb.memoize(pool)
    def failing(x: int) -> int:
        wait_until(lambda: failing.cache_info().waited == 1)
        raise ValueError("failed once for both")

    outcomes: list[BaseException] = []

    def call() -> None:
        try:
            failing(1)
        except ValueError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(outcomes) == 2 and outcomes[0] is outcomes[1]


async def test_an_async_function_is_memoized(pool: fb.FBPool[Any], tracked: fb.TrackedPath) -> None:
    calls: list[int] = []

    @fb.memoize(pool, tracked)
    async def fetch(x: int) -> dict[str, int]:
        calls.append(x)
        await asyncio.sleep(0)
        return {"x": x}

    assert asyncio.iscoroutinefunction(fetch)
    assert await fetch(1) == await fetch(1) == {"x": 1}
    assert calls == [1]
    assert fetch.key(1) in tracked


@pytest.mark.timeout(30)
async def test_concurrent_coroutines_with_the_same_arguments_compute_once(pool: fb.FBPool[Any]) -> None:
    calls: list[int] = []

    @fb.memoize(pool)
    async def fetch(x: int) -> list[int]:
        calls.append(x)
        while fetch.cache_info().waited < 19:  # every other coroutine waits on this call
            await asyncio.sleep(0)
        return [x]

    results = await asyncio.wait_for(asyncio.gather(*(fetch(2) for _ in range(20))), timeout=20)
    assert results == [[2]] * 20
    assert calls == [2]


@pytest.mark.timeout(30)
async def test_a_cancelled_computation_lets_a_waiting_coroutine_compute(pool: fb.FBPool[Any]) -> None:
    calls: list[int] = []
    first_started = asyncio.Event()
    never = asyncio.Event()

    @fb.memoize(pool)
    async def fetch(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            first_started.set()
            await never.wait()
        return x

    first = asyncio.create_task(fetch(3))
    await first_started.wait()
    second = asyncio.create_task(fetch(3))
    while fetch.cache_info().waited < 1:
        await asyncio.sleep(0)
    first.cancel()
    assert await asyncio.wait_for(second, timeout=20) == 3
    assert calls == [3, 3]
    with pytest.raises(asyncio.CancelledError):
        await first
