"""Loaded arrays are 64-byte aligned, and a blob under another key's name never
decodes, on every bundled local backend (the fsspec backend: tests/fsspec)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import file_backed as fb
from file_backed.blob import decode_blob, encode_blob
from file_backed.buffers import copy_of
from file_backed.codecs.pickle_codec import PickleCodec


def address(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


def evicted(pool: fb.FBPool[Any], value: Any) -> fb.Fb[Any]:
    handle = pool.insert(value)
    handle.write_now()
    pool.evict_one()
    assert not handle.resident
    return handle


@pytest.mark.parametrize("backend", ["fs_hardlink", "memory"])
@pytest.mark.parametrize("size", [1, 100, 4096, 300_000])
def test_numpy_codec_loads_aligned_arrays(backend: str, size: int, tmp_path: Path) -> None:
    options = {"path": tmp_path / "area"} if backend == "fs_hardlink" else {}
    with fb.open_store(backend, codec="numpy", **options) as store:
        pool: fb.FBPool[np.ndarray] = fb.FBPool(store, max_items=4)
        value = np.arange(size, dtype=np.float64)
        loaded = evicted(pool, value).get()
        assert address(loaded) % 64 == 0 and loaded.flags.aligned
        np.testing.assert_array_equal(loaded, value)


@pytest.mark.parametrize("backend", ["fs_hardlink", "memory"])
def test_pickle_codec_loads_every_out_of_band_buffer_aligned(backend: str, tmp_path: Path) -> None:
    options = {"path": tmp_path / "area"} if backend == "fs_hardlink" else {}
    with fb.open_store(backend, **options) as store:
        pool: fb.FBPool[dict[str, Any]] = fb.FBPool(store, max_items=4)
        value = {"a": np.arange(3, dtype=np.int8), "b": np.ones((5, 7)), "c": np.arange(1001, dtype=np.int16)}
        loaded = evicted(pool, value).get()
        for name, array in loaded.items():
            assert address(array) % 64 == 0 and array.flags.aligned and array.flags.writeable, name
            np.testing.assert_array_equal(array, value[name])


@given(st.lists(st.integers(min_value=0, max_value=300), max_size=6))
def test_pickle_codec_aligns_arrays_of_any_size_in_an_aligned_buffer(sizes: list[int]) -> None:
    value = [np.arange(n, dtype=np.uint8) for n in sizes]
    buffers, _ = encode_blob(PickleCodec(), value)
    loaded = decode_blob(PickleCodec(), copy_of(b"".join(bytes(b) for b in buffers)), source="test")
    for original, array in zip(value, loaded, strict=True):
        assert address(array) % 64 == 0 or array.size == 0
        np.testing.assert_array_equal(array, original)


def test_a_blob_under_another_keys_name_is_corrupt_in_fs_hardlink(tmp_path: Path) -> None:
    with fb.open_store("fs_hardlink", path=tmp_path / "area") as store:
        pool: fb.FBPool[bytes] = fb.FBPool(store, max_items=4)
        tracked = store.track_path(tmp_path / "persisted")
        first, second = pool.insert(b"A" * 100), pool.insert(b"B" * 100)
        first_key, second_key = first.persist(tracked), second.persist(tracked)
    shutil.copyfile(blob_file(tmp_path / "persisted", second_key), blob_file(tmp_path / "persisted", first_key))
    with fb.open_store("fs_hardlink", path=tmp_path / "other") as store:
        handle = fb.FBPool(store, max_items=4).register(store.track_path(tmp_path / "persisted"), first_key)
        assert handle is not None
        with pytest.raises(fb.CorruptBlobError, match="another key"):
            handle.get()


def test_a_blob_under_another_keys_name_is_corrupt_in_memory() -> None:
    with fb.open_store("memory") as store:
        pool: fb.FBPool[bytes] = fb.FBPool(store, max_items=4)
        tracked = store.track_path("memory://swapped")
        first, second = pool.insert(b"A" * 100), pool.insert(b"B" * 100)
        first_key, second_key = first.persist(tracked), second.persist(tracked)
        blobs = tracked.path.blobs()
        blobs[first_key] = blobs[second_key]
    with fb.open_store("memory") as store:
        handle = fb.FBPool(store, max_items=4).register(store.track_path("memory://swapped"), first_key)
        assert handle is not None
        with pytest.raises(fb.CorruptBlobError, match="another key"):
            handle.get()


def blob_file(location: Path, key: Any) -> Path:
    return location / key.hex[:2] / key.hex
