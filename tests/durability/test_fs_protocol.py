"""The fs_hardlink write protocol: fsync before a persisted name exists, directory
syncs where syncfs is missing, EXDEV copies counted, other link errors raised,
failed writes leave no temporary file, foreign entries logged once."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import file_backed as fb
import file_backed.localfs

from .conftest import blob_file, stray_files

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[fb.BackingStore]:
    with fb.open_store("fs_hardlink", path=tmp_path / "area", codec="json") as store:
        yield store


def fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def record_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record ``("fsync", path)`` and ``("link", target)`` in call order."""
    calls: list[tuple[str, str]] = []
    fsync, link = os.fsync, os.link

    def recording_fsync(fd: int) -> None:
        calls.append(("fsync", fd_path(fd)))
        fsync(fd)

    def recording_link(source: Any, target: Any, **options: Any) -> None:
        calls.append(("link", os.fspath(target)))
        link(source, target, **options)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "link", recording_link)
    return calls


def failing_link(code: int) -> Callable[..., None]:
    def link(source: Any, target: Any, **options: Any) -> None:
        raise OSError(code, os.strerror(code), os.fspath(source), None, os.fspath(target))

    return link


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to name fsynced files")
def test_blob_is_fsynced_before_its_persisted_name_exists(
    store: fb.BackingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracked = store.track_path(tmp_path / "persisted")
    handle = fb.FBPool(store, max_items=2).insert({"a": 1})
    handle.write_now()
    calls = record_calls(monkeypatch)
    key = handle.persist(tracked)
    source, target = blob_file(tmp_path / "area", key), blob_file(tmp_path / "persisted", key)
    assert calls == [("fsync", str(source)), ("link", str(target))]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to name fsynced files")
def test_without_syncfs_every_touched_directory_is_fsynced(
    store: fb.BackingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = tmp_path / "persisted"
    tracked = store.track_path(location)
    pool = fb.FBPool(store, max_items=8)
    keys = [pool.insert({"i": i}).persist(tracked) for i in range(3)]
    store.delete_persisted(tracked, keys[0])
    monkeypatch.setattr(file_backed.localfs, "_libc_syncfs", lambda: None)
    calls = record_calls(monkeypatch)
    store.fsync(tracked)
    assert sorted(path for _, path in calls) == sorted({str(location / key.hex[:2]) for key in keys})
    calls.clear()
    store.fsync(tracked)
    assert calls == [], "a second sync with nothing new touched fsyncs nothing"


def test_fsync_false_never_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with fb.open_store("fs_hardlink", path=tmp_path / "area", fsync=False) as store:
        tracked = store.track_path(tmp_path / "persisted")
        calls = record_calls(monkeypatch)
        fb.FBPool(store, max_items=2).insert([1]).persist(tracked)
        store.fsync(tracked)
    assert [name for name, _ in calls] == ["link"]


def test_cross_device_persist_and_register_copy_and_count(
    store: fb.BackingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = tmp_path / "persisted"
    tracked = store.track_path(location)
    pool = fb.FBPool(store, max_items=2)
    handle = pool.insert({"copied": True})
    monkeypatch.setattr(os, "link", failing_link(errno.EXDEV))
    key = handle.persist(tracked)
    assert store.backend.copies == 1  # type: ignore[attr-defined]
    assert os.stat(blob_file(location, key)).st_nlink == 1, "a copy, not a link"
    assert [path.name for path in stray_files(location)] == [key.hex], "the copy left a temporary file"
    handle2 = pool.insert({"copied": 2})
    key2 = handle2.persist(tracked)
    del handle2
    with fb.open_store("fs_hardlink", path=tmp_path / "area2", codec="json") as other:
        registered = fb.FBPool(other, max_items=2).register(other.track_path(location), key2)
        assert registered is not None and registered.get() == {"copied": 2}
        assert other.backend.copies == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("code", [errno.EMLINK, errno.EPERM, errno.EIO])
def test_other_link_errors_are_errors(
    store: fb.BackingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    location = tmp_path / "persisted"
    tracked = store.track_path(location)
    handle = fb.FBPool(store, max_items=2).insert({"kept": True})
    monkeypatch.setattr(os, "link", failing_link(code))
    with pytest.raises(OSError) as raised:
        handle.persist(tracked)
    assert raised.value.errno == code
    assert store.backend.copies == 0  # type: ignore[attr-defined]
    assert stray_files(location) == [] and handle.key not in tracked
    assert handle.get() == {"kept": True}


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EDQUOT])
def test_failed_write_leaves_no_temporary_file(
    store: fb.BackingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    handle = fb.FBPool(store, max_items=2).insert({"kept": True})

    def failing_writev(fd: int, buffers: Any) -> int:
        os.write(fd, b"partial")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "writev", failing_writev)
    with pytest.raises(OSError) as raised:
        handle.write_now()
    assert raised.value.errno == code
    assert stray_files(tmp_path / "area") == []
    monkeypatch.undo()
    handle.write_now()
    assert len(stray_files(tmp_path / "area")) == 1 and handle.get() == {"kept": True}


def test_foreign_entries_are_logged_once(
    store: fb.BackingStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    location = tmp_path / "persisted"
    store.track_path(location)
    (location / "README").write_text("mine")
    (location / "ab" / "notes").write_text("mine too")
    with caplog.at_level(logging.WARNING, logger="file_backed.fs_hardlink"):
        store.track_path(location)
        store.track_path(location)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1 and "left 2 entries alone" in messages[0], messages
    assert (location / "README").read_text() == "mine"
