"""Failures stay bounded and typed: a value the codec cannot encode is tried
once, background errors are capped and observable, write errors are
`FileBackedError`s that keep their builtin type."""

from __future__ import annotations

import errno
import gc
import logging
import shutil
import threading
import weakref
from typing import Any

import pytest

import file_backed as fb
from tests.recording import RecordingBackend


def test_a_value_the_codec_cannot_encode_is_tried_once_and_kept(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with fb.open_store("fs_hardlink", path=tmp_path / "area") as store:
        pool: fb.FBPool[Any] = fb.FBPool(store, max_items=10)
        unencodable = pool.insert(threading.Lock())
        with caplog.at_level(logging.ERROR, logger="file_backed"):
            handles = [pool.insert({"index": index}) for index in range(2000)]
            with pytest.raises(fb.BackgroundTaskError) as failed:
                store.finished()
        assert len(failed.value.exceptions) == 1
        assert isinstance(failed.value.exceptions[0], fb.EncodeError)
        assert pool.stats.eviction_failures == 1
        assert len([record for record in caplog.records if record.levelno >= logging.ERROR]) == 1
        assert unencodable.resident and isinstance(unencodable.get(), type(threading.Lock()))
        assert handles[0].get() == {"index": 0}


def test_an_unencodable_value_that_changes_is_written_again(tmp_path: Any) -> None:
    with fb.open_store("fs_hardlink", path=tmp_path / "area") as store:
        pool: fb.FBPool[Any] = fb.FBPool(store, max_items=2)
        handle = pool.insert([threading.Lock()])
        others = [pool.insert(index) for index in range(4)]
        with pytest.raises(fb.BackgroundTaskError):
            store.finished()
        with handle.load_mut() as value:
            value[0] = "now picklable"
        others += [pool.insert(index) for index in range(4)]
        store.finished()
        assert not handle.resident
        assert handle.get() == ["now picklable"]


def test_write_now_of_an_unencodable_value_raises_encode_error(store: fb.BackingStore) -> None:
    pool: fb.FBPool[Any] = fb.FBPool(store, max_items=2)
    handle = pool.insert(lambda: None)
    with pytest.raises(fb.EncodeError) as raised:
        handle.write_now()
    assert isinstance(raised.value, TypeError) and raised.value.__cause__ is not None
    assert handle.resident


def test_an_os_error_of_a_write_is_a_store_write_error_with_its_errno(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool: fb.FBPool[bytes] = fb.FBPool(store, max_items=2)
    handle = pool.insert(b"value")
    backend.fail_stores = OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(fb.StoreWriteError) as raised:
        handle.write_now()
    assert isinstance(raised.value, OSError) and raised.value.errno == errno.ENOSPC
    assert handle.get() == b"value"


def test_background_errors_are_capped_and_counted(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool: fb.FBPool[int] = fb.FBPool(store, max_items=1)
    backend.fail_stores = OSError(errno.EIO, "Input/output error")
    handles = [pool.insert(index) for index in range(151)]
    with pytest.raises(fb.BackgroundTaskError, match=r"^(\d+) background task\(s\) failed \(the last 100") as failed:
        store.finished()
    assert len(failed.value.exceptions) == 100
    assert int(str(failed.value).split()[0]) >= 150
    assert all(handle.resident for handle in handles)


def test_on_error_sees_each_background_failure_as_it_happens(backend: RecordingBackend) -> None:
    seen: list[BaseException] = []
    with fb.BackingStore(backend, workers=2, on_error=seen.append) as store:
        pool: fb.FBPool[int] = fb.FBPool(store, max_items=1)
        backend.fail_stores = OSError(errno.EIO, "Input/output error")
        handles = [pool.insert(index) for index in range(3)]
        with pytest.raises(fb.BackgroundTaskError):
            store.finished()
        backend.fail_stores = None
        del handles
    assert len(seen) >= 2 and all(isinstance(error, fb.StoreWriteError) for error in seen)


def test_a_temporary_area_removed_under_a_running_store_gives_typed_errors(tmp_path: Any) -> None:
    with fb.open_store("fs_hardlink", path=tmp_path / "area") as store:
        pool = fb.FBPool(store, max_items=1)
        evicted = [pool.insert(bytes(100)) for _ in range(3)]
        store.finished()
        shutil.rmtree(tmp_path / "area")
        later = [pool.insert(bytes(100)) for _ in range(3)]
        with pytest.raises(fb.BackgroundTaskError) as failed:
            store.finished()
        assert all(isinstance(error, fb.StoreWriteError) for error in failed.value.exceptions)
        assert "temporary area was removed" in str(failed.value.exceptions[0])
        with pytest.raises(fb.BlobNotFoundError):
            evicted[0].get()
        assert later[-1].get() == bytes(100)


def test_failed_writes_on_the_inserting_thread_keep_no_handle_alive(
    store: fb.BackingStore, backend: RecordingBackend
) -> None:
    pool: fb.FBPool[bytes] = fb.FBPool(store, max_items=2)
    handles = [pool.insert(bytes(100)) for _ in range(4)]  # small blobs: later evictions are written inline
    store.finished()
    backend.fail_stores = OSError(errno.EIO, "Input/output error")
    handles += [pool.insert(bytes(100)) for _ in range(4)]
    with pytest.raises(fb.BackgroundTaskError) as failed:
        store.finished()
    backend.fail_stores = None
    kept_errors = failed.value.exceptions  # kept, as a caller keeps what finished raised
    alive = [weakref.ref(handle) for handle in handles]
    del handles, failed
    gc.collect()
    assert len(kept_errors) >= 1
    assert [ref for ref in alive if ref() is not None] == [], "a kept error pinned handles (and their blobs)"
