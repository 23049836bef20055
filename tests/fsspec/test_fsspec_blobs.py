"""The fsspec backend on file://, memory:// and the loopback S3 server: arrays load
64-byte aligned, and a blob copied under another key's name is corrupt."""

from __future__ import annotations

from typing import Any

import fsspec
import numpy as np
import pytest

import file_backed as fb
from tests.fsspec.conftest import Area


def test_numpy_arrays_load_aligned(area: Area) -> None:
    with area.open_store() as store:
        pool: fb.FBPool[Any] = fb.FBPool(store, max_items=4)
        value = {"a": np.arange(7, dtype=np.int8), "b": np.ones((33, 3))}
        handle = pool.insert(value)
        handle.write_now()
        assert pool.evict_one() > 0
        loaded = handle.get()
        for name, array in loaded.items():
            assert array.__array_interface__["data"][0] % 64 == 0 and array.flags.aligned, name
            np.testing.assert_array_equal(array, value[name])


def test_a_blob_under_another_keys_name_is_corrupt(area: Area) -> None:
    location = area.location("persisted")
    with area.open_store() as store:
        pool: fb.FBPool[bytes] = fb.FBPool(store, max_items=4)
        tracked = store.track_path(location)
        first, second = pool.insert(b"A" * 100), pool.insert(b"B" * 100)
        first_key, second_key = first.persist(tracked), second.persist(tracked)
    fs, root = fsspec.url_to_fs(location, **area.storage_options)
    fs.pipe_file(
        f"{root}/{first_key.hex[:2]}/{first_key.hex}", fs.cat_file(f"{root}/{second_key.hex[:2]}/{second_key.hex}")
    )
    with area.open_store() as store:
        handle = fb.FBPool(store, max_items=4).register(store.track_path(location), first_key)
        assert handle is not None
        with pytest.raises(fb.CorruptBlobError, match="another key"):
            handle.get()
