"""The ``fs_hardlink`` backend: one file per blob in sharded directories.

The blob of key ``K`` is the file ``<dir>/<K.hex[:2]>/<K.hex>``, in the
temporary area and in every persisted location alike. Writes go to a temporary
name in the same directory (``.<K.hex>.<random>.tmp``) and are renamed into
place, so a final name always holds a whole blob. Persist and register are hard
links; across filesystems they fall back to a copy made the same way.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import logging
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from file_backed import BlobNotFoundError, Codec, hookimpl
from file_backed.blob import FIXED_HEADER_SIZE, decode_payload, encode_blob, read_header
from file_backed.codecs.base import Buffer

__all__ = ["FsHardlinkBackend"]

logger = logging.getLogger("file_backed.fs_hardlink")

_SHARDS = tuple(f"{i:02x}" for i in range(256))
_BLOB_NAME = re.compile(r"[0-9a-f]{32}")
_TEMP_NAME = re.compile(r"\.([0-9a-f]{32})\.[0-9a-f]{16}\.tmp")
_IOV_MAX = 1024


class FsHardlinkBackend:
    """Backend plugin storing blobs as files.

    Options
    -------
    path:
        The temporary area. Default: a new temporary directory, removed by
        `shutdown` (when the store closes). A given directory is created if
        needed and never removed; blobs a crashed process left there are kept.
    fsync:
        When true (the default), `sync_persisted` makes persisted locations
        durable (``syncfs`` where available, else ``sync``) and copies made
        across filesystems are fsynced before they are renamed into place.
    """

    def __init__(self, *, codec: Codec, path: str | os.PathLike[str] | None = None, fsync: bool = True) -> None:
        self.codec = codec
        self.fsync = bool(fsync)
        self._owns_root = path is None
        self.root = Path(tempfile.mkdtemp(prefix="file_backed-")) if path is None else Path(path).expanduser()
        self.root = self.prepare_path(self.root)
        self.sanitize_path(self.root)
        self._closed = threading.Event()

    def __repr__(self) -> str:
        return f"FsHardlinkBackend({str(self.root)!r}, codec={self.codec.name!r})"

    # -- temporary area ----------------------------------------------------------------

    @hookimpl
    def store(self, key: uuid.UUID, data: Any) -> int:
        buffers, size = encode_blob(self.codec, data)
        _write_atomically(self._blob_path(self.root, key), buffers, fsync=False)
        return size

    @hookimpl
    def load(self, key: uuid.UUID) -> Any:
        path = self._blob_path(self.root, key)
        source = f"blob {key} ({path})"
        try:
            file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob for key {key} at {path}") from None
        with file:
            size = os.fstat(file.fileno()).st_size
            head = file.read(min(size, FIXED_HEADER_SIZE + 255))
            header = read_header(head, source=source)
            payload = bytearray(size - header.size)
            view = memoryview(payload)
            already = len(head) - header.size
            view[:already] = head[header.size :]
            _read_into(file, view[already:])
        return decode_payload(self.codec, header, memoryview(payload), source=source)

    @hookimpl
    def delete(self, key: uuid.UUID) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._blob_path(self.root, key))

    # -- persisted locations -----------------------------------------------------------

    @hookimpl
    def prepare_path(self, location: object) -> Path:
        if not isinstance(location, str | os.PathLike):
            raise TypeError(f"an fs_hardlink location is a directory path, not {type(location).__name__}")
        root = Path(os.fspath(location)).expanduser().absolute()
        root.mkdir(parents=True, exist_ok=True)
        for shard in _SHARDS:
            with contextlib.suppress(FileExistsError):
                os.mkdir(root / shard)
        return root

    @hookimpl
    def sanitize_path(self, path: Path) -> list[uuid.UUID]:
        keys: list[uuid.UUID] = []
        foreign = 0
        for shard in _SHARDS:
            try:
                entries = os.scandir(path / shard)
            except FileNotFoundError:
                continue
            with entries:
                for entry in entries:
                    name = entry.name
                    if _BLOB_NAME.fullmatch(name) and name.startswith(shard) and entry.is_file(follow_symlinks=False):
                        keys.append(uuid.UUID(hex=name))
                    elif _TEMP_NAME.fullmatch(name) and entry.is_file(follow_symlinks=False):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                    else:
                        foreign += 1
        if foreign:
            logger.info("%s: left %d entries alone that are not blobs of this library", path, foreign)
        return keys

    @hookimpl
    def persist(self, dest_path: Path, key: uuid.UUID) -> None:
        self._link(self._blob_path(self.root, key), self._blob_path(dest_path, key), key)

    @hookimpl
    def register(self, src_path: Path, key: uuid.UUID) -> None:
        self._link(self._blob_path(src_path, key), self._blob_path(self.root, key), key)

    @hookimpl
    def delete_persisted(self, path: Path, key: uuid.UUID) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._blob_path(path, key))

    @hookimpl
    def sync_persisted(self, path: Path) -> None:
        if self.fsync:
            _sync_filesystem(path)

    @hookimpl
    def shutdown(self) -> None:
        if self._owns_root and not self._closed.is_set():
            self._closed.set()
            shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _blob_path(root: Path, key: uuid.UUID) -> Path:
        name = key.hex
        return root / name[:2] / name

    def _link(self, source: Path, target: Path, key: uuid.UUID) -> None:
        """Make `target` the same blob as `source`: a hard link, or a copy across
        filesystems. An existing `target` that is not `source` is replaced
        atomically (blobs of one key are equal, but a stale one may be left
        over from a crashed process)."""
        try:
            os.link(source, target)
            return
        except FileNotFoundError:
            if not source.exists():
                raise BlobNotFoundError(f"no blob for key {key} at {source}") from None
            raise
        except FileExistsError:
            if os.path.samefile(source, target):
                return
            temporary = _temporary_name(target)
            try:
                os.link(source, temporary)
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise
                _copy_atomically(source, target, fsync=self.fsync)
                return
            os.replace(temporary, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            _copy_atomically(source, target, fsync=self.fsync)


def _temporary_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{secrets.token_hex(8)}.tmp")


def _write_atomically(final: Path, buffers: Sequence[Buffer], *, fsync: bool) -> None:
    temporary = _temporary_name(final)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
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
    temporary = _temporary_name(target)
    try:
        shutil.copyfile(source, temporary)
        if fsync:
            fd = os.open(temporary, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(temporary, target)
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise BlobNotFoundError(f"no blob at {source}") from None
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


def _read_into(file: Any, view: memoryview) -> None:
    while view.nbytes:
        count = file.readinto(view)
        if not count:
            break  # truncated: the length check in decode_payload reports it
        view = view[count:]


def _sync_filesystem(path: Path) -> None:
    """Flush every dirty page and inode of the filesystem holding `path`."""
    syncfs = _libc_syncfs()
    if syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        if syncfs(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"syncfs failed: {os.strerror(error)}", str(path))
    finally:
        os.close(fd)


@functools.cache
def _libc_syncfs() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
