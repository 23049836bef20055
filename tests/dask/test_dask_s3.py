"""Workers spill through the fsspec backend to a loopback S3 server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import file_backed.dask
from tests.dask.conftest import Outcome, assert_same_results, in_process_config, local_cluster, run
from tests.fsspec.conftest import S3Server

#: 6000 x 6000 float64: 288 MB, 2.4 times the two workers' budgets together.
SIZE = 6000


@pytest.fixture(scope="module")
def spill_bucket(s3: Any) -> str:
    name = "fb-dask-spill"
    s3.mkdir(name)
    return name


@pytest.fixture(scope="module")
def ours(s3_server: S3Server, spill_bucket: str) -> Outcome:
    """The workload on a cluster whose workers spill to ``s3://<spill_bucket>/spill`` (closed afterwards)."""
    config = file_backed.dask.data(
        backend="fsspec",
        options={"url": f"s3://{spill_bucket}/spill", "storage_options": s3_server.storage_options()},
    )
    with in_process_config(), local_cluster(data=config) as cluster:
        return run(cluster, SIZE)


@pytest.mark.timeout(120)
def test_results_are_those_of_default_spilling(ours: Outcome, default_spilling: Callable[[int], Outcome]) -> None:
    assert_same_results(ours.results, default_spilling(SIZE).results)


@pytest.mark.timeout(120)
def test_workers_spilled_to_s3(ours: Outcome) -> None:
    assert ours.data_types == ["SpillMapping", "SpillMapping"]
    assert all(memory > 0 for memory, _disk in ours.spilled)
    assert all(writes > 0 for writes in ours.writes)


@pytest.mark.timeout(120)
def test_closing_the_cluster_leaves_no_object_in_the_bucket(ours: Outcome, s3: Any, spill_bucket: str) -> None:
    s3.invalidate_cache()
    assert s3.find(spill_bucket) == []
