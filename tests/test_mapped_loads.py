"""Large blob files of fs_hardlink's temporary area load as private
(copy-on-write) mappings: no copy, values writable, files never written
through, and anything with a second link (persisted, registered) read instead."""

from __future__ import annotations

import gc
import mmap
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import file_backed as fb
import file_backed.pool
from file_backed.localfs import MAP_FROM, read_file

pytestmark = pytest.mark.skipif(os.name != "posix", reason="blob files are mapped on POSIX only")


def backing_object(value: Any) -> Any:
    """The object at the end of `value`'s chain of bases (arrays, memoryviews)."""
    while True:
        if isinstance(value, memoryview):
            value = value.obj
        elif isinstance(value, np.ndarray) and value.base is not None:
            value = value.base
        else:
            return value


@pytest.fixture
def store(tmp_path: Path) -> Iterator[fb.BackingStore]:
    with fb.open_store("fs_hardlink", path=tmp_path / "area") as store:
        yield store


def evicted(store: fb.BackingStore, value: np.ndarray) -> fb.Fb[np.ndarray]:
    """A handle to `value`, written and dropped from memory."""
    pool: fb.FBPool[np.ndarray] = fb.FBPool(store, max_items=1)
    handle = pool.insert(value)
    assert pool.evict_one() > 0
    return handle


def blob_file(store: fb.BackingStore, handle: fb.Fb[Any]) -> Path:
    key = handle.key.hex
    return Path(store.backend.root) / key[:2] / key  # type: ignore[attr-defined]


def open_file(path: Path, data: bytes) -> int:
    path.write_bytes(data)
    return os.open(path, os.O_RDONLY)


def test_read_file_maps_a_large_private_file(tmp_path: Path) -> None:
    fd = open_file(tmp_path / "blob", bytes(range(256)) * (MAP_FROM // 256))
    try:
        view = read_file(fd, private=True)
    finally:
        os.close(fd)
    assert isinstance(view.obj, mmap.mmap)
    assert bytes(view[:256]) == bytes(range(256))


def test_read_file_reads_a_file_below_the_mapping_size(tmp_path: Path) -> None:
    fd = open_file(tmp_path / "blob", b"x" * (MAP_FROM - 1))
    try:
        view = read_file(fd, private=True)
    finally:
        os.close(fd)
    assert not isinstance(backing_object(view), mmap.mmap)
    assert view.nbytes == MAP_FROM - 1


def test_read_file_reads_a_file_with_another_link(tmp_path: Path) -> None:
    fd = open_file(tmp_path / "blob", b"x" * MAP_FROM)
    os.link(tmp_path / "blob", tmp_path / "persisted")
    try:
        view = read_file(fd, private=True)
    finally:
        os.close(fd)
    assert not isinstance(backing_object(view), mmap.mmap)


def test_read_file_reads_unless_asked_to_map(tmp_path: Path) -> None:
    fd = open_file(tmp_path / "blob", b"x" * MAP_FROM)
    try:
        view = read_file(fd)
    finally:
        os.close(fd)
    assert not isinstance(backing_object(view), mmap.mmap)


def test_writing_to_a_mapped_buffer_leaves_the_file_unchanged(tmp_path: Path) -> None:
    data = b"y" * MAP_FROM
    fd = open_file(tmp_path / "blob", data)
    try:
        view = read_file(fd, private=True)
    finally:
        os.close(fd)
    view[:4] = b"zzzz"
    assert bytes(view[:5]) == b"zzzzy"
    assert (tmp_path / "blob").read_bytes() == data


def test_a_large_evicted_array_loads_mapped_aligned_and_writable(store: fb.BackingStore) -> None:
    handle = evicted(store, np.arange(MAP_FROM // 8, dtype=np.float64))
    value = handle.get()
    assert isinstance(backing_object(value), mmap.mmap)
    assert value.flags.writeable and value.ctypes.data % 64 == 0
    assert np.array_equal(value, np.arange(MAP_FROM // 8, dtype=np.float64))


def test_changing_a_loaded_array_never_writes_its_blob_file(store: fb.BackingStore) -> None:
    handle = evicted(store, np.zeros(MAP_FROM // 8))
    path = blob_file(store, handle)
    before = path.read_bytes()
    handle.get()[:] = 7.0  # in place, outside a write guard
    assert path.read_bytes() == before


def test_a_value_changed_under_a_write_guard_is_written_back_and_reloaded(store: fb.BackingStore) -> None:
    handle = evicted(store, np.zeros(MAP_FROM // 8))
    with handle.load_mut() as value:
        value[:] = 3.0
    assert handle.pool.evict_one() > 0
    reloaded = handle.get()
    assert reloaded.min() == reloaded.max() == 3.0


def test_a_mapped_value_outlives_its_deleted_blob_file(store: fb.BackingStore) -> None:
    handle = evicted(store, np.full(MAP_FROM // 8, 5.0))
    path = blob_file(store, handle)
    value = handle.get()
    del handle
    gc.collect()
    store.finished()
    assert not path.exists()
    assert value.min() == value.max() == 5.0


def test_a_persisted_blob_loads_by_reading(store: fb.BackingStore, tmp_path: Path) -> None:
    tracked = store.track_path(tmp_path / "kept")
    handle = evicted(store, np.full(MAP_FROM // 8, 2.0))
    handle.persist(tracked)
    value = handle.get()
    assert not isinstance(backing_object(value), mmap.mmap)
    assert value.min() == value.max() == 2.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="trimming is glibc's malloc_trim")
def test_dropping_mapped_values_does_not_trim(store: fb.BackingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[None] = []
    monkeypatch.setattr(file_backed.pool, "release_free_memory", lambda: trims.append(None))
    pool: fb.FBPool[np.ndarray] = fb.FBPool(store, max_items=1000, max_bytes=4 * MAP_FROM)
    handles = [pool.insert(np.full(MAP_FROM // 8, index)) for index in range(16)]
    store.finished()
    for handle in handles:  # the inserted values go: their memory was the allocator's
        handle.get()
    store.finished()
    trims.clear()
    for handle in handles:  # only mapped values go now
        handle.get()
    store.finished()
    assert trims == []
