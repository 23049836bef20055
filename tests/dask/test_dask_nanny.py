"""Worker processes under nannies: the mapping travels pickled, spills, and its
area goes when the workers restart and when the cluster closes, on a local
directory and on the loopback S3 server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, LocalCluster, wait

import file_backed.dask
from tests.dask.conftest import CHUNK, da


def spill_stats(client: Client) -> dict[str, Any]:
    """Each worker's data type and blob writes, once the writes under way finished
    (evictions write on the store's threads; a fresh worker's first writes to S3
    can take a second)."""

    def stats(dask_worker: Any) -> tuple[str, float]:
        data = dask_worker.data
        data.pool.store.finished()
        return type(data).__name__, data.cumulative_metrics["disk-write", "count"]

    return client.run(stats)


@pytest.fixture(params=["fs_hardlink", "s3"])
def spill_target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, Any], Callable[[], set[str]]]:
    """The configuration of a spill location, and a function listing the areas there."""
    if request.param == "fs_hardlink":
        root = tmp_path / "spill"
        return {"options": {"path": str(root)}}, lambda: {path.name for path in root.iterdir()}
    server = request.getfixturevalue("s3_server")
    s3 = request.getfixturevalue("s3")
    bucket = request.getfixturevalue("bucket")

    def listing() -> set[str]:
        s3.invalidate_cache()
        return {path.split("/")[2] for path in s3.find(f"{bucket}/spill")}

    options = {"url": f"s3://{bucket}/spill", "storage_options": server.storage_options()}
    return {"backend": "fsspec", "options": options}, listing


@pytest.mark.timeout(150)
def test_worker_processes_spill_and_remove_their_areas_on_restart_and_close(
    spill_target: tuple[dict[str, Any], Callable[[], set[str]]],
) -> None:
    config, areas = spill_target
    data = file_backed.dask.data(max_bytes="24 MiB", **config)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, memory_limit="1 GiB", data=data, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        x = da.random.RandomState(1).random((4000, 4000), chunks=(CHUNK, CHUNK)).persist()  # 128 MB
        wait(x)
        expected = float(x.sum().compute())
        stats = spill_stats(client)
        assert [name for name, _writes in stats.values()] == ["SpillMapping", "SpillMapping"]
        assert sum(writes for _name, writes in stats.values()) > 0  # the scheduler may place most chunks on one worker
        before = areas()
        assert before

        del x
        client.restart()
        assert areas() == set()

        y = da.random.RandomState(1).random((4000, 4000), chunks=(CHUNK, CHUNK)).persist()
        wait(y)
        assert float(y.sum().compute()) == expected
        assert sum(writes for _name, writes in spill_stats(client).values()) > 0
        assert areas().isdisjoint(before)
        del y
    assert areas() == set()
