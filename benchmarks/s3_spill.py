"""s3: spilling to object storage through the ``fsspec`` backend, against raw
s3fs on the same server.

A moto S3 server runs in a process of its own on loopback (so it does not share
the measuring process's interpreter lock). Both systems move the same numpy
arrays (random float64, 8 MiB each in the full run) out and back, alternating
within each repeat:

``file_backed``
    An `FBPool` over ``open_store("fsspec", url="s3://...")`` with the
    ``numpy`` codec; every array is inserted, then evicted with
    ``pool.evict_one()`` (the blob written on the calling thread, as a Dask
    worker's ``evict()`` does), then loaded back with ``h.get()``.
``raw s3fs``
    ``fs.pipe_file(path, data)`` for every array's bytes (made before timing:
    botocore takes ``bytes``, not buffers), then
    ``fs.cat_file(path, max_concurrency=1)`` (a single GET; s3fs's default
    would send a HEAD first for the size).

Figures: throughput of writes, of reads, and of both together (bytes of the
arrays moved out and back over the seconds taken). The library's blobs carry
a header of a few hundred bytes more than the raw objects; only the arrays'
bytes are counted.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .common import Context, MiB, Row, Section, Target, Workload, optional_peer

__all__ = ["WORKLOADS"]


@dataclass(frozen=True)
class S3Sizes:
    """How many arrays of how many bytes go out and back."""

    item_bytes: int
    items: int

    def describe(self) -> str:
        return (
            f"{self.items} arrays of {self.item_bytes / MiB:g} MiB out and back once "
            "through a moto S3 server in its own process on loopback"
        )


SIZES = {
    "smoke": S3Sizes(1 * MiB, 4),
    "quick": S3Sizes(8 * MiB, 24),
    "full": S3Sizes(8 * MiB, 64),
}
SYSTEMS = ("file_backed", "raw s3fs")


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server in a child process on a free loopback port; yields its endpoint."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the moto S3 server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def storage_options(endpoint: str) -> dict[str, Any]:
    return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}}


def _file_backed(arrays: list[Any], url: str, options: dict[str, Any]) -> tuple[float, float]:
    """Seconds to evict every array (written on this thread) and to load every one back."""
    import file_backed as fb

    store = fb.open_store("fsspec", url=url, storage_options=options, codec="numpy")
    try:
        pool: fb.FBPool[Any] = fb.FBPool(store, max_items=10**9, max_bytes=2**62)
        handles = [pool.insert(array) for array in arrays]
        started = time.perf_counter()
        while pool.evict_one() > 0:
            pass
        writing = time.perf_counter() - started
        assert not any(handle.resident for handle in handles)
        started = time.perf_counter()
        for handle, array in zip(handles, arrays, strict=True):
            value = handle.get()
            assert value.nbytes == array.nbytes
            del value
        reading = time.perf_counter() - started
        for handle, array in zip(handles, arrays, strict=True):
            assert (handle.get() == array).all()
        del handles
    finally:
        store.close()
    return writing, reading


def _raw(arrays: list[Any], root: str, options: dict[str, Any]) -> tuple[float, float]:
    """Seconds to put every array as an object with s3fs and to get every one back."""
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
    paths = [f"{root}/{uuid.uuid4().hex}" for _ in arrays]
    payloads = [array.tobytes() for array in arrays]  # botocore takes bytes, not buffers
    started = time.perf_counter()
    for path, payload in zip(paths, payloads, strict=True):
        fs.pipe_file(path, payload)
    writing = time.perf_counter() - started
    started = time.perf_counter()
    for path, array in zip(paths, arrays, strict=True):
        data = fs.cat_file(path, max_concurrency=1)
        assert len(data) == array.nbytes
        del data
    reading = time.perf_counter() - started
    fs.rm(paths)
    return writing, reading


def run(ctx: Context) -> Section:
    """Write, read and round-trip throughput of the fsspec backend and of raw s3fs."""
    sizes = SIZES[ctx.mode]
    section = Section("s3", TITLE, sizes.describe())
    missing = [name for name in ("s3fs", "moto.server", "file_backed_fsspec") if optional_peer(name) is None]
    if missing:
        section.notes.append(
            f"skipped: {', '.join(missing)} not installed (pip install -e 'plugins/fsspec_remote[s3]' 'moto[server]')"
        )
        return section
    import numpy as np

    rng = np.random.default_rng(ctx.seed)
    arrays = [rng.random(sizes.item_bytes // 8) for _ in range(sizes.items)]
    total = sizes.items * sizes.item_bytes
    writes: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    reads: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    both: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    with moto_server() as endpoint:
        options = storage_options(endpoint)
        import s3fs

        s3fs.S3FileSystem(skip_instance_cache=True, **options).mkdir("bench")
        for repeat in range(ctx.repeats):
            for offset in range(len(SYSTEMS)):
                name = SYSTEMS[(repeat + offset) % len(SYSTEMS)]
                ctx.settle(drop=False)
                root = f"bench/{name.replace(' ', '-')}-{repeat}-{os.getpid()}"
                with ctx.profile("s3") if name == "file_backed" else contextlib.nullcontext():
                    if name == "file_backed":
                        writing, reading = _file_backed(arrays, f"s3://{root}", options)
                    else:
                        writing, reading = _raw(arrays, root, options)
                writes[name].append(total / writing / 1e6)
                reads[name].append(total / reading / 1e6)
                both[name].append(2 * total / (writing + reading) / 1e6)
    indicative = ctx.mode != "full"
    peer = "raw s3fs put/get"
    section.rows += [
        Row(
            "s3",
            "evict+reload MB/s",
            "MB/s",
            tuple(both["file_backed"]),
            peer,
            tuple(both["raw s3fs"]),
            Target("ratio", ">=", 0.7, ">= 0.7x raw s3fs"),
            indicative,
        ),
        Row(
            "s3", "evict (write) MB/s", "MB/s", tuple(writes["file_backed"]), "raw pipe_file", tuple(writes["raw s3fs"])
        ),
        Row("s3", "reload (read) MB/s", "MB/s", tuple(reads["file_backed"]), "raw cat_file", tuple(reads["raw s3fs"])),
    ]
    return section


TITLE = "s3: evict and reload through the fsspec backend on a loopback S3 server, against raw s3fs"
WORKLOADS = (Workload("s3", TITLE, run, opt_in=True),)
