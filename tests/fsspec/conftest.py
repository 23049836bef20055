"""Fixtures for the fsspec backend: a real S3-protocol server on loopback.

The session starts moto's `ThreadedMotoServer` on 127.0.0.1 (a free port chosen
by the kernel) and the tests talk to it through s3fs over HTTP, exactly as they
would to S3. Each test gets its own bucket.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import fsspec
import pytest

import file_backed as fb
from file_backed.ownership import MARKERS

s3fs = pytest.importorskip("s3fs", reason="the fsspec S3 tests need s3fs (pip install 'file-backed-fsspec[s3]')")
moto_server = pytest.importorskip("moto.server", reason="the fsspec S3 tests need moto[server]")


@attrs.define
class S3Server:
    """A running loopback S3 server and how to reach it."""

    server: Any = attrs.field(repr=False)
    endpoint: str
    stopped: bool = False

    def stop(self) -> None:
        """Stop serving and close the listening socket (a client's next request
        fails to connect); idempotent."""
        if not self.stopped:
            self.stopped = True
            self.server.stop()

    def storage_options(self) -> dict[str, Any]:
        """s3fs options for this server, with failures bounded to a few seconds:
        one botocore attempt, 1 s to connect, 2 s to read."""
        return {
            "anon": False,
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": self.endpoint},
            "config_kwargs": {
                "connect_timeout": 1,
                "read_timeout": 2,
                "retries": {"max_attempts": 1, "mode": "standard"},
            },
        }

    def filesystem(self) -> Any:
        """A separate s3fs instance (no fsspec cache) for checking what is in the bucket."""
        return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False, **self.storage_options())


def start_s3_server() -> S3Server:
    """Start a moto server on 127.0.0.1 and a kernel-chosen free port."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return S3Server(server, f"http://{host}:{port}")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The session's loopback S3 server, stopped at the end."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = start_s3_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3(s3_server: S3Server) -> Any:
    """An s3fs filesystem on the session's server, for inspecting buckets."""
    return s3_server.filesystem()


@pytest.fixture
def bucket(s3: Any) -> str:
    """A new, empty bucket for this test."""
    name = f"fb-{uuid.uuid4().hex[:16]}"
    s3.mkdir(name)
    return name


@pytest.fixture
def s3_options(s3_server: S3Server) -> dict[str, Any]:
    return s3_server.storage_options()


def blob_keys(fs: Any, root: str) -> set[uuid.UUID]:
    """The keys of the blobs under `root` (``<root>/<hex[:2]>/<hex>``), by listing it
    (the location's ownership markers aside)."""
    keys = set()
    for path in fs.find(root, withdirs=False, detail=False):
        if path.rsplit("/", 1)[-1] in MARKERS:
            continue
        shard, name = path[len(root) + 1 :].split("/")
        assert name.startswith(shard) and len(name) == 32, f"unexpected object {path}"
        keys.add(uuid.UUID(hex=name))
    return keys


@pytest.fixture
def listing(s3: Any) -> Callable[[str], set[uuid.UUID]]:
    """``listing("bucket/prefix")``: the keys of the blobs stored there, by listing the bucket."""
    return lambda root: blob_keys(s3, root)


@pytest.fixture
def second_s3_server() -> Iterator[S3Server]:
    """A loopback S3 server of this test alone, which the test may stop; stopped at
    teardown if the test did not."""
    server = start_s3_server()
    yield server
    server.stop()


@attrs.frozen
class Area:
    """Where a test's store keeps its blobs: a temporary-area URL, storage options,
    and fresh URLs for persisted locations on the same filesystem."""

    name: str
    url: str
    storage_options: dict[str, Any]
    base: str

    def location(self, name: str) -> str:
        """A URL for a persisted location of this test, on the temporary area's filesystem."""
        return f"{self.base}/{name}"

    def keys(self, url: str) -> set[uuid.UUID]:
        """The keys of the blobs at `url`, by listing it with fsspec (no listing cache)."""
        fs, root = fsspec.url_to_fs(url, **self.storage_options)
        fs.invalidate_cache()
        return blob_keys(fs, root.rstrip("/"))

    def open_store(self, **kwargs: Any) -> Any:
        """``fb.open_store("fsspec", ...)`` on this area."""
        return fb.open_store("fsspec", url=self.url, storage_options=self.storage_options, **kwargs)


@pytest.fixture(params=["file", "memory", "s3"])
def area(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Area]:
    """The temporary area on the local disk (a ``file://`` URL), on ``memory://``
    (removed afterwards) and on the loopback S3 server, each with a fresh root."""
    if request.param == "file":
        base = f"file://{tmp_path}"
        yield Area("file", f"{base}/temporary", {}, base)
    elif request.param == "memory":
        base = f"memory://fb-{uuid.uuid4().hex[:12]}"
        yield Area("memory", f"{base}/temporary", {}, base)
        memory = fsspec.filesystem("memory")
        if memory.exists(base):
            memory.rm(base, recursive=True)
    else:
        bucket = request.getfixturevalue("bucket")
        server = request.getfixturevalue("s3_server")
        yield Area("s3", f"s3://{bucket}/temporary", server.storage_options(), f"s3://{bucket}")
