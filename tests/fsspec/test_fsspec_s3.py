"""The fsspec backend against a real S3-protocol server on loopback, checked by
listing the bucket; cross-filesystem copies; corruption; a server that dies."""

from __future__ import annotations

import gc
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import fsspec
import pytest
from file_backed_fsspec import CHUNK_SIZE, RemoteStoreError

import file_backed as fb

Listing = Callable[[str], set[uuid.UUID]]


def blob_path(root: str, key: uuid.UUID) -> str:
    return f"{root}/{key.hex[:2]}/{key.hex}"


def test_insert_evict_reload_persist_restart_register_delete(
    bucket: str, s3_options: dict[str, Any], listing: Listing
) -> None:
    temporary, persisted = f"{bucket}/temporary", f"{bucket}/persisted"
    values = [{"n": n, "payload": bytes([n]) * 50_000} for n in range(6)]
    with fb.open_store("fsspec", url=f"s3://{temporary}", storage_options=s3_options) as store:
        pool = fb.FBPool(store, max_items=2)
        handles = [pool.insert(value) for value in values]
        store.finished()
        evicted = {h.key for h in handles[:4]}
        assert listing(temporary) == evicted
        assert [h.resident for h in handles] == [False] * 4 + [True] * 2

        assert handles[0].get() == values[0]
        tracked = store.track_path(f"s3://{persisted}")
        keys = [h.persist(tracked) for h in handles[:3]]
        store.fsync(tracked)
        assert listing(persisted) == set(keys) == tracked.keys()

        del handles
        gc.collect()
        store.finished()
        assert listing(temporary) == set()
        assert listing(persisted) == set(keys)

    with fb.open_store("fsspec", url=f"s3://{temporary}", storage_options=s3_options) as store:
        tracked = store.track_path(f"s3://{persisted}")
        assert tracked.keys() == set(keys)
        pool = fb.FBPool(store, max_items=2)
        registered = [pool.register(tracked, key) for key in keys]
        assert listing(temporary) == set(keys)
        assert [h.get() for h in registered if h is not None] == values[:3]
        store.delete_persisted(tracked, keys[0])
        assert listing(persisted) == set(keys[1:])
        assert registered[0] is not None and registered[0].get() == values[0]
        del registered
        gc.collect()
        store.finished()
        assert listing(temporary) == set()
        assert listing(persisted) == set(keys[1:])


def test_temporary_area_on_a_bucket_root(bucket: str, s3_options: dict[str, Any], listing: Listing) -> None:
    with fb.open_store("fsspec", url=f"s3://{bucket}", storage_options=s3_options) as store:
        pool = fb.FBPool(store, max_items=1)
        first = pool.insert("first")
        pool.insert("second")
        store.finished()
        assert listing(bucket) == {first.key}
        assert first.get() == "first"


def test_changed_object_raises_corrupt_blob_error(
    bucket: str, s3_options: dict[str, Any], s3: Any, listing: Listing
) -> None:
    temporary = f"{bucket}/temporary"
    with fb.open_store("fsspec", url=f"s3://{temporary}", storage_options=s3_options) as store:
        pool = fb.FBPool(store, max_items=1)
        flipped, truncated = pool.insert(b"x" * 1000), pool.insert(b"y" * 1000)
        pool.insert(b"z")
        store.finished()
        assert listing(temporary) == {flipped.key, truncated.key}
        blob = bytearray(s3.cat_file(blob_path(temporary, flipped.key)))
        blob[-10] ^= 0x01
        s3.pipe_file(blob_path(temporary, flipped.key), bytes(blob))
        s3.pipe_file(blob_path(temporary, truncated.key), s3.cat_file(blob_path(temporary, truncated.key))[:-1])
        with pytest.raises(fb.CorruptBlobError, match="checksum"):
            flipped.get()
        with pytest.raises(fb.CorruptBlobError, match="truncated"):
            truncated.get()
        s3.rm_file(blob_path(temporary, flipped.key))
        with pytest.raises(fb.BlobNotFoundError, match=f"s3://{temporary}/"):
            flipped.get()


def test_missing_bucket_is_a_remote_store_error_naming_the_url(s3_options: dict[str, Any]) -> None:
    url = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/temporary"
    with pytest.raises(RemoteStoreError, match=f"{url}: bucket .* does not exist"):
        fb.open_store("fsspec", url=url, storage_options=s3_options)
    with fb.open_store("fsspec", storage_options=s3_options) as store, pytest.raises(RemoteStoreError, match=url):
        store.track_path(url)


def test_unreachable_endpoint_is_a_remote_store_error(bucket: str, s3_options: dict[str, Any]) -> None:
    options = {**s3_options, "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}  # nothing listens there
    url = f"s3://{bucket}/temporary"
    with pytest.raises(RemoteStoreError, match=f"{url}.*Could not connect"):
        fb.open_store("fsspec", url=url, storage_options=options)


def test_sanitize_lists_blobs_removes_partial_writes_and_leaves_the_rest(
    bucket: str, s3_options: dict[str, Any], s3: Any
) -> None:
    root = f"{bucket}/persisted"
    key, misplaced = uuid.uuid4(), uuid.uuid4()
    partial = f"{root}/{key.hex[:2]}/.{key.hex}.{'0' * 16}.tmp"
    foreign = [
        f"{root}/README",
        f"{root}/{key.hex[:2]}/notes.txt",
        f"{root}/{'01' if misplaced.hex.startswith('00') else '00'}/{misplaced.hex}",
        f"{root}/{key.hex[:2]}/{key.hex.upper()}",
        f"{root}/{key.hex[:2]}/deeper/{key.hex}",
    ]
    s3.pipe_file(blob_path(root, key), b"blob")
    s3.pipe_file(partial, b"partial")
    for path in foreign:
        s3.pipe_file(path, b"not ours")
    with fb.open_store("fsspec", storage_options=s3_options) as store:
        tracked = store.track_path(f"s3://{root}")
    assert tracked.keys() == {key}
    remaining = set(s3.find(root, detail=False))
    assert remaining == {blob_path(root, key), *foreign, f"{root}/.file_backed-persisted"}


def test_per_protocol_storage_options(tmp_path: Any, bucket: str, s3_options: dict[str, Any], listing: Listing) -> None:
    options = {"s3": s3_options, "file": {"auto_mkdir": True}}
    with fb.open_store("fsspec", url=f"file://{tmp_path}/temporary", storage_options=options) as store:
        pool = fb.FBPool(store, max_items=1)
        tracked = store.track_path(f"s3://{bucket}/persisted")
        key = pool.insert("value").persist(tracked)
        assert listing(f"{bucket}/persisted") == {key}


@pytest.mark.parametrize("size", [1000, CHUNK_SIZE + 12345], ids=["small", "streamed"])
def test_cross_filesystem_persist_and_register(
    tmp_path: Any, bucket: str, s3_options: dict[str, Any], s3: Any, listing: Listing, size: int
) -> None:
    """file:// temporary area -> memory:// and S3 locations -> a store on memory:// and back."""
    value = bytes(range(256)) * (size // 256)
    in_memory = f"memory://fb-{uuid.uuid4().hex[:12]}"
    with fb.open_store(
        "fsspec", codec="bytes", url=f"file://{tmp_path}/temporary", storage_options=s3_options
    ) as store:
        pool = fb.FBPool(store, max_items=1)
        memory_location = store.track_path(f"{in_memory}/persisted")
        s3_location = store.track_path(f"s3://{bucket}/persisted")
        handle = pool.insert(value)
        key = handle.persist(memory_location)
        handle.persist(s3_location)
        assert listing(f"{bucket}/persisted") == {key}
        assert s3.size(blob_path(f"{bucket}/persisted", key)) > len(value)

    with fb.open_store("fsspec", codec="bytes", url=f"{in_memory}/temporary", storage_options=s3_options) as store:
        pool = fb.FBPool(store, max_items=1)
        from_s3 = pool.register(store.track_path(f"s3://{bucket}/persisted"), key)
        assert from_s3 is not None and from_s3.get() == value
        back_home = store.track_path(f"file://{tmp_path}/persisted")
        from_s3.persist(back_home)
        assert (tmp_path / "persisted" / key.hex[:2] / key.hex).is_file()

    with fb.open_store("fsspec", codec="bytes", url=f"file://{tmp_path}/temporary") as store:
        pool = fb.FBPool(store, max_items=1)
        from_memory = pool.register(store.track_path(f"{in_memory}/persisted"), key)
        assert from_memory is not None and from_memory.get() == value
    memory = fsspec.filesystem("memory")
    assert not [path for path in memory.find(in_memory) if path.endswith(".tmp")]
    assert not [path for path in s3.find(bucket) if path.endswith(".tmp")]
    assert not list((tmp_path / "persisted").rglob("*.tmp"))
    memory.rm(in_memory, recursive=True)


def test_register_of_a_key_missing_behind_the_stores_back(bucket: str, s3_options: dict[str, Any], s3: Any) -> None:
    with fb.open_store("fsspec", url=f"s3://{bucket}/temporary", storage_options=s3_options) as store:
        pool = fb.FBPool(store, max_items=1)
        tracked = store.track_path(f"s3://{bucket}/persisted")
        handle = pool.insert("value")
        key = handle.persist(tracked)
        del handle
        gc.collect()
        store.finished()  # the temporary blob is deleted: register must copy
        s3.rm_file(blob_path(f"{bucket}/persisted", key))
        with pytest.raises(fb.BlobNotFoundError, match=f"s3://{bucket}/persisted/"):
            pool.register(tracked, key)


@pytest.mark.timeout(90)
def test_server_stopping_mid_run_keeps_every_value_and_fails_in_bounded_time(second_s3_server: Any) -> None:
    s3 = second_s3_server.filesystem()
    s3.mkdir("dying")
    url = "s3://dying/temporary"
    store = fb.open_store("fsspec", url=url, storage_options=second_s3_server.storage_options())
    pool = fb.FBPool(store, max_items=2)
    values = [f"value {n}" for n in range(8)]
    handles = [pool.insert(value) for value in values[:3]]
    store.finished()
    assert not handles[0].resident

    second_s3_server.stop()
    started = time.monotonic()
    handles += [pool.insert(value) for value in values[3:]]
    with pytest.raises(fb.BackgroundTaskError) as failed:
        store.finished()
    assert time.monotonic() - started < 60
    assert failed.value.exceptions and all(isinstance(e, RemoteStoreError) for e in failed.value.exceptions)
    assert all(f"{url}/" in str(error) for error in failed.value.exceptions)
    assert pool.stats.eviction_failures >= len(failed.value.exceptions)
    assert [h.resident for h in handles[1:]] == [True] * 7
    assert [h.get() for h in handles[1:]] == values[1:]

    started = time.monotonic()
    with pytest.raises(RemoteStoreError, match=f"{url}/"):
        handles[0].get()
    assert time.monotonic() - started < 30
    with pytest.raises(RemoteStoreError, match="s3://dying/persisted"):
        store.track_path("s3://dying/persisted")

    del handles
    gc.collect()
    with pytest.raises(fb.BackgroundTaskError):  # the deletes of the dropped handles' blobs
        store.close()
    assert store.closed


@pytest.mark.timeout(90)
def test_a_server_that_never_answers_fails_within_the_configured_timeouts(s3_options: dict[str, Any]) -> None:
    """A socket that accepts connections (into the kernel's backlog) but never
    answers: each request ends by its read timeout, retried a bounded number of
    times, and the failure is a `RemoteStoreError` naming the URL."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as silent:
        options = {
            **s3_options,
            "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{silent.getsockname()[1]}"},
            "config_kwargs": {**s3_options["config_kwargs"], "read_timeout": 1},
        }
        with fb.open_store("fsspec", storage_options=options) as store:
            started = time.monotonic()
            with pytest.raises(RemoteStoreError, match="s3://silent/persisted.*Timeout"):
                store.track_path("s3://silent/persisted")
            assert time.monotonic() - started < 30
