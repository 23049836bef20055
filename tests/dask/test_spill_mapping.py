"""`SpillMapping` on its own (no worker): the memory manager's protocol, and areas."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import file_backed.dask
from file_backed.dask.areas import new_area_name
from tests.dask.conftest import np

MB = 10**6


@pytest.fixture
def mapping(tmp_path: Path) -> Iterator[file_backed.dask.SpillMapping]:
    spill = file_backed.dask.SpillMapping(max_bytes="100 MB", options={"path": str(tmp_path)})
    yield spill
    spill.close()


def test_evict_writes_the_least_recent_value_and_returns_its_size(mapping: file_backed.dask.SpillMapping) -> None:
    mapping["a"] = np.ones(MB, dtype="u1")
    mapping["b"] = np.zeros(MB, dtype="u1")
    assert mapping.evict() >= MB
    assert list(mapping.slow) == ["a"]
    assert list(mapping.fast) == ["b"]
    assert mapping.spilled_total.memory >= MB
    assert mapping.spilled_total.disk >= MB
    np.testing.assert_array_equal(mapping["a"], np.ones(MB, dtype="u1"))


def test_evict_returns_minus_one_when_nothing_is_in_memory(mapping: file_backed.dask.SpillMapping) -> None:
    assert mapping.evict() == -1
    mapping["a"] = b"x" * MB
    mapping.evict()
    assert not mapping.fast
    assert mapping.evict() == -1


def test_values_beyond_the_budget_are_spilled_and_read_back(mapping: file_backed.dask.SpillMapping) -> None:
    for index in range(30):
        mapping[("x", index)] = np.full(10 * MB // 8, index, dtype="f8")
    mapping.pool.store.finished(timeout=30)
    assert len(mapping.slow) > 0
    assert mapping.cumulative_metrics["disk-write", "count"] > 0
    assert [float(mapping[("x", index)][0]) for index in range(30)] == list(range(30))


def test_deleting_keys_deletes_their_blobs(mapping: file_backed.dask.SpillMapping) -> None:
    for index in range(5):
        mapping[index] = b"y" * MB
        mapping.evict()
    for index in range(5):
        del mapping[index]
    mapping.pool.store.finished(timeout=30)
    assert len(mapping) == 0
    assert mapping.spilled_total == (0, 0)


def test_setting_on_an_event_loop_is_readable_at_once(mapping: file_backed.dask.SpillMapping) -> None:
    async def set_and_read() -> bytes:
        mapping["k"] = b"value"
        assert "k" in mapping
        return mapping["k"]  # type: ignore[return-value]

    assert asyncio.run(asyncio.wait_for(set_and_read(), 10)) == b"value"


def test_close_removes_the_area(tmp_path: Path) -> None:
    spill = file_backed.dask.SpillMapping(max_bytes="1 MB", options={"path": str(tmp_path)})
    spill["a"] = b"z" * MB
    spill.evict()
    assert list(tmp_path.iterdir())
    spill.close()
    assert list(tmp_path.iterdir()) == []


def test_the_dask_codec_round_trips_arrays_aligned(mapping: file_backed.dask.SpillMapping) -> None:
    mapping["array"] = np.arange(MB, dtype="f8")
    mapping.evict()
    loaded = mapping["array"]
    assert loaded.flags.aligned
    np.testing.assert_array_equal(loaded, np.arange(MB, dtype="f8"))


@pytest.mark.timeout(30)
def test_sweep_removes_areas_of_dead_processes_of_this_host_only(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    live_area = tmp_path / new_area_name()
    dead_area = tmp_path / new_area_name().replace(f"-{os.getpid()}-", f"-{int(dead.stdout)}-")
    other_host = tmp_path / "dask-otherhost-1-0123abcd"
    for area in (live_area, dead_area, other_host):
        (area / "00").mkdir(parents=True)
    assert file_backed.dask.sweep(tmp_path) == [str(dead_area)]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([live_area.name, other_host.name])
