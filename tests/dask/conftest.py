"""Fixtures for the Dask tests: a workload several times larger than the workers'
memory budgets, run on LocalClusters that spill with Dask's default
``SpillBuffer`` or through ``file_backed.dask``.

In-process clusters (``processes=False``) share one process, whose memory the
memory monitor would attribute to every worker; they spill at their target
budgets only (the ``spill``/``pause``/``terminate`` thresholds of the process
memory are disabled). The cluster with nannies keeps Dask's thresholds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import pytest

pytest.importorskip("distributed", reason="the Dask tests need file-backed[dask]")
np = pytest.importorskip("numpy")

import dask
import dask.array as da
from distributed import Client, LocalCluster, wait

from tests.fsspec.conftest import bucket, s3, s3_server  # noqa: F401 - the loopback S3 fixtures

#: Each in-process worker: 100 MiB of memory, so a 60 MiB budget at the default target of 0.6.
MEMORY_LIMIT = 100 * 2**20
#: Chunks of 1000 x 1000 float64: 8 MB each.
CHUNK = 1000


def in_process_config() -> Any:
    """Spill at the target budget only (see the module notes)."""
    return dask.config.set(
        {
            "distributed.worker.memory.spill": False,
            "distributed.worker.memory.pause": False,
            "distributed.worker.memory.terminate": False,
        }
    )


@attrs.frozen
class Outcome:
    """What a workload gave, and what the workers' data mappings did."""

    results: Mapping[str, Any]
    data_types: list[str]
    spilled: list[Any]  # spilled_total of each worker's data once the array is persisted
    writes: list[int]  # blobs or files each worker's data wrote during the workload


def workload(client: Client, size: int) -> tuple[dict[str, Any], list[Any]]:
    """Array reductions over a persisted ``size`` x ``size`` array, a transpose-sum
    (every chunk meets its mirror), and a dataframe groupby when pandas is
    installed; with the ``spilled_total`` of each worker's data (None where it
    has none) once the array is persisted."""
    x = da.random.RandomState(42).random((size, size), chunks=(CHUNK, CHUNK)).persist()
    wait(x)
    spilled = client.run(lambda dask_worker: getattr(dask_worker.data, "spilled_total", None))
    results: dict[str, Any] = {}
    results["sum"], results["mean0"], results["max1"] = dask.compute(x.sum(), x.mean(axis=0), x.max(axis=1))
    results["transpose_sum"] = (x + x.T).sum(axis=0).compute()
    try:
        import dask.dataframe as dd
    except ImportError:
        return results, list(spilled.values())
    frame = dd.from_dask_array(x[:, :4], columns=["a", "b", "c", "d"])
    frame["group"] = (frame["a"] * 16).astype("int64")
    results["groupby"] = frame.groupby("group").agg({"b": "sum", "c": "max", "d": "count"}).compute().sort_index()
    return results, list(spilled.values())


def run(cluster: LocalCluster, size: int) -> Outcome:
    """The workload on `cluster`, with the type of each worker's data."""
    with Client(cluster) as client:
        data_types = list(client.run(lambda dask_worker: type(dask_worker.data).__name__).values())
        results, spilled = workload(client, size)
        writes = client.run(lambda dask_worker: int(dask_worker.data.cumulative_metrics["disk-write", "count"]))
    return Outcome(results, data_types, spilled, list(writes.values()))


def local_cluster(**kwargs: Any) -> LocalCluster:
    return LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=False,
        memory_limit=MEMORY_LIMIT,
        dashboard_address=None,
        **kwargs,
    )


def assert_same_results(ours: Mapping[str, Any], default: Mapping[str, Any]) -> None:
    assert ours.keys() == default.keys()
    for name, value in default.items():
        if hasattr(value, "equals"):
            assert value.equals(ours[name]), name
        else:
            np.testing.assert_array_equal(ours[name], value, err_msg=name)


@pytest.fixture(scope="session")
def default_spilling() -> Callable[[int], Outcome]:
    """Outcomes of the workload on in-process clusters with Dask's default spilling, by size (computed once each)."""
    outcomes: dict[int, Outcome] = {}

    def outcome(size: int) -> Outcome:
        if size not in outcomes:
            with in_process_config(), local_cluster() as cluster:
                outcomes[size] = run(cluster, size)
        return outcomes[size]

    return outcome
