"""fs_hardlink packs small evicted values into segment files of its temporary
area, and keeps a file per blob for everything else (public API only)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from file_backed_fs_hardlink import PACKED_UP_TO

import file_backed as fb
from file_backed.cli import main


@pytest.fixture
def area(tmp_path: Path) -> Path:
    return tmp_path / "temporary"


@pytest.fixture
def store(area: Path) -> Iterator[fb.BackingStore]:
    with fb.open_store("fs_hardlink", path=area) as store:
        yield store


def blob_file(root: Path, handle: fb.Fb[object]) -> Path:
    return root / handle.key.hex[:2] / handle.key.hex


def segment_files(root: Path) -> list[Path]:
    return sorted((root / "segments").glob("*.seg"))


def new_pool(store: fb.BackingStore) -> fb.FBPool[object]:
    return fb.FBPool(store, max_items=1)


def evicted(store: fb.BackingStore, value: object) -> fb.Fb[object]:
    """A handle whose value was written to the temporary area by eviction."""
    pool = new_pool(store)
    handle = pool.insert(value)
    pool.insert("pushes the first value out")
    store.finished()
    return handle


def test_an_evicted_small_value_is_packed_into_a_segment_file(store: fb.BackingStore, area: Path) -> None:
    handle = evicted(store, {"small": list(range(100))})
    assert not blob_file(area, handle).exists()
    assert len(segment_files(area)) == 1
    assert handle.get() == {"small": list(range(100))}


def test_write_now_writes_a_file_of_its_own(store: fb.BackingStore, area: Path) -> None:
    handle = new_pool(store).insert(b"written now")
    handle.write_now()
    assert blob_file(area, handle).is_file()
    assert segment_files(area) == []


def test_persisting_a_packed_blob_hard_links_a_file_of_its_own(
    store: fb.BackingStore, area: Path, tmp_path: Path
) -> None:
    handle = evicted(store, b"packed, then persisted")
    tracked = store.track_path(tmp_path / "persisted")
    key = handle.persist(tracked)
    temporary, persisted = blob_file(area, handle), blob_file(tmp_path / "persisted", handle)
    assert os.stat(temporary).st_ino == os.stat(persisted).st_ino
    assert os.stat(persisted).st_nlink == 2
    assert handle.get() == b"packed, then persisted"
    store.fsync(tracked)
    with fb.open_store("fs_hardlink", path=tmp_path / "another") as another:
        again = new_pool(another).register(another.track_path(tmp_path / "persisted"), key)
        assert again is not None and again.get() == b"packed, then persisted"


def test_an_evicted_value_above_the_packing_limit_keeps_a_file_of_its_own(store: fb.BackingStore, area: Path) -> None:
    large = os.urandom(PACKED_UP_TO + 1)
    handle = evicted(store, large)
    assert blob_file(area, handle).is_file()
    assert segment_files(area) == []
    assert handle.get() == large


def test_a_corrupt_byte_in_a_segment_file_raises_corrupt_blob_error(store: fb.BackingStore, area: Path) -> None:
    handle = evicted(store, b"x" * 1000)
    (segment,) = segment_files(area)
    with open(segment, "r+b") as file:
        file.seek(-10, os.SEEK_END)
        byte = file.read(1)
        file.seek(-10, os.SEEK_END)
        file.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(fb.CorruptBlobError):
        handle.get()


def test_a_segment_file_cut_short_raises_corrupt_blob_error(store: fb.BackingStore, area: Path) -> None:
    handle = evicted(store, b"x" * 1000)
    (segment,) = segment_files(area)
    os.truncate(segment, segment.stat().st_size // 2)
    with pytest.raises(fb.CorruptBlobError):
        handle.get()


@pytest.mark.timeout(60)
def test_segment_files_of_a_crashed_store_are_deleted_by_the_next_store(area: Path) -> None:
    crashing = textwrap.dedent(
        f"""
        import os, file_backed as fb
        store = fb.open_store("fs_hardlink", path={str(area)!r})
        pool = fb.FBPool(store, max_items=1)
        handles = [pool.insert(i) for i in range(5)]
        store.finished()
        os._exit(0)  # no close: as if killed
        """
    )
    subprocess.run([sys.executable, "-c", crashing], check=True, timeout=50)
    assert len(segment_files(area)) == 1
    with fb.open_store("fs_hardlink", path=area) as store:
        assert segment_files(area) == []
        handle = evicted(store, "packed by the new store")
        assert handle.get() == "packed by the new store"


def test_an_unmarked_directory_holding_segment_files_is_refused_as_a_temporary_area(area: Path) -> None:
    (area / "segments").mkdir(parents=True)
    (area / "segments" / "x.seg").write_bytes(b"someone's data")
    with pytest.raises(fb.ConfigError, match="holds 1 blob"):
        fb.open_store("fs_hardlink", path=area)
    assert (area / "segments" / "x.seg").read_bytes() == b"someone's data"
    assert sorted(entry.name for entry in area.iterdir() if not entry.name.isalnum() or len(entry.name) != 2) == [
        "segments"
    ]


def test_sanitizing_a_temporary_area_does_not_report_its_segments_as_foreign(
    store: fb.BackingStore, area: Path, caplog: pytest.LogCaptureFixture
) -> None:
    packed = evicted(store, "packed")
    assert segment_files(area) != []
    caplog.set_level(logging.WARNING, logger="file_backed")
    store.backend.sanitize_path(area)  # type: ignore[attr-defined]
    assert "not blobs of this library" not in caplog.text
    assert packed.get() == "packed"


def test_reopening_a_temporary_area_with_segments_reports_nothing_foreign(
    area: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with fb.open_store("fs_hardlink", path=area) as store:
        evicted(store, "packed")
    assert (area / "segments").is_dir()
    caplog.set_level(logging.WARNING, logger="file_backed")
    with fb.open_store("fs_hardlink", path=area):
        pass
    assert "not blobs of this library" not in caplog.text


def test_verify_of_a_temporary_area_checks_its_blob_files_and_skips_its_segments(
    store: fb.BackingStore, area: Path, caplog: pytest.LogCaptureFixture
) -> None:
    packed = evicted(store, "packed")
    own_file = new_pool(store).insert("a file of its own")
    own_file.write_now()
    caplog.set_level(logging.WARNING)
    result = CliRunner().invoke(main, ["verify", str(area)])
    assert result.exit_code == 0, result.output
    assert "checked 1 blobs" in result.output and "0 corrupt" in result.output
    assert "segments" not in result.output
    assert "not blobs of this library" not in caplog.text
    assert packed.get() == "packed" and own_file.get() == "a file of its own"
