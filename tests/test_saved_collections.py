"""Saved collections: ``FBDict.save`` and ``FBDict.open`` on the local backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import file_backed as fb
from file_backed.cli import main
from file_backed.derived_keys import KIND_MANIFEST, kind_of
from file_backed.saved import saved_collections


@pytest.fixture(params=["memory", "fs_hardlink"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any], object]]:
    """(backend, store options, a persisted location) for each local backend."""
    if request.param == "fs_hardlink":
        yield "fs_hardlink", {"path": tmp_path / "temporary"}, tmp_path / "persisted"
    else:
        yield "memory", {}, f"collections-{uuid.uuid4().hex}"


@pytest.fixture
def store(place: tuple[str, dict[str, Any], object]) -> Iterator[fb.BackingStore]:
    backend, options, _location = place
    with fb.open_store(backend, **options) as store:
        yield store


@pytest.fixture
def tracked(store: fb.BackingStore, place: tuple[str, dict[str, Any], object]) -> fb.TrackedPath:
    return store.track_path(place[2])


@pytest.fixture
def pool(store: fb.BackingStore) -> fb.FBPool[Any]:
    return fb.FBPool(store, max_items=4)


def reopened(place: tuple[str, dict[str, Any], object], tmp_path: Path) -> tuple[fb.BackingStore, fb.TrackedPath]:
    """A second store on the same backend (as a later process would open) and the location tracked by it."""
    backend, options, location = place
    options = {"path": tmp_path / "second-temporary"} if backend == "fs_hardlink" else options
    store = fb.open_store(backend, **options)
    return store, store.track_path(location)


def filled(pool: fb.FBPool[Any], **values: Any) -> fb.FBDict[str, Any]:
    d: fb.FBDict[str, Any] = fb.FBDict(pool)
    d.update(values)
    return d


def test_a_saved_collection_opens_in_another_store_with_the_same_contents(
    pool: fb.FBPool[Any], tracked: fb.TrackedPath, place: Any, tmp_path: Path
) -> None:
    filled(pool, a=[1], b={"x": 2}, c="three").save(tracked, name="run-7")
    second, location = reopened(place, tmp_path)
    with second:
        d = fb.FBDict.open(fb.FBPool(second, max_items=4), location, name="run-7")
        assert dict(d) == {"a": [1], "b": {"x": 2}, "c": "three"}


def test_opening_loads_nothing(pool: fb.FBPool[Any], tracked: fb.TrackedPath, place: Any, tmp_path: Path) -> None:
    filled(pool, a=[1], b=[2], c=[3]).save(tracked, name="run")
    second, location = reopened(place, tmp_path)
    with second:
        other_pool: fb.FBPool[Any] = fb.FBPool(second, max_items=4)
        d = fb.FBDict.open(other_pool, location, name="run")
        assert len(d) == 3 and sorted(d) == ["a", "b", "c"]
        assert other_pool.stats.loads == 0 and len(other_pool) == 0
        assert d["b"] == [2]
        assert other_pool.stats.loads == 1


def test_opening_an_unknown_name_raises_collection_not_found(pool: fb.FBPool[Any], tracked: fb.TrackedPath) -> None:
    filled(pool, a=1).save(tracked, name="run")
    with pytest.raises(fb.CollectionNotFoundError, match="'other'") as raised:
        fb.FBDict.open(pool, tracked, name="other")
    assert isinstance(raised.value, KeyError)


def test_saving_again_replaces_the_contents(pool: fb.FBPool[Any], tracked: fb.TrackedPath) -> None:
    d = filled(pool, a=1, b=2)
    d.save(tracked, name="run")
    del d["a"]
    d["b"] = 20
    d["c"] = 3
    d.save(tracked, name="run")
    assert dict(fb.FBDict.open(pool, tracked, name="run")) == {"b": 20, "c": 3}


def test_a_save_deletes_the_values_it_drops_from_the_location(
    pool: fb.FBPool[Any], tracked: fb.TrackedPath, store: fb.BackingStore, place: Any
) -> None:
    d = filled(pool, a=1, b=2, c=3)
    d.save(tracked, name="run")
    dropped = {d.handle("a").key, d.handle("b").key}
    del d["a"]
    d["b"] = 20
    d.save(tracked, name="run")
    keys = store.track_path(place[2]).keys()  # what is really there now
    assert not dropped & keys
    manifests = {key for key in keys if kind_of(key) == KIND_MANIFEST}
    assert len(manifests) == 1, "the previous generation's manifest was not removed"
    assert keys - manifests == {d.handle("b").key, d.handle("c").key}


def test_values_already_at_the_location_are_not_written_again(pool: fb.FBPool[Any], tracked: fb.TrackedPath) -> None:
    d = filled(pool, a=[1], b=[2])
    d.save(tracked, name="run")
    before = {name: d.handle(name).key for name in d}
    d["c"] = [3]
    d.save(tracked, name="run")
    assert {name: d.handle(name).key for name in ("a", "b")} == before


def test_a_value_another_collection_references_is_kept(pool: fb.FBPool[Any], tracked: fb.TrackedPath) -> None:
    shared = pool.insert("shared")
    first: fb.FBDict[str, Any] = fb.FBDict(pool)
    first["s"] = shared
    first.save(tracked, name="first")
    second: fb.FBDict[str, Any] = fb.FBDict(pool)
    second["s"] = shared
    second.save(tracked, name="second")
    del first["s"]
    first.save(tracked, name="first")
    assert shared.key in tracked
    assert dict(fb.FBDict.open(pool, tracked, name="second")) == {"s": "shared"}


def test_collections_at_one_location_are_independent(pool: fb.FBPool[Any], tracked: fb.TrackedPath) -> None:
    filled(pool, a=1).save(tracked, name="one")
    filled(pool, b=2).save(tracked, name="two")
    filled(pool, c=3).save(tracked, name="one")
    assert dict(fb.FBDict.open(pool, tracked, name="one")) == {"c": 3}
    assert dict(fb.FBDict.open(pool, tracked, name="two")) == {"b": 2}
    assert [(m.name, len(m)) for m in saved_collections(pool.store, tracked)] == [("one", 1), ("two", 1)]


def test_an_opened_collection_saved_again_keeps_the_values_it_never_used(
    pool: fb.FBPool[Any], tracked: fb.TrackedPath
) -> None:
    filled(pool, a=[1], b=[2]).save(tracked, name="run")
    d = fb.FBDict.open(pool, tracked, name="run")
    d["c"] = [3]
    d.save(tracked, name="run")
    assert pool.stats.loads == 0
    assert dict(fb.FBDict.open(pool, tracked, name="run")) == {"a": [1], "b": [2], "c": [3]}


def test_an_opened_collection_saves_to_another_location(
    pool: fb.FBPool[Any], tracked: fb.TrackedPath, store: fb.BackingStore, place: Any, tmp_path: Path
) -> None:
    filled(pool, a=[1]).save(tracked, name="run")
    other = store.track_path(tmp_path / "other" if place[0] == "fs_hardlink" else f"{place[2]}-other")
    fb.FBDict.open(pool, tracked, name="run").save(other, name="copy")
    assert dict(fb.FBDict.open(pool, other, name="copy")) == {"a": [1]}


def test_an_empty_collection_saves_and_opens(pool: fb.FBPool[Any], tracked: fb.TrackedPath) -> None:
    filled(pool, a=1).save(tracked, name="run")
    fb.FBDict(pool).save(tracked, name="run")
    assert len(fb.FBDict.open(pool, tracked, name="run")) == 0


def test_names_of_a_saved_collection_must_be_str(pool: fb.FBPool[Any], tracked: fb.TrackedPath) -> None:
    d: fb.FBDict[object, int] = fb.FBDict(pool)
    d[("not", "text")] = 1
    with pytest.raises(TypeError, match="names of a saved collection are str"):
        d.save(tracked, name="run")


@pytest.mark.parametrize("name", [7, ""])
def test_a_collection_name_is_a_nonempty_str(pool: fb.FBPool[Any], tracked: fb.TrackedPath, name: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        fb.FBDict(pool).save(tracked, name=name)


async def test_asave_and_aopen_are_the_coroutine_twins(pool: fb.FBPool[Any], tracked: fb.TrackedPath) -> None:
    await filled(pool, a=[1], b=[2]).asave(tracked, name="run")
    d = await fb.FBDict.aopen(pool, tracked, name="run")
    assert dict(d) == {"a": [1], "b": [2]}


@pytest.mark.parametrize("codec", ["pickle", "json", "msgpack", "bytes", "numpy"])
def test_collections_save_with_every_codec(codec: str) -> None:
    import numpy as np

    value: Any = {"json": [1, 2], "msgpack": [1, 2], "pickle": {1, 2}, "bytes": b"12", "numpy": np.arange(3)}[codec]
    location = f"codec-{codec}-{uuid.uuid4().hex}"
    with fb.open_store("memory", codec=codec) as store:
        tracked = store.track_path(location)
        pool: fb.FBPool[Any] = fb.FBPool(store, max_items=2)
        filled(pool, v=value).save(tracked, name="run")
        restored = fb.FBDict.open(pool, tracked, name="run")["v"]
    assert np.array_equal(restored, value) if codec == "numpy" else restored == value


def test_ls_lists_the_collections_saved_at_a_location(tmp_path: Path) -> None:
    with fb.open_store("fs_hardlink", path=tmp_path / "temporary") as store:
        tracked = store.track_path(tmp_path / "persisted")
        pool: fb.FBPool[Any] = fb.FBPool(store, max_items=4)
        d = filled(pool, a=1, b=2)
        d.save(tracked, name="run-7")
        d["c"] = 3
        d.save(tracked, name="run-7")
        filled(pool, x=1).save(tracked, name="other")
    result = CliRunner().invoke(main, ["ls", str(tmp_path / "persisted")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "collection\tother\t1 values\tgeneration 1" in lines
    assert "collection\trun-7\t3 values\tgeneration 2" in lines
    assert sum("(manifest of 'run-7')" in line for line in lines) == 1


def test_a_value_gone_from_the_location_raises_instead_of_passing_for_a_missing_key(
    pool: fb.FBPool[Any], tracked: fb.TrackedPath
) -> None:
    filled(pool, a=[1], b=[2]).save(tracked, name="run")
    opened = fb.FBDict.open(pool, tracked, name="run")
    fb.FBDict.open(pool, tracked, name="run")  # a second reader
    replacement = filled(pool, b=[20])
    replacement.save(tracked, name="run")  # drops the blob of "a" from the location
    assert "a" in opened
    with pytest.raises(fb.BlobNotFoundError, match="'a'"):
        opened.get("a")
    with pytest.raises(fb.BlobNotFoundError):
        opened.pop("a", None)
    assert opened.get("missing", 5) == 5
