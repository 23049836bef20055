"""The bundled local backends through the public API: memory and fs_hardlink."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import file_backed as fb


def test_values_survive_eviction_and_reload(real_store: fb.BackingStore) -> None:
    pool = fb.FBPool(real_store, max_items=4)
    values = [{"index": i, "payload": bytes(range(256)) * i} for i in range(20)]
    handles = [pool.insert(value) for value in values]
    real_store.finished()
    assert [handle.get() for handle in handles] == values


def test_stored_value_is_a_copy(real_store: fb.BackingStore) -> None:
    pool = fb.FBPool(real_store, max_items=1)
    value = [1, 2]
    handle = pool.insert(value)
    handle.write_now()
    value.append(3)  # the caller mutates its object after the write
    with handle.load_mut():  # forces the key change path; value in memory is the caller's
        pass
    pool.insert("evict")
    real_store.finished()
    assert handle.get() == [1, 2, 3]


def test_persist_register_roundtrip(real_store: fb.BackingStore, tmp_path: Path) -> None:
    pool = fb.FBPool(real_store, max_items=2)
    location = str(tmp_path / "persisted") if "Hardlink" in type(real_store.backend).__name__ else f"loc-{uuid.uuid4()}"
    tracked = real_store.track_path(location)
    key = pool.insert({"kept": True}).persist(tracked)
    real_store.fsync(tracked)
    gc.collect()
    real_store.finished()
    again = real_store.track_path(location)
    assert key in again
    handle = pool.register(again, key)
    assert handle is not None and handle.get() == {"kept": True}
    real_store.delete_persisted(again, key)
    assert key not in again


def test_dropping_every_handle_empties_the_temporary_area(tmp_path: Path) -> None:
    temporary = tmp_path / "temporary"
    with fb.open_store("fs_hardlink", path=temporary) as store:
        pool = fb.FBPool(store, max_items=3)
        handles = [pool.insert(os.urandom(1000)) for _ in range(30)]
        for handle in handles[:5]:
            handle.write_now()
        store.finished()
        assert any(temporary.rglob("*"))
        del handles, handle
        gc.collect()
        store.finished()
        assert [p for p in temporary.rglob("*") if _is_blob_file(p)] == []


def test_fs_hardlink_persist_is_a_hard_link(tmp_path: Path) -> None:
    with fb.open_store("fs_hardlink", path=tmp_path / "temporary") as store:
        pool = fb.FBPool(store, max_items=2)
        handle = pool.insert(b"linked")
        tracked = store.track_path(tmp_path / "persisted")
        key = handle.persist(tracked)
        temporary_file = tmp_path / "temporary" / key.hex[:2] / key.hex
        persisted_file = tmp_path / "persisted" / key.hex[:2] / key.hex
        assert os.stat(temporary_file).st_ino == os.stat(persisted_file).st_ino
        assert os.stat(persisted_file).st_nlink == 2


def test_fs_hardlink_default_temporary_area_is_removed_on_close() -> None:
    store = fb.open_store("fs_hardlink")
    root = store.backend.root  # type: ignore[attr-defined]
    fb.FBPool(store, max_items=1).insert("x").write_now()
    assert root.exists()
    store.close()
    assert not root.exists()


def test_fs_hardlink_persisted_data_survives_a_new_process(tmp_path: Path) -> None:
    persisted = tmp_path / "persisted"
    writer = textwrap.dedent(
        f"""
        import file_backed as fb
        with fb.open_store("fs_hardlink") as store:
            tracked = store.track_path({str(persisted)!r})
            handle = fb.FBPool(store, max_items=1).insert({{"survives": list(range(5))}})
            print(handle.persist(tracked))
            store.fsync(tracked)
        """
    )
    output = subprocess.run([sys.executable, "-c", writer], check=True, capture_output=True, text=True, timeout=60)
    key = uuid.UUID(output.stdout.strip())
    with fb.open_store("fs_hardlink", path=tmp_path / "temporary") as store:
        tracked = store.track_path(persisted)
        handle = fb.FBPool(store, max_items=1).register(tracked, key)
        assert handle is not None and handle.get() == {"survives": [0, 1, 2, 3, 4]}


def test_fs_hardlink_sanitize_removes_only_own_partial_files(tmp_path: Path) -> None:
    location = tmp_path / "persisted"
    key = uuid.uuid4()
    with fb.open_store("fs_hardlink", path=tmp_path / "temporary") as store:
        store.track_path(location)
        shard = location / key.hex[:2]
        partial = shard / f".{key.hex}.0123456789abcdef.tmp"
        partial.write_bytes(b"half a blob")
        foreign = shard / "notes.txt"
        foreign.write_text("mine")
        (location / "README").write_text("mine too")
        tracked = store.track_path(location)
    assert not partial.exists() and foreign.exists() and (location / "README").exists()
    assert len(tracked) == 0


def test_memory_locations_are_shared_between_stores_of_one_process() -> None:
    location = f"shared-{uuid.uuid4()}"
    with fb.open_store("memory") as first, fb.open_store("memory") as second:
        key = fb.FBPool(first, max_items=1).insert("shared").persist(first.track_path(location))
        handle = fb.FBPool(second, max_items=1).register(second.track_path(location), key)
        assert handle is not None and handle.get() == "shared"


@pytest.mark.parametrize("codec", ["pickle", "json", "bytes"])
def test_each_codec_roundtrips_through_fs_hardlink(codec: str, tmp_path: Path) -> None:
    value = b"raw bytes" if codec == "bytes" else {"list": [1, 2.5, "three"], "none": None}
    with fb.open_store("fs_hardlink", codec=codec, path=tmp_path) as store:
        pool = fb.FBPool(store, max_items=1)
        handle = pool.insert(value)
        pool.insert(b"other" if codec == "bytes" else "other")
        store.finished()
        assert not handle.resident
        assert handle.get() == value


def test_numpy_arrays_roundtrip_writable(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    for codec in ("numpy", "pickle"):
        with fb.open_store("fs_hardlink", codec=codec, path=tmp_path / codec) as store:
            pool = fb.FBPool(store, max_items=1)
            handle = pool.insert(array)
            pool.insert(np.zeros(1))
            store.finished()
            with handle.load_mut() as loaded:
                assert loaded.flags.writeable
                np.testing.assert_array_equal(loaded, array)
                loaded[0, 0] = 42
            assert handle.get()[0, 0] == 42


def test_corrupt_blob_raises_corrupt_blob_error(tmp_path: Path) -> None:
    with fb.open_store("fs_hardlink", path=tmp_path) as store:
        pool = fb.FBPool(store, max_items=1)
        handle = pool.insert("original")
        handle.write_now()
        pool.insert("evict")
        store.finished()
        blob = tmp_path / handle.key.hex[:2] / handle.key.hex
        data = bytearray(blob.read_bytes())
        data[-1] ^= 0xFF
        blob.write_bytes(bytes(data))
        with pytest.raises(fb.CorruptBlobError, match=handle.key.hex[:8]):
            handle.get()
        assert not handle.resident


def test_store_dropped_without_close_removes_its_temporary_area() -> None:
    store = fb.open_store("fs_hardlink")
    root = store.backend.root  # type: ignore[attr-defined]
    fb.FBPool(store, max_items=1).insert("x").write_now()
    store.finished()  # queued work holds the store until it has run
    del store
    gc.collect()
    assert not root.exists()


def test_close_deletes_the_temporary_blobs_of_live_handles(real_store: fb.BackingStore) -> None:
    pool = fb.FBPool(real_store, max_items=1)
    handles = [pool.insert(i) for i in range(5)]
    real_store.finished()
    real_store.close()
    backend = real_store.backend
    if hasattr(backend, "root"):
        assert [p for p in backend.root.rglob("*") if _is_blob_file(p)] == []
    else:
        assert backend._blobs == {}  # type: ignore[attr-defined]
    assert handles[-1].get() == 4  # what is in memory stays usable


def test_a_temporary_area_serves_one_store_at_a_time(tmp_path: Path) -> None:
    with fb.open_store("fs_hardlink", path=tmp_path), pytest.raises(fb.ConfigError, match="another open store"):
        fb.open_store("fs_hardlink", path=tmp_path)
    fb.open_store("fs_hardlink", path=tmp_path).close()  # free again once closed


def test_blobs_left_by_a_crashed_store_are_collected(tmp_path: Path) -> None:
    crashing = textwrap.dedent(
        f"""
        import os, file_backed as fb
        store = fb.open_store("fs_hardlink", path={str(tmp_path)!r})
        pool = fb.FBPool(store, max_items=1)
        handles = [pool.insert(i) for i in range(5)]
        handles[-1].write_now()
        store.finished()
        os._exit(0)  # no close: as if killed
        """
    )
    subprocess.run([sys.executable, "-c", crashing], check=True, timeout=60)
    assert len([p for p in tmp_path.rglob("*") if _is_blob_file(p)]) == 1  # written by write_now
    assert len(list((tmp_path / "segments").iterdir())) == 1  # the four evicted values, packed
    with fb.open_store("fs_hardlink", path=tmp_path):
        assert [p for p in tmp_path.rglob("*") if _is_blob_file(p)] == []
        assert list((tmp_path / "segments").iterdir()) == []


def test_a_persisted_location_is_refused_as_a_temporary_area(tmp_path: Path) -> None:
    with fb.open_store("fs_hardlink") as store:
        fb.FBPool(store, max_items=1).insert("persisted").persist(store.track_path(tmp_path))
    for _ in range(2):
        with pytest.raises(fb.ConfigError, match="is a persisted location"):
            fb.open_store("fs_hardlink", path=tmp_path)
    assert len([p for p in tmp_path.rglob("*") if _is_blob_file(p)]) == 1


def test_a_directory_holding_blobs_no_store_wrote_there_is_refused_as_a_temporary_area(tmp_path: Path) -> None:
    with fb.open_store("fs_hardlink") as store:
        fb.FBPool(store, max_items=1).insert("persisted").persist(store.track_path(tmp_path / "saved"))
    copied = tmp_path / "copied"
    shutil.copytree(tmp_path / "saved", copied)
    (copied / ".file_backed-persisted").unlink()  # as a copy made without it would be
    for _ in range(2):
        with pytest.raises(fb.ConfigError, match="holds 1 blob"):
            fb.open_store("fs_hardlink", path=copied)
    assert len([p for p in copied.rglob("*") if _is_blob_file(p)]) == 1
    assert not (copied / ".file_backed-temporary").exists()


def test_an_empty_location_tracked_by_one_store_is_refused_as_another_ones_temporary_area(tmp_path: Path) -> None:
    with fb.open_store("fs_hardlink") as store:
        store.track_path(tmp_path)
        with pytest.raises(fb.ConfigError, match="is a persisted location"):
            fb.open_store("fs_hardlink", path=tmp_path)


def test_an_empty_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(fb.ConfigError, match="option path: empty"):
        fb.open_store("fs_hardlink", path="")
    with fb.open_store("fs_hardlink") as store, pytest.raises(fb.ConfigError, match="location is empty"):
        store.track_path("")
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_area_cannot_be_a_persisted_location(tmp_path: Path) -> None:
    with fb.open_store("fs_hardlink", path=tmp_path) as store, pytest.raises(fb.ConfigError, match="temporary area"):
        store.track_path(tmp_path)


def _is_blob_file(path: Path) -> bool:
    return path.is_file() and len(path.name) == 32
