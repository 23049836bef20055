"""A full disk (a real 2 MiB tmpfs) loses nothing: failed writes keep items in
memory, leave no partial file, and eviction works again once space is freed."""

from __future__ import annotations

import errno
import gc
import uuid
from pathlib import Path

import pytest

import file_backed as fb
from file_backed.blob import decode_blob
from file_backed.codecs.bytes_codec import BytesCodec
from file_backed.segments import SEGMENTS_DIRECTORY

from .conftest import Mount, stray_files

VALUE_BYTES = 200 * 1024
pytestmark = pytest.mark.timeout(60)


def value(index: int) -> bytes:
    """A distinct, checkable value of `VALUE_BYTES` bytes."""
    return index.to_bytes(4, "little") * (VALUE_BYTES // 4)


def only_whole_blobs(directory: Path, store: fb.BackingStore | None = None) -> list[Path]:
    """Every file under `directory` is a whole blob under a final name, and the
    segment files of `store`'s temporary area (at `directory`) hold exactly the
    bytes of the blobs written to them; returns the blob files."""
    files = [path for path in stray_files(directory) if path.parent.name != SEGMENTS_DIRECTORY]
    if store is not None:
        segment_files = list((directory / SEGMENTS_DIRECTORY).iterdir())
        segments = store.backend.segments  # type: ignore[attr-defined]
        assert sum(path.stat().st_size for path in segment_files) == segments.file_bytes, "a failed write left bytes"
    codec = BytesCodec()
    for path in files:
        assert not path.name.endswith(".tmp"), f"a failed write left {path}"
        decode_blob(codec, bytearray(path.read_bytes()), source=str(path), key=uuid.UUID(hex=path.name))
    return files


def take_background_errors(store: fb.BackingStore) -> list[Exception]:
    """Wait for background work; the errors it raised (each must be ENOSPC)."""
    try:
        store.finished(timeout=30)
    except fb.BackgroundTaskError as group:
        errors = list(group.exceptions)
        for error in errors:
            assert isinstance(error, OSError) and error.errno == errno.ENOSPC, repr(error)
        return errors
    return []


def test_full_temporary_area_keeps_items_in_memory(mount_tmpfs: Mount) -> None:
    area = mount_tmpfs("area", "2m")
    with fb.open_store("fs_hardlink", path=area, codec="bytes", workers=2) as store:
        pool: fb.FBPool[bytearray] = fb.FBPool(store, max_items=4)
        handles = [pool.insert(bytearray(value(i))) for i in range(40)]  # 8 MiB into 2 MiB
        failures = take_background_errors(store)
        assert failures, "the 2 MiB area never filled up"
        stats = pool.stats
        assert stats.eviction_failures >= len(failures) > 0
        assert stats.items > pool.max_items, "items whose write failed must stay in memory"
        only_whole_blobs(area, store)

        for index, handle in enumerate(handles):
            assert handle.get() == value(index), f"value {index} changed"
        take_background_errors(store)

        with pytest.raises(OSError) as full:
            for handle in handles:  # some are in memory only; writing them now fails loudly
                handle.write_now()
        assert full.value.errno == errno.ENOSPC
        only_whole_blobs(area, store)
        for index, handle in enumerate(handles):
            assert handle.get() == value(index), f"value {index} changed after a failed write_now"

        # The failed write_now's traceback holds its handle (and, once a later
        # eviction wrote it, a blob): drop it along with the handles.
        del handles, handle, full
        gc.collect()
        take_background_errors(store)
        assert stray_files(area) == [], "dropped handles left blobs behind"

        failures_before = pool.stats.eviction_failures
        stores_before = pool.stats.stores
        kept: list[tuple[int, fb.Fb[bytearray]]] = []
        for index in range(100, 130):  # 6 MiB more flows through; at most 8 handles live
            kept.append((index, pool.insert(bytearray(value(index)))))
            del kept[:-8]
        assert take_background_errors(store) == []
        assert pool.stats.eviction_failures == failures_before, "eviction still fails after space was freed"
        assert pool.stats.stores > stores_before
        for index, handle in kept:
            assert handle.get() == value(index)


def test_full_persisted_location_loses_nothing(tmp_path: Path, mount_tmpfs: Mount) -> None:
    """The location is another filesystem: persist copies (EXDEV), counted; a copy
    that does not fit raises ENOSPC, leaves no partial file, and the item stays
    usable."""
    location = mount_tmpfs("location", "1m")
    with fb.open_store("fs_hardlink", path=tmp_path / "area", codec="bytes") as store:
        pool: fb.FBPool[bytearray] = fb.FBPool(store, max_items=2)
        tracked = store.track_path(location)
        handles = [pool.insert(bytearray(value(i))) for i in range(8)]  # 1.6 MiB into 1 MiB
        persisted: dict[uuid.UUID, int] = {}
        with pytest.raises(OSError) as full:
            for index, handle in enumerate(handles):
                persisted[handle.persist(tracked)] = index
        assert full.value.errno == errno.ENOSPC
        assert store.backend.copies == len(persisted) > 0  # type: ignore[attr-defined]
        store.fsync(tracked)
        assert len(only_whole_blobs(location)) == len(persisted) == len(tracked)
        for index, handle in enumerate(handles):
            assert handle.get() == value(index)
            assert (handle.key in tracked) == (index in persisted.values())

    with fb.open_store("fs_hardlink", path=tmp_path / "area2", codec="bytes") as store:
        pool = fb.FBPool(store, max_items=2)
        tracked = store.track_path(location)
        assert tracked.keys() == persisted.keys()
        for key, index in persisted.items():
            registered = pool.register(tracked, key)
            assert registered is not None and registered.get() == value(index)
        assert store.backend.copies == len(persisted), "register across filesystems copies too"  # type: ignore[attr-defined]
