"""Workers on an in-process LocalCluster spill through file_backed to a local directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import file_backed.dask
from tests.dask.conftest import Outcome, assert_same_results, in_process_config, local_cluster, run

#: 6000 x 6000 float64: 288 MB, 2.4 times the two workers' budgets together.
SIZE = 6000


@pytest.fixture(scope="module")
def spill_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spill")


@pytest.fixture(scope="module")
def ours(spill_root: Path) -> Outcome:
    """The workload on a cluster whose workers spill below `spill_root` (closed afterwards)."""
    with in_process_config(), local_cluster(data=file_backed.dask.data(options={"path": str(spill_root)})) as cluster:
        return run(cluster, SIZE)


@pytest.mark.timeout(120)
def test_results_are_those_of_default_spilling(ours: Outcome, default_spilling: Callable[[int], Outcome]) -> None:
    assert_same_results(ours.results, default_spilling(SIZE).results)


@pytest.mark.timeout(120)
def test_workers_data_is_a_spill_mapping(ours: Outcome) -> None:
    assert ours.data_types == ["SpillMapping", "SpillMapping"]


@pytest.mark.timeout(120)
def test_workers_spilled_part_of_the_array(ours: Outcome) -> None:
    assert all(memory > 0 for memory, _disk in ours.spilled)
    assert all(writes > 0 for writes in ours.writes)


@pytest.mark.timeout(120)
def test_default_spilling_spilled_too(default_spilling: Callable[[int], Outcome]) -> None:
    default = default_spilling(SIZE)
    assert all(memory > 0 for memory, _disk in default.spilled)
    assert all(writes > 0 for writes in default.writes)


@pytest.mark.timeout(120)
def test_closing_the_cluster_leaves_no_blob(ours: Outcome, spill_root: Path) -> None:
    assert list(spill_root.iterdir()) == []


def test_data_checks_its_configuration_at_once() -> None:
    with pytest.raises(file_backed.ConfigError, match="no_such_backend"):
        file_backed.dask.data(backend="no_such_backend")
    with pytest.raises(file_backed.ConfigError, match="colour"):
        file_backed.dask.data(colour="blue")


def test_data_is_what_a_worker_accepts(tmp_path: Any) -> None:
    cls, kwargs = file_backed.dask.data(max_bytes="1 MiB", options={"path": str(tmp_path)})
    assert cls is file_backed.dask.SpillMapping
    assert kwargs == {"max_bytes": "1 MiB", "options": {"path": str(tmp_path)}}
