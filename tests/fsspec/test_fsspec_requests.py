"""The requests the fsspec backend sends to S3 for a store and a load, counted by
botocore as they leave the client (on the loopback S3 server), and the
seekable reader that serves a PUT's body from the blob's buffers."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from file_backed_fsspec_s3 import BuffersReader

import file_backed as fb

np = pytest.importorskip("numpy")


class RequestLog:
    """The names of the S3 operations a client sends, in order (botocore's
    ``before-call`` event, one per request attempt of an operation)."""

    def __init__(self) -> None:
        self.operations: list[str] = []

    def __call__(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)


@pytest.fixture
def spill(bucket: str, s3_options: dict[str, Any]) -> Iterator[tuple[fb.FBPool[Any], RequestLog]]:
    """A pool over an S3 temporary area, and the log of the requests its store sends."""
    url = f"s3://{bucket}/temporary"
    with fb.open_store("fsspec", url=url, storage_options=s3_options, codec="numpy") as store:
        fs = store.backend.root.fs
        log = RequestLog()
        fs.s3.meta.events.register("before-call.s3", log)
        yield fb.FBPool(store, max_items=10), log
        fs.s3.meta.events.unregister("before-call.s3", log)


@pytest.mark.timeout(60)
def test_evicting_sends_one_put(spill: tuple[fb.FBPool[Any], RequestLog]) -> None:
    pool, log = spill
    handle = pool.insert(np.arange(300_000, dtype=np.int64))

    assert pool.evict_one() > 0

    assert not handle.resident
    assert log.operations == ["PutObject"]


@pytest.mark.timeout(60)
def test_a_load_sends_one_get_and_no_head(spill: tuple[fb.FBPool[Any], RequestLog]) -> None:
    pool, log = spill
    value = np.arange(300_000, dtype=np.int64)
    handle = pool.insert(value)
    pool.evict_one()
    log.operations.clear()

    loaded = handle.get()

    np.testing.assert_array_equal(loaded, value)
    assert log.operations == ["GetObject"]


@pytest.mark.timeout(60)
def test_a_loaded_array_is_aligned_and_writable(spill: tuple[fb.FBPool[Any], RequestLog]) -> None:
    pool, _ = spill
    handle = pool.insert(np.arange(300_000, dtype=np.float64))
    pool.evict_one()

    loaded = handle.get()

    assert loaded.flags.aligned and loaded.flags.writeable


def test_buffers_reader_reads_the_buffers_in_order_across_their_boundaries() -> None:
    parts = [b"header", memoryview(bytearray(b"0123456789")), b"", np.arange(4, dtype=np.uint8)]
    reader = BuffersReader(parts)
    pieces = []
    while piece := reader.read(3):
        pieces.append(piece)

    assert b"".join(pieces) == b"header0123456789" + bytes(range(4))
    assert len(reader) == reader.tell() == 20


def test_buffers_reader_reads_again_after_a_seek() -> None:
    reader = BuffersReader([b"abc", b"defg"])
    assert reader.read() == b"abcdefg"

    assert reader.seek(2) == 2
    assert reader.read(3) == b"cde"
    assert reader.seek(-1, io.SEEK_END) == 6
    assert reader.read() == b"g"
