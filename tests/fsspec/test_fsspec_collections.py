"""Saved collections on the fsspec backend: local files, memory:// and S3 on the loopback server."""

from __future__ import annotations

from typing import Any

import file_backed as fb
from file_backed.derived_keys import KIND_MANIFEST, kind_of
from tests.fsspec.conftest import Area


def test_a_saved_collection_opens_in_another_store(area: Area) -> None:
    location = area.location("saved")
    with area.open_store() as store:
        d: fb.FBDict[str, Any] = fb.FBDict(fb.FBPool(store, max_items=2))
        d.update(a=[1], b={"x": 2}, c="three")
        d.save(store.track_path(location), name="run")
    with area.open_store() as store:
        pool: fb.FBPool[Any] = fb.FBPool(store, max_items=2)
        opened = fb.FBDict.open(pool, store.track_path(location), name="run")
        assert pool.stats.loads == 0
        assert dict(opened) == {"a": [1], "b": {"x": 2}, "c": "three"}


def test_a_save_leaves_only_its_manifest_and_values(area: Area) -> None:
    location = area.location("saved")
    with area.open_store() as store:
        tracked = store.track_path(location)
        d: fb.FBDict[str, Any] = fb.FBDict(fb.FBPool(store, max_items=2))
        d.update(a=1, b=2, c=3)
        d.save(tracked, name="run")
        del d["a"]
        d["b"] = 20
        d.save(tracked, name="run")
        current = {d.handle(name).key for name in d}
    listed = area.keys(location)
    manifests = {key for key in listed if kind_of(key) == KIND_MANIFEST}
    assert len(manifests) == 1
    assert listed == current | manifests
