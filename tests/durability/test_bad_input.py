"""The bad-input matrix: each bad input is a typed error with a clear message, and
nothing is lost (the persisted sentinel still registers and loads, foreign
files and what symbolic links point at are untouched)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

import file_backed as fb
from file_backed.blob import encode_blob
from file_backed.codecs.base import Buffer, Codec
from file_backed.codecs.json_codec import JsonCodec

from .conftest import blob_file

pytestmark = pytest.mark.timeout(30)

SENTINEL = {"sentinel": list(range(10))}
OUTSIDE = b"outside the location: must never be read through a link, changed or deleted"
SHARDS = [f"{i:02x}" for i in range(256)]


class NoSuchCodec(Codec):
    """A codec no store has: writes blobs whose header names ``nosuch``."""

    name: ClassVar[str] = "nosuch"

    def encode(self, obj: Any) -> Sequence[Buffer]:
        return [repr(obj).encode()]

    def decode(self, data: memoryview) -> Any:
        raise AssertionError("never called")


@attrs.define
class World:
    """A store with a pool, a tracked location holding the persisted sentinel,
    and a file outside the location (the target of planted symbolic links)."""

    tmp: Path
    location: Path
    outside: Path
    store: fb.BackingStore
    pool: fb.FBPool[Any]
    tracked: fb.TrackedPath
    sentinel: fb.Fb[Any]
    readonly_dir: Callable[[Callable[[Path], object]], Path]
    left_alone: list[Path] = attrs.Factory(list)

    @property
    def key(self) -> uuid.UUID:
        return self.sentinel.key

    def keep(self, path: Path) -> Path:
        """Record `path` (a foreign entry the case planted): it must survive."""
        self.left_alone.append(path)
        return path

    def plant(self, data: bytes, key: uuid.UUID | None = None) -> uuid.UUID:
        """Write `data` under a key's blob name in the location; returns the key."""
        key = key or uuid.uuid4()
        blob_file(self.location, key).write_bytes(data)
        return key

    def sentinel_blob(self) -> bytearray:
        return bytearray(blob_file(self.location, self.key).read_bytes())

    def load_planted(self, data: bytes, key: uuid.UUID | None = None) -> Any:
        """Plant `data` under `key` (default: a new key), track the location again,
        register and load it."""
        key = self.plant(data, key)
        handle = self.pool.register(self.store.track_path(self.location), key)
        assert handle is not None
        return handle.get()

    def symlink(self, relative: str) -> Path:
        """A symbolic link at `relative` in the location, pointing at the outside file."""
        link = self.location / relative
        link.symlink_to(self.outside)
        return self.keep(link)

    def other_store(self, **options: Any) -> fb.BackingStore:
        return fb.open_store("fs_hardlink", path=self.tmp / f"other-{uuid.uuid4().hex[:6]}", **options)

    def closed(self) -> World:
        self.store.close()
        return self

    def verify_nothing_lost(self) -> None:
        assert self.outside.read_bytes() == OUTSIDE, "the file outside the location changed"
        for path in self.left_alone:
            assert os.path.lexists(path), f"{path} was deleted, but the library did not create it"
        if not self.store.closed:
            assert self.sentinel.get() == SENTINEL
        with fb.open_store("fs_hardlink", path=self.tmp / "verify") as store:
            tracked = store.track_path(self.location)
            handle = fb.FBPool(store, max_items=2).register(tracked, self.key)
            assert handle is not None and handle.get() == SENTINEL, "the persisted sentinel was lost"


@pytest.fixture
def world(tmp_path: Path, readonly_dir: Callable[[Callable[[Path], object]], Path]) -> Iterator[World]:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(OUTSIDE)
    location = tmp_path / "persisted"
    store = fb.open_store("fs_hardlink", path=tmp_path / "area")
    pool: fb.FBPool[Any] = fb.FBPool(store, max_items=4)
    tracked = store.track_path(location)
    sentinel = pool.insert(SENTINEL)
    sentinel.persist(tracked)
    store.fsync(tracked)
    world = World(tmp_path, location, outside, store, pool, tracked, sentinel, readonly_dir)
    try:
        yield world
    finally:
        store.close()


# -- actions that are not one expression ------------------------------------------------


def track_with(plant: Callable[[World], Path]) -> Callable[[World], None]:
    """Plant a foreign entry, track the location: the entry is left alone and not a key."""

    def act(world: World) -> None:
        world.keep(plant(world))
        keys = world.store.track_path(world.location).keys()
        assert keys == {world.key}, f"foreign entries were taken for blobs: {keys}"

    return act


def own_temp_file_is_removed(world: World) -> None:
    partial = world.location / world.key.hex[:2] / f".{world.key.hex}.0123456789abcdef.tmp"
    partial.write_bytes(b"half a blob")
    world.store.track_path(world.location)
    assert not partial.exists(), "a partial file of this library survived track_path"


def register_unknown_key(world: World) -> None:
    assert world.pool.register(world.tracked, uuid.uuid4()) is None


def register_through_symlink(world: World) -> None:
    key = world.plant(b"")
    tracked = world.store.track_path(world.location)
    blob_file(world.location, key).unlink()
    world.symlink(f"{key.hex[:2]}/{key.hex}")
    world.pool.register(tracked, key)


def delete_through_symlink(world: World) -> None:
    key = world.plant(b"")
    tracked = world.store.track_path(world.location)
    blob_file(world.location, key).unlink()
    world.symlink(f"{key.hex[:2]}/{key.hex}")
    world.store.delete_persisted(tracked, key)


def persist_over_symlink(world: World) -> None:
    handle = world.pool.insert({"new": 1})
    handle.write_now()
    world.symlink(f"{handle.key.hex[:2]}/{handle.key.hex}")
    try:
        handle.persist(world.tracked)
    finally:
        assert handle.get() == {"new": 1} and handle.key not in world.tracked


def shard_is_symlink(world: World) -> None:
    shard = world.location / world.key.hex[:2]
    fresh = world.tmp / "fresh-location"
    fresh.mkdir()
    (fresh / "00").symlink_to(shard)
    world.keep(fresh / "00")
    world.store.track_path(fresh)


def shard_is_file(world: World) -> None:
    fresh = world.tmp / "fresh-location"
    fresh.mkdir()
    world.keep(fresh / "7f").write_text("not a shard")
    world.store.track_path(fresh)


def location_is_file(world: World) -> None:
    world.keep(world.tmp / "a-file").write_text("x")
    world.store.track_path(world.tmp / "a-file")


def location_under_file(world: World) -> None:
    world.keep(world.tmp / "a-file").write_text("x")
    world.store.track_path(world.tmp / "a-file" / "sub")


def temporary_area_is_file(world: World) -> None:
    world.keep(world.tmp / "a-file").write_text("x")
    fb.open_store("fs_hardlink", path=world.tmp / "a-file")


def track_readonly_unprepared(world: World) -> None:
    world.store.track_path(world.readonly_dir(lambda directory: None))


def _with_shards(directory: Path) -> None:
    for shard in SHARDS:
        (directory / shard).mkdir()


def _copy_of_location(world: World) -> Callable[[Path], None]:
    def fill(directory: Path) -> None:
        shutil.copytree(world.location, directory, dirs_exist_ok=True)

    return fill


def persist_to_readonly(world: World) -> None:
    tracked = world.store.track_path(world.readonly_dir(_with_shards))
    handle = world.pool.insert({"new": 2})
    try:
        handle.persist(tracked)
    finally:
        assert handle.key not in tracked and handle.get() == {"new": 2}


def delete_from_readonly(world: World) -> None:
    tracked = world.store.track_path(world.readonly_dir(_copy_of_location(world)))
    try:
        world.store.delete_persisted(tracked, world.key)
    finally:
        assert world.key in tracked


def register_from_readonly(world: World) -> None:
    tracked = world.store.track_path(world.readonly_dir(_copy_of_location(world)))
    with world.other_store() as store:
        handle = fb.FBPool(store, max_items=2).register(store.track_path(tracked.path), world.key)
        assert handle is not None and handle.get() == SENTINEL


def temporary_area_readonly(world: World) -> None:
    fb.open_store("fs_hardlink", path=world.readonly_dir(lambda directory: None))


def location_removed_after_tracking(world: World) -> None:
    fresh = world.tmp / "fresh-location"
    tracked = world.store.track_path(fresh)
    shutil.rmtree(fresh)
    world.pool.insert({"new": 3}).persist(tracked)


def blob_removed_after_tracking(world: World) -> None:
    key = world.plant(world.sentinel_blob())
    tracked = world.store.track_path(world.location)
    blob_file(world.location, key).unlink()
    world.pool.register(tracked, key)


def header_byte(offset: int, value: int) -> Callable[[World], Any]:
    def act(world: World) -> Any:
        blob = world.sentinel_blob()
        blob[offset] = value
        return world.load_planted(bytes(blob))

    return act


def sentinel_blob_edited(edit: Callable[[bytearray], bytes]) -> Callable[[World], Any]:
    return lambda world: world.load_planted(edit(world.sentinel_blob()))


def foreign_codec_blob(codec: Codec) -> Callable[[World], Any]:
    def act(world: World) -> Any:
        key = uuid.uuid4()
        buffers, _ = encode_blob(codec, {"x": 1}, key=key)
        return world.load_planted(b"".join(bytes(buffer) for buffer in buffers), key)

    return act


def unsigned_blob_in_signed_store(world: World) -> None:
    with world.other_store(signing_key="0123456789abcdef0123") as store:
        handle = fb.FBPool(store, max_items=2).register(store.track_path(world.location), world.key)
        assert handle is not None
        handle.get()


def blob_signed_with_another_key(world: World) -> None:
    with world.other_store(signing_key="the first key, long enough") as store:
        tracked = store.track_path(world.location)
        key = fb.FBPool(store, max_items=2).insert({"signed": 1}).persist(tracked)
    with world.other_store(signing_key="another key, just as long") as store:
        handle = fb.FBPool(store, max_items=2).register(store.track_path(world.location), key)
        assert handle is not None
        handle.get()


def load_registered_after_close(world: World) -> None:
    handle = world.pool.register(world.tracked, world.key)
    assert handle is not None
    world.store.close()
    with handle.load():
        pass


def aload_after_close(world: World) -> None:
    handle = world.pool.register(world.tracked, world.key)
    assert handle is not None
    world.store.close()

    async def load() -> None:
        async with handle.aload():
            pass

    asyncio.run(load())


def double_close(world: World) -> None:
    world.store.close()
    world.store.close()


def tracked_by_other_store(world: World) -> None:
    with world.other_store() as store:
        world.sentinel.persist(store.track_path(world.tmp / "other-location"))


@attrs.frozen
class Case:
    """One bad input: the action, and the error it must raise (None: it must
    succeed and check its own outcome)."""

    name: str
    act: Callable[[World], object]
    error: type[BaseException] | None
    match: str = ""


READ_ONLY = "Read-only file system|Permission denied"
CASES = [
    # keys
    Case("register-text-not-uuid", lambda w: w.pool.register(w.tracked, "not-a-uuid"), ValueError, "not a key"),
    Case("register-empty-text", lambda w: w.pool.register(w.tracked, ""), ValueError, "not a key"),
    Case("register-path-traversal", lambda w: w.pool.register(w.tracked, "../../etc"), ValueError, "not a key"),
    Case("register-int", lambda w: w.pool.register(w.tracked, 12345), TypeError, "a key is a uuid.UUID"),
    Case("register-none", lambda w: w.pool.register(w.tracked, None), TypeError, "a key is a uuid.UUID"),
    Case("register-bytes", lambda w: w.pool.register(w.tracked, w.key.bytes), TypeError, "a key is a uuid.UUID"),
    Case("delete-text-not-uuid", lambda w: w.store.delete_persisted(w.tracked, "zz"), ValueError, "not a key"),
    Case("register-unknown-key", register_unknown_key, None),
    # foreign entries in a location
    Case("foreign-file-at-root", track_with(lambda w: _text(w.location / "MANIFEST")), None),
    Case("foreign-file-in-shard", track_with(lambda w: _text(w.location / "ab" / "notes.txt")), None),
    Case("dir-named-like-key", track_with(lambda w: _dir(w.location / "ab" / ("ab" + "0" * 30))), None),
    Case("dir-named-like-temp", track_with(lambda w: _dir(w.location / "ab" / f".ab{'0' * 30}.{'1' * 16}.tmp")), None),
    Case("symlink-named-like-temp", track_with(lambda w: w.symlink(f"cd/.cd{'0' * 30}.{'2' * 16}.tmp")), None),
    Case("symlink-named-like-key", track_with(lambda w: w.symlink(f"cd/cd{'3' * 30}")), None),
    Case("key-in-wrong-shard", track_with(lambda w: _text(w.location / "00" / ("ff" + "4" * 30))), None),
    Case("uppercase-key-name", track_with(lambda w: _text(w.location / "AB" / ("AB" + "5" * 30))), None),
    Case("temp-in-wrong-shard", track_with(lambda w: _text(w.location / "00" / f".ee{'6' * 30}.{'7' * 16}.tmp")), None),
    Case("own-partial-file-removed", own_temp_file_is_removed, None),
    Case("register-through-symlink", register_through_symlink, fb.BlobNotFoundError, "symbolic link"),
    Case("delete-through-symlink", delete_through_symlink, fb.BlobNotFoundError, "symbolic link"),
    Case("persist-over-symlink", persist_over_symlink, FileExistsError, "symbolic link.*in the way"),
    Case("shard-is-symlink", shard_is_symlink, NotADirectoryError, "symbolic link"),
    Case("shard-is-file", shard_is_file, NotADirectoryError, "expects its shard directory"),
    # locations and temporary areas
    Case("location-is-file", location_is_file, NotADirectoryError, "must be a directory"),
    Case("location-under-file", location_under_file, NotADirectoryError, "part of its path is a file"),
    Case("location-int", lambda w: w.store.track_path(42), TypeError, "directory path"),
    Case("location-none", lambda w: w.store.track_path(None), TypeError, "directory path"),
    Case("temporary-area-is-file", temporary_area_is_file, NotADirectoryError, "must be a directory"),
    Case("track-readonly-unprepared", track_readonly_unprepared, OSError, READ_ONLY),
    Case("temporary-area-readonly", temporary_area_readonly, OSError, READ_ONLY),
    Case("persist-to-readonly", persist_to_readonly, OSError, READ_ONLY),
    Case("delete-from-readonly", delete_from_readonly, OSError, READ_ONLY),
    Case("register-from-readonly", register_from_readonly, None),
    Case("location-removed-after-tracking", location_removed_after_tracking, FileNotFoundError, "missing"),
    Case("blob-removed-after-tracking", blob_removed_after_tracking, fb.BlobNotFoundError, "no blob for key"),
    # blobs
    Case("zero-length-blob", lambda w: w.load_planted(b""), fb.CorruptBlobError, "truncated"),
    Case("truncated-header", lambda w: w.load_planted(bytes(w.sentinel_blob()[:10])), fb.CorruptBlobError, "truncated"),
    Case("truncated-payload", sentinel_blob_edited(lambda b: bytes(b[:-7])), fb.CorruptBlobError, "truncated"),
    Case("trailing-bytes", sentinel_blob_edited(lambda b: bytes(b) + b"xx"), fb.CorruptBlobError, "extended"),
    Case("blob-of-another-key", lambda w: w.load_planted(bytes(w.sentinel_blob())), fb.CorruptBlobError, "another key"),
    Case("not-a-blob", lambda w: w.load_planted(b"hello, world\n" * 4), fb.CorruptBlobError, "not a file_backed"),
    Case("future-version", header_byte(4, 3), fb.CorruptBlobError, "unknown blob format version 3"),
    Case("unknown-flags", header_byte(5, 0x80), fb.CorruptBlobError, "unknown header flags"),
    Case("unknown-codec", foreign_codec_blob(NoSuchCodec()), fb.CorruptBlobError, "codec 'nosuch'"),
    Case("other-codec", foreign_codec_blob(JsonCodec()), fb.CorruptBlobError, "codec 'json'"),
    Case("unsigned-in-signed-store", unsigned_blob_in_signed_store, fb.CorruptBlobError, "not signed"),
    Case("signed-with-other-key", blob_signed_with_another_key, fb.CorruptBlobError, "signature mismatch"),
    # configuration
    Case("signing-key-short", lambda w: w.other_store(signing_key="short"), fb.ConfigError, "at least 16 bytes"),
    Case("signing-key-int", lambda w: w.other_store(signing_key=1234), fb.ConfigError, "text or bytes"),
    Case("fsync-not-bool", lambda w: w.other_store(fsync="yes"), fb.ConfigError, "fsync"),
    Case("unknown-option", lambda w: w.other_store(fsnyc=True), fb.ConfigError, "no option 'fsnyc'"),
    Case("unknown-codec-name", lambda w: w.other_store(codec="pikle"), fb.PluginNotFoundError, "pickle"),
    Case("unknown-backend", lambda w: fb.open_store("fs_hardlnk"), fb.PluginNotFoundError, "fs_hardlink"),
    # lifetime
    Case("double-close", double_close, None),
    Case("insert-after-close", lambda w: w.closed().pool.insert(1), fb.StoreClosedError, "closed"),
    Case("load-after-close", load_registered_after_close, fb.StoreClosedError, "closed"),
    Case("aload-after-close", aload_after_close, fb.StoreClosedError, "closed"),
    Case("write-now-after-close", lambda w: w.closed().pool.insert(1).write_now(), fb.StoreClosedError, "closed"),
    Case("track-after-close", lambda w: w.closed().store.track_path(w.location), fb.StoreClosedError, "closed"),
    Case("persist-after-close", lambda w: w.closed().sentinel.persist(w.tracked), fb.StoreClosedError, "closed"),
    Case("fsync-after-close", lambda w: w.closed().store.fsync(w.tracked), fb.StoreClosedError, "closed"),
    Case("register-after-close", lambda w: w.closed().pool.register(w.tracked, w.key), fb.StoreClosedError, "closed"),
    Case(
        "delete-after-close",
        lambda w: w.closed().store.delete_persisted(w.tracked, w.key),
        fb.StoreClosedError,
        "closed",
    ),
    # persisted locations never tracked
    Case("persist-to-plain-path", lambda w: w.sentinel.persist(str(w.location)), TypeError, "track_path"),
    Case("persist-to-pathlib", lambda w: w.sentinel.persist(w.location), TypeError, "track_path"),
    Case("persist-to-other-store", tracked_by_other_store, ValueError, "another store"),
    Case("fsync-plain-path", lambda w: w.store.fsync(str(w.location)), TypeError, "track_path"),
    Case("register-plain-path", lambda w: w.pool.register(str(w.location), w.key), TypeError, "track_path"),
    Case("delete-plain-path", lambda w: w.store.delete_persisted(w.location, w.key), TypeError, "track_path"),
]


def _text(path: Path) -> Path:
    path.parent.mkdir(exist_ok=True)
    path.write_text("not a blob")
    return path


def _dir(path: Path) -> Path:
    path.mkdir()
    return path


def test_the_matrix_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case: Case, world: World) -> None:
    if case.error is None:
        case.act(world)
    else:
        with pytest.raises(case.error, match=case.match) as raised:
            case.act(world)
        assert str(raised.value), f"{case.name}: {type(raised.value).__name__} without a message"
    world.verify_nothing_lost()
