"""`file_backed.segments.SegmentFiles`: small blobs packed into append-only
segment files of a private temporary area."""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import file_backed.segments
from file_backed.errors import BlobNotFoundError
from file_backed.segments import SEGMENTS_DIRECTORY, SegmentFiles, punch_hole, remove_segment_files

SMALL_SEGMENT = 4096


def blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed * 100_003 + size).randbytes(size)


def put(segments: SegmentFiles, key: uuid.UUID, data: bytes, parts: int = 1) -> None:
    """Put `data` as `parts` buffers (the last ones may be empty)."""
    step = -(-len(data) // parts) if data else 0
    buffers = [data[i * step : (i + 1) * step] for i in range(parts)]
    segments.put(key, buffers, len(data))


def read(segments: SegmentFiles, key: uuid.UUID) -> bytes | None:
    view = segments.read(key)
    return None if view is None else bytes(view)


def segment_files(root: Path) -> list[Path]:
    return sorted((root / SEGMENTS_DIRECTORY).glob("*.seg"))


@pytest.fixture
def segments(tmp_path: Path) -> SegmentFiles:
    return SegmentFiles(tmp_path, segment_bytes=SMALL_SEGMENT)


# -- the model ---------------------------------------------------------------------------------


class SegmentFilesMatchDict(RuleBasedStateMachine):
    """Any sequence of puts, reads, size queries and deletes on segment files
    that seal at 4 KiB behaves as a dict of bytes, and the files on disk are the
    segments it counts."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="segments-model-"))
        self.segments = SegmentFiles(self.root, segment_bytes=SMALL_SEGMENT)
        self.model: dict[uuid.UUID, bytes] = {}

    @rule(size=st.one_of(st.integers(0, 300), st.integers(0, 20000)), seed=st.integers(0, 3), parts=st.integers(1, 3))
    def put_blob(self, size: int, seed: int, parts: int) -> None:
        key = uuid.uuid4()
        data = blob(size, seed)
        put(self.segments, key, data, parts)
        self.model[key] = data

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def read_blob(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        assert read(self.segments, key) == self.model[key]

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def size_of_blob(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        assert self.segments.size(key) == len(self.model[key])

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete_blob(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        assert self.segments.delete(key)
        del self.model[key]
        assert key not in self.segments

    @rule()
    def unknown_key_is_not_there(self) -> None:
        key = uuid.uuid4()
        assert self.segments.read(key) is None
        assert self.segments.size(key) is None
        assert not self.segments.delete(key)

    @invariant()
    def every_live_blob_reads_back(self) -> None:
        assert len(self.segments) == len(self.model)
        for key, data in self.model.items():
            assert read(self.segments, key) == data

    @invariant()
    def the_files_hold_at_least_the_live_bytes(self) -> None:
        assert self.segments.file_bytes >= sum(map(len, self.model.values()))

    @invariant()
    def file_count_is_the_files_on_disk(self) -> None:
        assert self.segments.file_count == len(segment_files(self.root))

    def teardown(self) -> None:
        try:
            for key in list(self.model):
                assert self.segments.delete(key)
            assert segment_files(self.root) == []
            assert self.segments.file_count == 0 and self.segments.file_bytes == 0
        finally:
            self.segments.close()
            shutil.rmtree(self.root, ignore_errors=True)


TestSegmentFilesMatchDict = SegmentFilesMatchDict.TestCase
TestSegmentFilesMatchDict.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# -- space ---------------------------------------------------------------------------------------


def test_files_hold_at_most_twice_the_live_bytes_plus_one_segment_and_one_blob(segments: SegmentFiles) -> None:
    largest = SMALL_SEGMENT - 16
    live: dict[uuid.UUID, int] = {}
    for _ in range(10):
        kept, dropped = uuid.uuid4(), uuid.uuid4()
        put(segments, kept, blob(10))  # does not fit after the previous round: seals its segment
        live[kept] = 10
        put(segments, dropped, blob(largest))
        segments.delete(dropped)  # in the current segment, which is not compacted
        assert segments.file_bytes <= 2 * sum(live.values()) + SMALL_SEGMENT + largest


# -- compaction ----------------------------------------------------------------------------------


def test_compaction_moves_live_blobs_and_removes_the_old_file(segments: SegmentFiles, tmp_path: Path) -> None:
    keys = [uuid.uuid4() for _ in range(4)]
    for index, key in enumerate(keys):
        put(segments, key, blob(1000, index))
    put(segments, uuid.uuid4(), blob(1000))  # does not fit: seals the first segment
    first = segment_files(tmp_path)[0]
    for key in keys[:3]:  # the third makes it more than half dead
        segments.delete(key)
    assert not first.exists()
    assert segments.file_count == 1
    assert read(segments, keys[3]) == blob(1000, 3)


@pytest.mark.timeout(30)
def test_blobs_deleted_during_compaction_stay_deleted(tmp_path: Path) -> None:
    segments = SegmentFiles(tmp_path, segment_bytes=64 * 1024)
    for _ in range(5):
        keys = [uuid.uuid4() for _ in range(600)]
        for index, key in enumerate(keys):
            put(segments, key, blob(100, index))
        put(segments, uuid.uuid4(), blob(64 * 1024))  # seals the segment of `keys`
        kept = keys[::3]
        deleted = [key for key in keys if key not in set(kept)]
        start = threading.Barrier(2)

        def delete_all(part: list[uuid.UUID], start: threading.Barrier = start) -> None:
            start.wait(timeout=10)
            for key in part:
                segments.delete(key)

        threads = [threading.Thread(target=delete_all, args=(deleted[i::2],)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert all(read(segments, key) is None and key not in segments for key in deleted)
        assert all(read(segments, key) == blob(100, keys.index(key)) for key in kept)
        for number in list(segments._index):
            segments.delete(uuid.UUID(int=number))
        assert segment_files(tmp_path) == []


@pytest.mark.timeout(30)
def test_a_read_during_the_compaction_of_its_segment_finds_the_blob(tmp_path: Path) -> None:
    segments = SegmentFiles(tmp_path, segment_bytes=SMALL_SEGMENT)
    for _ in range(300):
        kept = uuid.uuid4()
        put(segments, kept, blob(10))
        others = [uuid.uuid4() for _ in range(8)]
        for key in others:
            put(segments, key, blob(400))
        put(segments, uuid.uuid4(), blob(SMALL_SEGMENT))  # seals the segment of `kept`
        stop = threading.Event()
        failures: list[BlobNotFoundError] = []

        def read_until_stopped(
            kept: uuid.UUID = kept, stop: threading.Event = stop, failures: list[BlobNotFoundError] = failures
        ) -> None:
            while not stop.is_set():
                try:
                    assert read(segments, kept) == blob(10)
                except BlobNotFoundError as error:
                    failures.append(error)
                    return

        reader = threading.Thread(target=read_until_stopped)
        reader.start()
        for key in others:  # the fifth compacts the segment: `kept` moves
            segments.delete(key)
        stop.set()
        reader.join(timeout=10)
        assert failures == []
        for number in list(segments._index):
            segments.delete(uuid.UUID(int=number))


@pytest.mark.timeout(30)
def test_a_compaction_whose_blobs_are_deleted_meanwhile_closes_its_file_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="file_backed")
    segments = SegmentFiles(tmp_path, segment_bytes=64 * 1024)
    for _ in range(200):
        large = uuid.uuid4()
        put(segments, large, blob(40000))
        small = [uuid.uuid4() for _ in range(20)]
        for key in small:
            put(segments, key, blob(100))
        put(segments, uuid.uuid4(), blob(30000))  # seals the segment
        start = threading.Barrier(2)

        def delete_small(small: list[uuid.UUID] = small, start: threading.Barrier = start) -> None:
            start.wait(timeout=10)
            for key in small:
                segments.delete(key)

        other = threading.Thread(target=delete_small)
        other.start()
        start.wait(timeout=10)
        segments.delete(large)  # more than half dead: compacts, after punching the large blob out
        other.join(timeout=10)
        assert "could not compact" not in caplog.text
        for number in list(segments._index):
            segments.delete(uuid.UUID(int=number))


# -- concurrency ---------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_threads_putting_reading_and_deleting_their_own_keys_see_their_own_bytes(tmp_path: Path) -> None:
    segments = SegmentFiles(tmp_path, segment_bytes=16 * 1024)
    failures: list[Exception] = []
    start = threading.Barrier(4)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        mine: dict[uuid.UUID, bytes] = {}
        try:
            start.wait(timeout=10)
            for _ in range(400):
                action = rng.random()
                if action < 0.45 or not mine:
                    key = uuid.uuid4()
                    mine[key] = data = rng.randbytes(rng.choice((0, rng.randrange(1, 500), rng.randrange(1, 9000))))
                    put(segments, key, data, rng.randrange(1, 3))
                elif action < 0.75:
                    key = rng.choice(list(mine))
                    assert read(segments, key) == mine[key]
                else:
                    key = rng.choice(list(mine))
                    assert segments.delete(key)
                    del mine[key]
            for key, data in mine.items():
                assert read(segments, key) == data
            for key in mine:
                assert segments.delete(key)
        except (AssertionError, OSError, EOFError, LookupError) as error:
            failures.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=50)
    assert failures == []
    assert len(segments) == 0
    assert segment_files(tmp_path) == [] and segments.file_count == 0


# -- hole punching -------------------------------------------------------------------------------


def _punching_gives_blocks_back(directory: Path) -> bool:
    probe = directory / "probe"
    probe.write_bytes(os.urandom(256 * 1024))
    fd = os.open(probe, os.O_RDWR)
    try:
        os.fsync(fd)
        before = os.fstat(fd).st_blocks
        punch_hole(fd, 64 * 1024, 128 * 1024)
        return os.fstat(fd).st_blocks < before
    finally:
        os.close(fd)
        probe.unlink()


def test_deleting_a_large_blob_gives_its_blocks_back(tmp_path: Path) -> None:
    if not _punching_gives_blocks_back(tmp_path):
        pytest.skip("this filesystem (or platform) does not punch holes with fallocate")
    segments = SegmentFiles(tmp_path)
    before_key, middle, after_key = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    put(segments, before_key, blob(5000, 1))
    put(segments, middle, blob(64 * 1024, 2))
    put(segments, after_key, blob(5000, 3))
    (path,) = segment_files(tmp_path)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    blocks = os.stat(path).st_blocks
    segments.delete(middle)
    assert os.stat(path).st_blocks <= blocks - (60 * 1024) // 512
    assert read(segments, before_key) == blob(5000, 1)
    assert read(segments, after_key) == blob(5000, 3)


def test_a_blob_deleted_while_a_read_of_it_runs_is_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not _punching_gives_blocks_back(tmp_path):
        pytest.skip("this filesystem (or platform) does not punch holes with fallocate")
    segments = SegmentFiles(tmp_path)
    key = uuid.uuid4()
    put(segments, key, blob(64 * 1024, 4))
    put(segments, uuid.uuid4(), blob(5000, 5))  # keeps the segment: deleting `key` punches its range
    allocate = file_backed.segments.allocate

    def delete_while_reading(size: int) -> memoryview:  # the read has found the blob, not read it yet
        assert segments.delete(key)
        return allocate(size)

    monkeypatch.setattr(file_backed.segments, "allocate", delete_while_reading)
    assert read(segments, key) == blob(64 * 1024, 4)


def test_a_blob_of_whole_blocks_reserves_disk_blocks_ahead_without_growing_the_file(tmp_path: Path) -> None:
    if not _punching_gives_blocks_back(tmp_path):
        pytest.skip("this filesystem (or platform) does not allocate with fallocate")
    segments = SegmentFiles(tmp_path)
    put(segments, uuid.uuid4(), blob(64 * 1024))
    (path,) = segment_files(tmp_path)
    status = os.stat(path)
    assert status.st_size == segments.file_bytes == 64 * 1024
    assert status.st_blocks * 512 >= 1024 * 1024


def test_a_segment_reserves_no_blocks_beyond_its_size_limit(tmp_path: Path) -> None:
    if not _punching_gives_blocks_back(tmp_path):
        pytest.skip("this filesystem (or platform) does not allocate with fallocate")
    segments = SegmentFiles(tmp_path, segment_bytes=256 * 1024)
    put(segments, uuid.uuid4(), blob(64 * 1024))
    (path,) = segment_files(tmp_path)
    assert os.stat(path).st_blocks * 512 <= 256 * 1024 + 4096


# -- files removed, cut short or left behind -------------------------------------------------------


def test_a_blob_whose_segment_file_was_removed_is_not_found(segments: SegmentFiles, tmp_path: Path) -> None:
    key = uuid.uuid4()
    put(segments, key, blob(100))
    shutil.rmtree(tmp_path)
    with pytest.raises(BlobNotFoundError, match="removed"):
        segments.read(key)


def test_a_put_after_the_area_was_removed_raises_file_not_found(segments: SegmentFiles, tmp_path: Path) -> None:
    put(segments, uuid.uuid4(), blob(100))
    shutil.rmtree(tmp_path)
    with pytest.raises(FileNotFoundError):
        put(segments, uuid.uuid4(), blob(100))  # into the removed current segment
    with pytest.raises(FileNotFoundError):
        put(segments, uuid.uuid4(), blob(100))  # into a new segment of the removed directory


def test_a_segment_file_cut_short_raises_eof_on_read(segments: SegmentFiles, tmp_path: Path) -> None:
    key = uuid.uuid4()
    put(segments, key, blob(1000))
    os.truncate(segment_files(tmp_path)[0], 500)
    with pytest.raises(EOFError):
        segments.read(key)


def test_a_failed_write_at_the_end_is_cut_off_the_file(segments: SegmentFiles, tmp_path: Path) -> None:
    kept = uuid.uuid4()
    put(segments, kept, blob(100))
    not_contiguous = memoryview(bytearray(100))[::2]  # cannot be written: the write raises
    with pytest.raises(TypeError):
        segments.put(uuid.uuid4(), [not_contiguous], 50)
    assert segments.file_bytes == 100
    assert os.path.getsize(segment_files(tmp_path)[0]) == 100
    after = uuid.uuid4()
    put(segments, after, blob(30))
    assert read(segments, kept) == blob(100) and read(segments, after) == blob(30)


def test_close_forgets_every_blob_and_removes_the_files(segments: SegmentFiles, tmp_path: Path) -> None:
    keys = [uuid.uuid4() for _ in range(10)]
    for index, key in enumerate(keys):
        put(segments, key, blob(1000, index))
    assert len(segment_files(tmp_path)) > 1
    segments.close()
    assert segment_files(tmp_path) == []
    assert all(segments.read(key) is None for key in keys)
    with pytest.raises(FileNotFoundError, match="closed"):
        put(segments, uuid.uuid4(), blob(10))


def test_new_segment_files_delete_the_files_a_previous_owner_left(tmp_path: Path) -> None:
    first = SegmentFiles(tmp_path)
    put(first, uuid.uuid4(), blob(100))
    assert len(segment_files(tmp_path)) == 1  # left behind: `first` is never closed
    second = SegmentFiles(tmp_path)
    assert segment_files(tmp_path) == []
    assert second.file_count == 0


def test_remove_segment_files_removes_only_regular_seg_files_and_never_follows_a_link(tmp_path: Path) -> None:
    directory = tmp_path / SEGMENTS_DIRECTORY
    directory.mkdir()
    (directory / "00000001.seg").write_bytes(b"packed")
    (directory / "notes.txt").write_text("mine")
    (directory / "kept.seg").mkdir()
    outside = tmp_path / "outside.seg"
    outside.write_bytes(b"not in the area")
    (directory / "link.seg").symlink_to(outside)
    assert remove_segment_files(tmp_path) == 1
    assert sorted(entry.name for entry in directory.iterdir()) == ["kept.seg", "link.seg", "notes.txt"]
    assert outside.read_bytes() == b"not in the area"


def test_remove_segment_files_of_an_area_without_segments_removes_nothing(tmp_path: Path) -> None:
    assert remove_segment_files(tmp_path) == 0
    (tmp_path / SEGMENTS_DIRECTORY).write_text("a file, not the directory")
    assert remove_segment_files(tmp_path) == 0


def test_remove_segment_files_does_not_follow_a_linked_segments_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "00000001.seg").write_bytes(b"not ours")
    area = tmp_path / "area"
    area.mkdir()
    (area / SEGMENTS_DIRECTORY).symlink_to(elsewhere, target_is_directory=True)
    remove_segment_files(area)
    assert (elsewhere / "00000001.seg").read_bytes() == b"not ours"
