"""The ``fs_hardlink`` backend: one file per blob in sharded directories.

The blob of key ``K`` is the file ``<dir>/<K.hex[:2]>/<K.hex>``, in the
temporary area and in every persisted location alike, with one exception: an
evicted value whose blob is at most `PACKED_UP_TO` bytes (a spill, see
`file_backed.spilling`) is appended to a segment file of the temporary area
(`file_backed.segments`), which costs no ``open`` or rename per blob; persisting
it first writes its file in the temporary area. Every file is written
under a temporary name in its final directory (``.<K.hex>.<16 hex>.tmp``) and
renamed into place, so a final name always holds a whole blob; a failed write
removes its temporary file. Persist and register are hard links; across
filesystems (``EXDEV``) they fall back to a copy made the same way, counted in
`FsHardlinkBackend.copies`.

Crash-consistency protocol (see docs/durability.md): with ``fsync=True``, a
blob's data is fsynced before its first name in a persisted location exists
(before the hard link, or before the rename of a copy), and `sync_persisted`
makes the names durable: ``syncfs(2)`` of the location's filesystem on Linux,
else an fsync of every directory touched by a persist or delete since the last
sync. `sanitize_path` deletes only this library's temporary files, never
follows a symbolic link, and leaves every other entry alone.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from file_backed import BlobNotFoundError, Codec, ConfigError, hookimpl
from file_backed.blob import BlobSource, decode_payload, encode_blob, read_header, signing_key_bytes
from file_backed.codecs.base import Buffer
from file_backed.errors import CorruptBlobError
from file_backed.layout import SHARDS, is_temporary_name, key_of_blob_name, temporary_name
from file_backed.localfs import read_file, syncfs
from file_backed.ownership import (
    MARKERS,
    PERSISTED_MARKER,
    TEMPORARY_MARKER,
    claim_local,
    foreign_blobs_error,
    persisted_area_error,
    temporary_area_error,
)
from file_backed.segments import SEGMENTS_DIRECTORY, SegmentFiles, remove_segment_files
from file_backed.spilling import in_spill

__all__ = ["PACKED_UP_TO", "FsHardlinkBackend"]

logger = logging.getLogger("file_backed.fs_hardlink")

_IOV_MAX = 1024
_COPY_CHUNK = 1 << 20
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_FOREIGN_EXAMPLES = 5
#: Evicted values whose blobs are at most this many bytes go to segment files.
PACKED_UP_TO = 256 * 1024


class FsHardlinkBackend:
    """Backend plugin storing blobs as files.

    Options
    -------
    path:
        The temporary area. Default: a new temporary directory, removed by
        `shutdown` (when the store closes). A given directory is created if
        needed and never removed. The store claims it with a marker file
        (``.file_backed-temporary``) locked for its lifetime: a second store
        on the same directory gets a `ConfigError`, and a store that finds the
        marker unlocked (its previous owner crashed) deletes the blobs left
        there, which no handle can reach any more. A directory that holds
        blobs but no marker (blobs something else wrote), or that is a
        persisted location (``.file_backed-persisted``), is refused with a
        `ConfigError`; a directory with the marker cannot be tracked as a
        persisted location (see `file_backed.ownership`).
    fsync:
        When true (the default), a blob's data is fsynced before it gets a name
        in a persisted location, and `sync_persisted` makes persisted names
        durable (``syncfs`` where available, else an fsync of every touched
        directory). When false, nothing is fsynced and `sync_persisted` is a
        no-op: data survives a crash of the process, not of the machine.
    signing_key:
        Optional text (UTF-8) or bytes, at least 16 bytes. Every blob written
        carries an HMAC-SHA256 bound to its key, and every blob read must carry
        a valid one, checked before the codec sees a byte (`CorruptBlobError`
        otherwise). Use it for persisted locations others can write.

    Attributes
    ----------
    copies:
        How many persists and registers copied a blob because a hard link was
        impossible (the two directories are on different filesystems).

    cheap_writes_up_to:
        `PACKED_UP_TO`: a store evicting values whose blobs average no more
        writes them on the evicting thread (see `BackingStore`).

    Notes on thread safety: every hook may be called from any thread; blobs
    are immutable once renamed into place, and the counters and the set of
    directories awaiting a sync are guarded by a lock.
    """

    cheap_writes_up_to = PACKED_UP_TO

    def __init__(
        self,
        *,
        codec: Codec,
        path: str | os.PathLike[str] | None = None,
        fsync: bool = True,
        signing_key: str | bytes | None = None,
    ) -> None:
        if not isinstance(fsync, bool):
            raise ConfigError(f"fs_hardlink option fsync: expected true or false, got {fsync!r}")
        self.codec = codec
        self.fsync = fsync
        self._signing_key = signing_key_bytes(signing_key, option="fs_hardlink option signing_key")
        self._lock = threading.Lock()
        self._copies = 0
        self._unsynced: dict[Path, set[Path]] = {}
        self._reported_foreign: set[Path] = set()
        self._closed = threading.Event()
        self._owns_root = path is None
        if path is None:
            root = Path(tempfile.mkdtemp(prefix="file_backed-"))
        elif not isinstance(path, str | os.PathLike):
            raise ConfigError(f"fs_hardlink option path: expected a directory path, got {type(path).__name__}")
        elif not os.fspath(path):
            raise ConfigError("fs_hardlink option path: empty; give a directory (an empty path is not the current one)")
        else:
            root = Path(path).expanduser().absolute()
        if os.path.lexists(root / PERSISTED_MARKER):
            raise persisted_area_error(str(root), "fs_hardlink option path")
        self.root = self._prepare_directory(root)
        self._root_text = os.fspath(self.root)
        self._claim_fd, claimed_before = claim_local(self.root, "fs_hardlink option path")
        if claimed_before:
            self._collect_leftovers()
        else:
            self._refuse_foreign_blobs()
        self.sanitize_path(self.root)
        self._packed = SegmentFiles(self.root)

    def __repr__(self) -> str:
        signed = ", signed" if self._signing_key is not None else ""
        return f"FsHardlinkBackend({str(self.root)!r}, codec={self.codec.name!r}{signed})"

    @property
    def segments(self) -> SegmentFiles:
        """The segment files holding the small evicted values of the temporary area."""
        return self._packed

    @property
    def copies(self) -> int:
        """Persists and registers that had to copy instead of linking (``EXDEV``)."""
        with self._lock:
            return self._copies

    # -- temporary area ----------------------------------------------------------------

    @hookimpl
    def store(self, key: uuid.UUID, data: Any) -> int:
        buffers, size = encode_blob(self.codec, data, key=key, signing_key=self._signing_key)
        try:
            if size <= PACKED_UP_TO and in_spill():
                self._packed.put(key, buffers, size)
            else:
                _write_atomically(self._temporary_blob(key), buffers, fsync=False)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                errno.ENOENT, "the temporary area was removed while its store was open", str(self.root)
            ) from error
        return size

    @hookimpl
    def load(self, key: uuid.UUID) -> Any:
        try:
            blob = self._packed.read(key)
        except EOFError as error:
            raise CorruptBlobError(f"blob {key} ({self._packed.directory}): {error}") from None
        if blob is not None:
            source = BlobSource(key, self._packed.directory)
        else:
            path = self._temporary_blob(key)
            source = BlobSource(key, path)
            blob = _read_blob_file(path, key)
        header = read_header(blob, source=source)
        if blob.nbytes - header.size != header.payload_length:
            raise CorruptBlobError(
                f"{source}: the file holds {blob.nbytes - header.size} payload bytes, its header says "
                f"{header.payload_length} (truncated or extended after it was written)"
            )
        return decode_payload(
            self.codec, header, blob[header.size :], source=source, key=key, signing_key=self._signing_key
        )

    @hookimpl
    def blob_size(self, key: uuid.UUID) -> int:
        size = self._packed.size(key)
        if size is not None:
            return size
        try:
            return os.stat(self._temporary_blob(key), follow_symlinks=False).st_size
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob for key {key} at {self._temporary_blob(key)}") from None

    @hookimpl
    def delete(self, key: uuid.UUID) -> None:
        if self._packed.delete(key):
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temporary_blob(key))

    # -- persisted locations -----------------------------------------------------------

    @hookimpl
    def prepare_path(self, location: object) -> Path:
        if not isinstance(location, str | os.PathLike):
            raise TypeError(f"an fs_hardlink location is a directory path, not {type(location).__name__}")
        if not os.fspath(location):
            raise ConfigError("an fs_hardlink location is a directory path, not an empty string")
        root = Path(os.fspath(location)).expanduser().absolute()
        if os.path.lexists(root / TEMPORARY_MARKER):
            raise temporary_area_error(str(root))
        root = self._prepare_directory(root)
        _mark_persisted(root)
        return root

    def _prepare_directory(self, root: Path) -> Path:
        """Create `root` and its shard directories (durably with fsync)."""
        root = root.expanduser().absolute()
        created_root = not root.exists()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise NotADirectoryError(
                errno.ENOTDIR, "an fs_hardlink location must be a directory, but a file is there", str(root)
            ) from None
        except NotADirectoryError:
            raise NotADirectoryError(
                errno.ENOTDIR, "cannot create this fs_hardlink location: part of its path is a file", str(root)
            ) from None
        except OSError as error:
            raise _explained(error, "cannot create this fs_hardlink location") from None
        created_shard = False
        for shard in SHARDS:
            shard_path = root / shard
            try:
                os.mkdir(shard_path)
                created_shard = True
            except FileExistsError:
                mode = os.lstat(shard_path).st_mode
                if not stat.S_ISDIR(mode):
                    raise NotADirectoryError(
                        errno.ENOTDIR,
                        f"fs_hardlink expects its shard directory here, but found {_kind(mode)}",
                        str(shard_path),
                    ) from None
            except OSError as error:
                raise _explained(error, "cannot create the shard directories of this fs_hardlink location") from None
        if self.fsync and created_shard:
            _fsync_directory(root)
            if created_root:
                _fsync_directory(root.parent)
        return root

    @hookimpl
    def sanitize_path(self, path: Path) -> list[uuid.UUID]:
        keys: list[uuid.UUID] = []
        foreign: list[str] = []
        own = _TEMPORARY_AREA_ENTRIES if path == self.root else _LOCATION_ENTRIES
        with os.scandir(path) as top:
            foreign.extend(entry.name for entry in top if entry.name not in own)
        for shard in SHARDS:
            shard_path = path / shard
            try:
                mode = os.lstat(shard_path).st_mode
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(mode):
                foreign.append(shard)
                continue
            with os.scandir(shard_path) as entries:
                for entry in entries:
                    name = entry.name
                    regular = entry.is_file(follow_symlinks=False)
                    key = key_of_blob_name(shard, name) if regular else None
                    if key is not None:
                        keys.append(key)
                        continue
                    if regular and is_temporary_name(shard, name):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                        continue
                    foreign.append(f"{shard}/{name}")
        if foreign:
            self._report_foreign(path, foreign)
        return keys

    @hookimpl
    def persist(self, dest_path: Path, key: uuid.UUID) -> None:
        source = self._blob_path(self.root, key)
        packed = self._packed.read(key)
        if packed is not None:  # give it a file of its own, then link that
            _write_atomically(source, [packed], fsync=self.fsync)
            self._packed.delete(key)
        elif self.fsync:
            try:
                _fsync_file(source)
            except FileNotFoundError:
                raise BlobNotFoundError(f"no blob for key {key} at {source}") from None
        target = self._blob_path(dest_path, key)
        self._link(source, target, key, durable=self.fsync)
        self._touched(dest_path, target.parent)

    @hookimpl
    def register(self, src_path: Path, key: uuid.UUID) -> None:
        source = self._blob_path(src_path, key)
        _require_regular(source, key)
        self._link(source, self._blob_path(self.root, key), key, durable=False)

    @hookimpl
    def delete_persisted(self, path: Path, key: uuid.UUID) -> None:
        target = self._blob_path(path, key)
        try:
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISREG(mode):
            raise BlobNotFoundError(
                f"{target} is {_kind(mode)}, not a blob of this library; fs_hardlink leaves it alone"
            )
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
        self._touched(path, target.parent)

    @hookimpl
    def sync_persisted(self, path: Path) -> None:
        if not self.fsync:
            return
        with self._lock:
            touched = self._unsynced.pop(path, set())
        try:
            if not syncfs(path):
                for directory in sorted(touched):
                    _fsync_directory(directory)
        except BaseException:
            with self._lock:
                self._unsynced.setdefault(path, set()).update(touched)
            raise

    @hookimpl
    def shutdown(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._packed.close()
        os.close(self._claim_fd)  # releases the claim
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def _refuse_foreign_blobs(self) -> None:
        """Raise `ConfigError` (releasing the fresh claim) when the newly claimed
        area holds blobs: no store of this area wrote them."""
        count = sum(1 for _ in self._blob_entries()) + _count_segment_files(self.root)
        if count:
            os.close(self._claim_fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / TEMPORARY_MARKER)
            raise foreign_blobs_error(str(self.root), "fs_hardlink option path", count)

    def _blob_entries(self) -> Iterator[os.DirEntry[str]]:
        """The regular files named as blobs in the temporary area's shards."""
        for shard in SHARDS:
            try:
                entries = os.scandir(self.root / shard)
            except (FileNotFoundError, NotADirectoryError):
                continue
            with entries:
                for entry in entries:
                    if key_of_blob_name(shard, entry.name) and entry.is_file(follow_symlinks=False):
                        yield entry

    def _collect_leftovers(self) -> None:
        """Delete the blobs that a crashed owner of this temporary area left."""
        removed = 0
        for entry in self._blob_entries():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
            removed += 1
        removed += remove_segment_files(self.root)
        if removed:
            logger.info("%s: deleted %d blobs left by a previous store of this temporary area", self.root, removed)

    # -- helpers -------------------------------------------------------------------------

    def _temporary_blob(self, key: uuid.UUID) -> str:
        """The file of `key`'s blob in the temporary area (a string: the hot path)."""
        name = key.hex
        return f"{self._root_text}/{name[:2]}/{name}"

    @staticmethod
    def _blob_path(root: Path, key: uuid.UUID) -> Path:
        name = key.hex
        return root / name[:2] / name

    def _touched(self, location: Path, directory: Path) -> None:
        """Record that an entry of `directory` (in `location`) changed and awaits a sync."""
        if self.fsync:
            with self._lock:
                self._unsynced.setdefault(location, set()).add(directory)

    def _report_foreign(self, path: Path, names: list[str]) -> None:
        with self._lock:
            if path in self._reported_foreign:
                return
            self._reported_foreign.add(path)
        examples = ", ".join(names[:_FOREIGN_EXAMPLES]) + (", ..." if len(names) > _FOREIGN_EXAMPLES else "")
        logger.warning("%s: left %d entries alone that are not blobs of this library (%s)", path, len(names), examples)

    def _link(self, source: Path, target: Path, key: uuid.UUID, *, durable: bool) -> None:
        """Make `target` the same blob as `source`: a hard link, or a copy across
        filesystems (fsynced before its rename when `durable`). A regular file
        at `target` that is not `source` is a stale blob of the same key (left
        by a crashed process) and is replaced atomically; anything else there
        is left alone and raises `FileExistsError`. Other link errors raise."""
        try:
            os.link(source, target, follow_symlinks=False)
            return
        except FileExistsError:
            pass
        except FileNotFoundError:
            if not os.path.lexists(source):
                raise BlobNotFoundError(f"no blob for key {key} at {source}") from None
            raise FileNotFoundError(
                errno.ENOENT, "the shard directory is missing; was the location removed after tracking?", str(target)
            ) from None
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            self._copy(source, target, durable=durable)
            return
        mode = os.lstat(target).st_mode
        if not stat.S_ISREG(mode):
            raise FileExistsError(
                errno.EEXIST, f"{_kind(mode)} named like blob {key} is in the way; left alone", str(target)
            )
        if os.path.samefile(source, target):
            return
        temporary = _temporary_name(target)
        try:
            os.link(source, temporary, follow_symlinks=False)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            self._copy(source, target, durable=durable)
            return
        os.replace(temporary, target)

    def _copy(self, source: Path, target: Path, *, durable: bool) -> None:
        _copy_atomically(source, target, fsync=durable)
        with self._lock:
            self._copies += 1


_LOCATION_ENTRIES = frozenset(SHARDS) | MARKERS
_TEMPORARY_AREA_ENTRIES = _LOCATION_ENTRIES | {SEGMENTS_DIRECTORY}


def _read_blob_file(path: str, key: uuid.UUID) -> memoryview:
    """The blob file at `path`, read into an aligned buffer or, when it is large
    and has no other link (not persisted or registered), mapped copy-on-write
    (`file_backed.localfs.read_file`); never follows a symbolic link."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
    except FileNotFoundError:
        raise BlobNotFoundError(f"no blob for key {key} at {path}") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise BlobNotFoundError(f"{path} is a symbolic link, which fs_hardlink never follows") from None
        raise
    try:
        return read_file(fd, private=True)
    finally:
        os.close(fd)


def _count_segment_files(root: Path) -> int:
    try:
        with os.scandir(root / SEGMENTS_DIRECTORY) as entries:
            return sum(1 for entry in entries if entry.is_file(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return 0


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a file"
    return "a special file"


def _explained(error: OSError, message: str) -> OSError:
    """A copy of `error` (same type and errno) whose message says what failed."""
    return type(error)(error.errno, f"{message}: {error.strerror}", error.filename)


def _require_regular(path: Path, key: uuid.UUID) -> None:
    """Raise `BlobNotFoundError` unless `path` is a regular file (a symbolic link
    is never followed)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise BlobNotFoundError(f"no blob for key {key} at {path}") from None
    if not stat.S_ISREG(mode):
        raise BlobNotFoundError(
            f"{path} is {_kind(mode)}, not a blob of this library; fs_hardlink leaves it alone and never follows it"
        )


def _temporary_name(final: str | Path) -> str:
    directory, name = os.path.split(final)
    return os.path.join(directory, temporary_name(name))


def _write_atomically(final: str | Path, buffers: Sequence[Buffer], *, fsync: bool) -> None:
    """Write `buffers` to a temporary file beside `final`, fsync it when asked,
    and rename it to `final`. On any failure the temporary file is removed."""
    temporary = _temporary_name(final)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o644)
    try:
        try:
            _write_all(fd, buffers)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _copy_atomically(source: Path, target: Path, *, fsync: bool) -> None:
    """Copy the regular file `source` to `target` the way `_write_atomically`
    writes (never following a symbolic link at `source`)."""
    try:
        fd = os.open(source, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
    except FileNotFoundError:
        raise BlobNotFoundError(f"no blob at {source}") from None
    with open(fd, "rb") as reader:
        temporary = _temporary_name(target)
        out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o644)
        try:
            with open(out, "wb") as writer:
                shutil.copyfileobj(reader, writer, _COPY_CHUNK)
                writer.flush()
                if fsync:
                    os.fsync(writer.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


def _write_all(fd: int, buffers: Sequence[Buffer]) -> None:
    """Write every buffer, in order, with as few system calls as possible."""
    views = [memoryview(buffer).cast("B") for buffer in buffers if memoryview(buffer).nbytes]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        views = list(_skip(views, written))


def _skip(views: list[memoryview], count: int) -> Iterator[memoryview]:
    for index, view in enumerate(views):
        if count >= view.nbytes:
            count -= view.nbytes
            continue
        yield view[count:]
        yield from views[index + 1 :]
        return


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    """Make the entries (names) of the directory `path` durable."""
    fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mark_persisted(root: Path) -> None:
    """Create the persisted-location marker in `root` unless it is there. A
    location nobody may write to (read-only, registered from) needs none."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_NOFOLLOW
    try:
        os.close(os.open(root / PERSISTED_MARKER, flags, 0o644))
    except FileExistsError:
        pass
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return
        raise _explained(error, "cannot mark this fs_hardlink location as persisted") from None
