"""Small blobs of a private temporary area packed into append-only segment files.

Writing a file per blob costs an ``open`` (and a rename) per write and an
``open`` per read, which for blobs of a few KiB costs more than the data. A
`SegmentFiles` keeps such blobs in a few large files instead: a write appends
the blob at the end of the current segment with one ``pwritev``, a read is one
``preadv`` into an aligned buffer from `file_backed.buffers.allocate`.

Only a temporary area that one store owns may use it: the index (key →
segment, offset, length) lives in this object's memory, so the blobs are
readable by this object only, and a crash leaves segment files that the next
owner of the area deletes (`SEGMENTS_DIRECTORY` holds nothing else). Deleting a
blob marks its bytes dead and gives the whole filesystem blocks it spans back
at once (hole punching, Linux) unless a read of its segment is running then
(the backend may delete a blob that is being loaded: ``fs_hardlink`` moves a
packed blob to a file of its own when it is persisted; its blocks then come
back when the segment is compacted or removed); a segment whose bytes are all
dead is removed, and a segment with more than half its bytes dead is
compacted (its live blobs are appended to the current segment) by the `delete`
that crosses that line (the current segment once it holds 1 MiB), so the files
hold at most about twice the live bytes plus 1 MiB. Blobs of whole blocks make the current
segment reserve its disk blocks up to `_PREALLOCATE` bytes ahead of its end
(``fallocate``, keeping the file's size; Linux): appending into reserved
blocks skips the filesystem's per-page allocation (a 64 KiB append 21.8 →
17.9 µs on ext4 here). A segment keeps what it reserved past its last blob
(at most `_PREALLOCATE` bytes, also after a failed write, which the next
write then uses) until it is removed. Every segment file stays open while it
holds blobs: one file descriptor per `DEFAULT_SEGMENT_BYTES` of packed blobs.

Notes on thread safety: every method may be called from any thread. The index
and the segments' accounting are guarded by one lock, never held across I/O;
writes to one segment reserve disjoint ranges before they write, and a segment
file stays open while a read of it runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import logging
import os
import stat
import sys
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from file_backed.buffers import allocate
from file_backed.codecs.base import Buffer
from file_backed.errors import BlobNotFoundError

__all__ = ["SEGMENTS_DIRECTORY", "SegmentFiles"]

#: The directory of a temporary area that holds its segment files.
SEGMENTS_DIRECTORY = "segments"
#: A segment is closed to new blobs once it holds this many bytes.
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024

#: The current segment is compacted (and a new one started) once it is more than
#: half dead and at least this large.
_COMPACT_ACTIVE_FROM = 1024 * 1024
#: A deleted blob at least this large gives its disk blocks back at once.
_PUNCH_FROM = 8192
_IOV_MAX = 1024
#: How far ahead of its end the current segment reserves disk blocks.
_PREALLOCATE = 1024 * 1024
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_BLOCK = 4096
_ZEROS = bytes(_BLOCK)
logger = logging.getLogger("file_backed")
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class _Segment:
    """One segment file and its accounting (guarded by the owner's lock)."""

    __slots__ = (
        "allocated",
        "blobs",
        "compacting",
        "dead",
        "end",
        "fd",
        "path",
        "reading",
        "retired",
        "users",
        "writing",
    )

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.end = 0  # bytes reserved so far; the next blob goes here
        self.allocated = 0  # disk blocks reserved (fallocate) from the start up to here
        self.dead = 0  # bytes of deleted (or failed) blobs
        self.blobs: dict[int, tuple[int, int]] = {}  # key (its `int`) -> (offset, length)
        self.users = 0  # reads, writes and compactions using `fd`
        self.reading = 0  # reads among them: no deleted blob's range is punched meanwhile
        self.writing = 0  # writes into reserved ranges not finished yet
        self.compacting = False
        self.retired = False  # unlinked; `fd` closes when the last user is done


class SegmentFiles:
    """The packed blobs of one temporary area, in ``<root>/segments``.

    `root` must be a directory that only the calling store uses (a claimed
    temporary area); ``<root>/segments`` is created, and anything in it is
    deleted first (a previous owner's segments: nothing can read them).
    """

    def __init__(self, root: Path, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.directory = root / SEGMENTS_DIRECTORY
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        # Keyed by the key's `int`, as are the segments' blobs: a UUID hashes in
        # Python (`UUID.__hash__`, ~0.13 µs), an int in C, and a load looks a
        # key up twice.
        self._index: dict[int, _Segment] = {}
        self._active: _Segment | None = None
        self._segments: list[_Segment] = []
        self._serial = 0
        self._closed = False
        # Segments more than half dead when they were closed to new blobs, each
        # marked compacting and counted as a user until compacted.
        self._to_compact: list[_Segment] = []
        try:
            os.mkdir(self.directory, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(self.directory).st_mode):
                raise NotADirectoryError(
                    errno.ENOTDIR, "the segments directory is not a directory (never followed)", str(self.directory)
                ) from None
        remove_segment_files(root)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, uuid.UUID) and key.int in self._index

    def __len__(self) -> int:
        return len(self._index)

    @property
    def file_count(self) -> int:
        """The segment files that exist now."""
        with self._lock:
            return sum(1 for segment in self._segments if not segment.retired)

    @property
    def file_bytes(self) -> int:
        """The bytes the segment files take (live and dead blobs)."""
        with self._lock:
            return sum(segment.end for segment in self._segments if not segment.retired)

    def put(self, key: uuid.UUID, buffers: Sequence[Buffer], size: int) -> None:
        """Append the blob of `key` (`buffers`, `size` bytes in all). Readable by
        `read` once this returns; on failure nothing is recorded and the
        exception propagates."""
        with self._lock:
            segment, offset, ahead = self._reserve_locked(size)
        try:
            self._check_linked(segment)
            _write_reserved(segment.fd, buffers, size, offset, ahead)
        except BaseException:
            with self._lock:
                self._abandon_locked(segment, offset, size)
            raise
        with self._lock:
            segment.writing -= 1
            if not self._closed:
                number = key.int
                segment.blobs[number] = (offset, size)
                self._index[number] = segment
            self._release_locked(segment)
        self._compact_pending()

    def size(self, key: uuid.UUID) -> int | None:
        """The length of `key`'s blob, None when it is not packed here."""
        with self._lock:
            number = key.int
            segment = self._index.get(number)
            return None if segment is None else segment.blobs[number][1]

    def read(self, key: uuid.UUID) -> memoryview | None:
        """`key`'s blob in a buffer from `file_backed.buffers.allocate`, or None
        when it is not packed here. Raises `EOFError` when the segment file was
        cut short."""
        lock = self._lock
        lock.acquire()  # not `with`: on every load (a third of the cost of a section here)
        try:
            number = key.int
            segment = self._index.get(number)
            if segment is None:
                return None
            offset, size = segment.blobs[number]
            segment.users += 1
            segment.reading += 1
        finally:
            lock.release()
        try:
            self._check_linked(segment)
            buffer = allocate(size)
            count = os.preadv(segment.fd, [buffer], offset)
            if count == size:
                return buffer
            return _pread_exactly(segment.fd, buffer, offset, count)  # a short read: read the rest
        except FileNotFoundError as error:
            raise BlobNotFoundError(f"no blob for key {key}: {error}") from None
        finally:
            lock.acquire()
            try:
                segment.reading -= 1
                self._release_locked(segment)
            finally:
                lock.release()

    def delete(self, key: uuid.UUID) -> bool:
        """Forget `key`'s blob; False when it was not packed here. Removes a
        segment left without live blobs, and compacts a full one that is more
        than half dead (on this thread)."""
        with self._lock:
            number = key.int
            segment = self._index.pop(number, None)
            if segment is None:
                return False
            offset, size = segment.blobs.pop(number)
            segment.dead += _span(size)
            compact = not segment.compacting and segment.blobs and 2 * segment.dead > segment.end
            if compact and segment is self._active:
                compact = segment.end >= _COMPACT_ACTIVE_FROM
                if compact:
                    self._active = None  # full enough: the next write starts a new segment
            if compact:
                segment.compacting = True
                segment.users += 1  # `_compact` releases it
            else:
                self._maybe_retire_locked(segment)
            punch = size >= _PUNCH_FROM and not segment.retired and not segment.reading
            if punch:
                segment.users += 1
        if punch:
            try:
                punch_hole(segment.fd, offset, _span(size))
            finally:
                with self._lock:
                    self._release_locked(segment)
        if compact:
            self._compact_reporting(segment)
        self._compact_pending()
        return True

    def close(self) -> None:
        """Forget every blob and remove the segment files."""
        with self._lock:
            self._closed = True
            self._index.clear()
            segments, self._segments, self._active = self._segments, [], None
            for segment in segments:
                segment.blobs.clear()
                self._retire_locked(segment)

    def _check_linked(self, segment: _Segment) -> None:
        """Raise `FileNotFoundError` when something else removed `segment`'s file
        (the temporary area was deleted under its store): its blobs are gone. A
        segment this object retired stays readable through its open file."""
        if os.fstat(segment.fd).st_nlink == 0:
            with self._lock:
                if segment.retired:
                    return
                if segment is self._active:
                    self._active = None
            raise FileNotFoundError(errno.ENOENT, "the segment file was removed", str(segment.path))

    def _reserve_locked(self, size: int) -> tuple[_Segment, int, int]:
        """Reserve `size` bytes at the end of the current segment (starting a new
        one when they do not fit); the caller writes them, then releases.
        Returns the segment, the offset, and how many bytes from the offset
        on the caller reserves disk blocks for before it writes (0: none)."""
        span = _span(size)
        segment = self._active
        if segment is None or (segment.end and _aligned(segment.end, span) + span > self.segment_bytes):
            if segment is not None:
                self._active = None
                self._close_to_new_blobs_locked(segment)
            segment = self._active = self._new_segment_locked()
        offset = _aligned(segment.end, span)
        segment.dead += offset - segment.end  # the padding before a block-aligned blob
        end = segment.end = offset + span
        segment.users += 1
        segment.writing += 1
        ahead = 0
        if span >= _PUNCH_FROM and end > segment.allocated:
            segment.allocated = max(end, min(offset + _PREALLOCATE, self.segment_bytes))
            ahead = segment.allocated - offset
        return segment, offset, ahead

    def _close_to_new_blobs_locked(self, segment: _Segment) -> None:
        """`segment` takes no more blobs: remove it when nothing lives in it, queue
        it for compaction when more than half of it is dead."""
        self._maybe_retire_locked(segment)
        if not segment.retired and not segment.compacting and segment.blobs and 2 * segment.dead > segment.end:
            segment.compacting = True
            segment.users += 1
            self._to_compact.append(segment)

    def _compact_pending(self) -> None:
        """Compact the segments queued by `_close_to_new_blobs_locked`."""
        while self._to_compact:
            with self._lock:
                if not self._to_compact:
                    return
                segment = self._to_compact.pop()
            self._compact_reporting(segment)

    def _compact_reporting(self, segment: _Segment) -> None:
        try:
            self._compact(segment)
        except OSError as error:  # the write or delete that asked is done; the space is reclaimed later
            logger.warning("%s: could not compact %s: %r", self.directory, segment.path.name, error)

    def _new_segment_locked(self) -> _Segment:
        if self._closed:
            raise FileNotFoundError(f"{self.directory}: the segment files were closed")
        self._serial += 1
        path = self.directory / f"{self._serial:08d}.seg"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600)
        segment = _Segment(path, fd)
        self._segments.append(segment)
        return segment

    def _abandon_locked(self, segment: _Segment, offset: int, size: int) -> None:
        """A write of `size` bytes at `offset` failed: give its range back (cut
        the file there when it is the last one reserved), else count it dead."""
        segment.writing -= 1
        if segment.end == offset + _span(size) and not segment.retired:
            segment.end = offset
            with contextlib.suppress(OSError):
                os.ftruncate(segment.fd, offset)
        else:
            segment.dead += _span(size)
        self._maybe_retire_locked(segment)
        self._release_locked(segment)

    def _maybe_retire_locked(self, segment: _Segment) -> None:
        """Remove `segment` once no blob lives in it and no write to it runs (the
        current segment too: the next write starts a new one)."""
        if not segment.blobs and not segment.writing and segment.dead >= segment.end:
            if segment is self._active:
                self._active = None
            self._retire_locked(segment)
            with contextlib.suppress(ValueError):
                self._segments.remove(segment)

    @staticmethod
    def _retire_locked(segment: _Segment) -> None:
        if segment.retired:
            return
        segment.retired = True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(segment.path)
        if not segment.users:
            os.close(segment.fd)

    @staticmethod
    def _release_locked(segment: _Segment) -> None:
        """A read or write of `segment` is done: close a retired segment's file
        after its last user."""
        segment.users -= 1
        if segment.retired and not segment.users:
            os.close(segment.fd)

    def _compact(self, segment: _Segment) -> None:
        """Move the live blobs of `segment` (marked compacting, with a user count
        taken for this call) to the current segment, then remove it."""
        with self._lock:
            moving = [] if segment.retired or self._closed else list(segment.blobs.items())
        try:
            for number, (offset, size) in moving:
                data = _pread_exactly(segment.fd, memoryview(bytearray(size)), offset)
                with self._lock:
                    if segment.blobs.get(number) != (offset, size):
                        continue  # deleted meanwhile
                    target, target_offset, ahead = self._reserve_locked(size)
                try:
                    _write_reserved(target.fd, [data], size, target_offset, ahead)
                except BaseException:
                    with self._lock:
                        self._abandon_locked(target, target_offset, size)
                    raise
                with self._lock:
                    target.writing -= 1
                    if segment.blobs.get(number) == (offset, size) and self._index.get(number) is segment:
                        del segment.blobs[number]
                        segment.dead += _span(size)
                        target.blobs[number] = (target_offset, size)
                        self._index[number] = target
                    else:
                        target.dead += _span(size)
                        self._maybe_retire_locked(target)
                    self._release_locked(target)
        finally:
            with self._lock:
                segment.compacting = False
                self._maybe_retire_locked(segment)
                self._release_locked(segment)


def remove_segment_files(root: Path) -> int:
    """Delete the segment files in ``<root>/segments`` (a crashed owner's);
    returns how many there were. Never follows a symbolic link."""
    directory = root / SEGMENTS_DIRECTORY
    removed = 0
    try:
        if not stat.S_ISDIR(os.lstat(directory).st_mode):
            return 0
        entries = os.scandir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    with entries:
        for entry in entries:
            if entry.name.endswith(".seg") and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                removed += 1
    return removed


def _span(size: int) -> int:
    """The bytes a blob of `size` takes in a segment: blobs from `_PUNCH_FROM`
    on take whole filesystem blocks, so deleting one gives all of them back."""
    return size if size < _PUNCH_FROM else _block_ceiling(size)


def _padding(size: int) -> bytes:
    """The zero bytes that fill a blob of `size` up to its span."""
    return _ZEROS[: _span(size) - size]


def _aligned(end: int, span: int) -> int:
    """Where a blob taking `span` bytes starts when the segment ends at `end`."""
    return end if span < _PUNCH_FROM else _block_ceiling(end)


def _block_ceiling(offset: int) -> int:
    """`offset` rounded up to a whole filesystem block."""
    return -(-offset // _BLOCK) * _BLOCK


def preallocate(fd: int, offset: int, size: int) -> None:
    """Reserve the disk blocks of ``[offset, offset + size)`` of the file `fd`
    without changing its size (Linux ``fallocate`` with
    ``FALLOC_FL_KEEP_SIZE``); best effort: nothing happens where that is
    unsupported or the filesystem has no room (the write then finds out)."""
    call = _libc_fallocate()
    if call is not None:
        call(fd, _FALLOC_FL_KEEP_SIZE, ctypes.c_int64(offset), ctypes.c_int64(size))


def punch_hole(fd: int, offset: int, size: int) -> None:
    """Give the whole filesystem blocks within ``[offset, offset + size)`` of the
    file `fd` back to the filesystem (Linux ``fallocate`` with
    ``FALLOC_FL_PUNCH_HOLE``); the range reads as zeros afterwards. Does
    nothing where that is unsupported."""
    call = _libc_fallocate()
    start = _block_ceiling(offset)
    end = (offset + size) // _BLOCK * _BLOCK
    if call is None or end <= start:
        return
    call(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, ctypes.c_int64(start), ctypes.c_int64(end - start))


@functools.cache
def _libc_fallocate() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    call.restype = ctypes.c_int
    return call


def _write_reserved(fd: int, buffers: Sequence[Buffer], size: int, offset: int, ahead: int) -> None:
    """Write a blob of `size` bytes (`buffers`, then the padding to its span)
    into the range `SegmentFiles._reserve_locked` gave at `offset`, reserving
    the disk blocks of the `ahead` bytes from there first."""
    if ahead:
        preallocate(fd, offset, ahead)
    _pwrite_all(fd, [*buffers, _padding(size)], offset, _span(size))


def _pwrite_all(fd: int, buffers: Sequence[Buffer], offset: int, size: int) -> None:
    """Write `buffers` (`size` bytes in all) at `offset`: one ``pwritev`` unless
    the system writes less."""
    try:
        if len(buffers) <= _IOV_MAX and os.pwritev(fd, buffers, offset) == size:
            return
    except BufferError:
        pass  # a buffer that is not contiguous: the views below raise the usual TypeError
    views = [view for view in (memoryview(buffer).cast("B") for buffer in buffers) if view.nbytes]
    while views:
        written = os.pwritev(fd, views[:_IOV_MAX], offset)
        offset += written
        while views and written >= views[0].nbytes:
            written -= views[0].nbytes
            views.pop(0)
        if written:
            views[0] = views[0][written:]


def _pread_exactly(fd: int, buffer: memoryview, offset: int, filled: int = 0) -> memoryview:
    """Fill `buffer` from `offset` of the file `fd`, its first `filled` bytes
    being read already. Raises `EOFError` when the file ends first."""
    size = buffer.nbytes
    while filled < size:
        count = os.preadv(fd, [buffer[filled:]], offset + filled)
        if not count:
            raise EOFError(f"segment file ends {size - filled} bytes early")
        filled += count
    return buffer
