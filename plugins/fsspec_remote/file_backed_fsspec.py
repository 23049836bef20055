"""The ``fsspec`` backend: the temporary area and persisted locations on any fsspec URL.

The blob of key ``K`` is ``<root>/<K.hex[:2]>/<K.hex>`` under the temporary
area's URL and under every persisted location, as in the ``fs_hardlink``
backend, in the shared checksummed blob format (`file_backed.blob`).

How a blob is written depends on the filesystem (`FsspecLocation.kind`):

``local``
    The local disk (`fsspec.implementations.local.LocalFileSystem`): a
    temporary name ``.<K.hex>.<16 hex>.tmp`` in the shard directory, renamed
    into place with `os.replace`. Copies into persisted locations are fsynced
    before the rename.
``object``
    Object stores (S3, GCS, Azure) and ``memory://``: a whole object in one
    request (``pipe_file``, a single PUT; a large one is a multipart upload,
    which is equally all-or-nothing). Copies within one store are server-side
    (``cp_file``, a single CopyObject). On S3 (s3fs) a blob is written with one
    PUT that reads the blob's buffers in order, and loaded with one GET (no
    HEAD) read straight into the load buffer: no whole-blob copy either way
    (`file_backed_fsspec_s3`).
``rename``
    Any other filesystem: the temporary name, then ``mv``.

Persist and register copy: server-side when source and destination are the
same filesystem (equal fsspec instances: same class and options), otherwise
streamed in `CHUNK_SIZE` pieces, so memory stays bounded whatever the blob's
size (a large blob streamed into an object store goes to a temporary object
first, then is copied into place server-side).

Ownership (see `file_backed.ownership`): the temporary area is claimed with the
marker ``.file_backed-temporary``, locked on the local disk and recording its
owner (host, boot, process) elsewhere; a claim that finds a crashed owner's
marker deletes that owner's leftover blobs, a live owner's marker or blobs
without a marker are refused with `ConfigError`. Persisted locations carry
``.file_backed-persisted`` and are refused as temporary areas. On the local
disk a symbolic link named like a blob is never followed.

Every failure of a filesystem or object store (network error, timeout,
permission, missing bucket) raises `RemoteStoreError`, whose message names the
URL; a missing blob raises `file_backed.BlobNotFoundError` and a changed one
`file_backed.CorruptBlobError`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import attrs
import fsspec
from file_backed_fsspec_s3 import MAX_PUT, get_object, is_s3, put_object
from fsspec.core import split_protocol
from fsspec.implementations.local import LocalFileSystem

from file_backed import BlobNotFoundError, Codec, ConfigError, FileBackedError, hookimpl
from file_backed.blob import decode_blob, encode_blob, signing_key_bytes
from file_backed.buffers import copy_of
from file_backed.codecs.base import Buffer
from file_backed.layout import SHARDS, is_temporary_name, key_of_blob_name, temporary_name
from file_backed.localfs import read_file, syncfs
from file_backed.ownership import (
    MARKERS,
    PERSISTED_MARKER,
    TEMPORARY_MARKER,
    OwnerRecord,
    claim_local,
    foreign_blobs_error,
    persisted_area_error,
    temporary_area_error,
)

__all__ = ["CHUNK_SIZE", "FsspecBackend", "FsspecLocation", "RemoteStoreError"]

logger = logging.getLogger("file_backed.fsspec")

#: Bytes read and written at a time when a blob is streamed between filesystems.
CHUNK_SIZE = 8 * 2**20

#: Protocols whose single put is atomic and durable when it returns.
_OBJECT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})
#: Object stores whose first path component is a bucket (container) that must exist.
_BUCKET_PROTOCOLS = _OBJECT_PROTOCOLS - {"memory"}

Kind = Literal["local", "object", "rename"]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class RemoteStoreError(FileBackedError, OSError):
    """A filesystem or object store failed: network error, timeout, permission,
    missing bucket. The message names the URL; ``__cause__`` is the original
    exception."""


@attrs.frozen
class FsspecLocation:
    """A place blobs live: a filesystem and a root path on it.

    The persist-path object of this backend (what `prepare_path` returns and
    `TrackedPath.path` holds). Immutable and safe to share between threads.
    """

    #: The fsspec filesystem instance.
    fs: Any = attrs.field(repr=False)
    #: The root path on `fs`, without protocol or trailing slash.
    root: str
    #: The root as a URL, for messages.
    url: str
    #: How blobs are written here (see the module docstring).
    kind: Kind

    def blob(self, key: uuid.UUID) -> str:
        """The path of `key`'s blob on `fs`."""
        name = key.hex
        return f"{self.root}/{name[:2]}/{name}"

    def marker(self, name: str) -> str:
        """The path of the marker file `name` (see `file_backed.ownership`)."""
        return f"{self.root}/{name}"

    def blob_url(self, key: uuid.UUID) -> str:
        """The URL of `key`'s blob, for messages."""
        name = key.hex
        return f"{self.url}/{name[:2]}/{name}"


class FsspecBackend:
    """Backend plugin storing blobs on fsspec filesystems.

    Options
    -------
    url:
        The temporary area, an fsspec URL (``s3://bucket/prefix``,
        ``memory://name``, ``file:///path``) or a local path. Default: a new
        local temporary directory, removed by `shutdown` (when the store
        closes). A given location is never removed. The store claims it
        (see the module docstring): a second open store on it is refused,
        and a crashed owner's blobs are deleted by the next claim.
    storage_options:
        Keyword arguments for the fsspec filesystems, either flat (given to
        every filesystem this backend opens: the temporary area's and every
        persisted location's) or keyed by URL protocol
        (``{"s3": {...}, "gs": {...}}``; a URL without a protocol is
        ``"file"``), when every key is a protocol fsspec knows and every value
        a mapping.
    signing_key:
        Optional text (UTF-8) or bytes, at least 16 bytes. Every blob written
        carries an HMAC-SHA256 bound to its key, and every blob read must carry
        a valid one (`CorruptBlobError` otherwise). Use it for buckets and
        locations other services can write.

    Notes on thread safety: hooks may run concurrently on any threads; the
    backend keeps no mutable state besides what the fsspec filesystems guard
    themselves.
    """

    def __init__(
        self,
        *,
        codec: Codec,
        url: str | os.PathLike[str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        signing_key: str | bytes | None = None,
    ) -> None:
        if url is not None and (not isinstance(url, str | os.PathLike) or not os.fspath(url)):
            raise ConfigError(f"fsspec option url: expected a URL or a path, got {url!r}")
        self.codec = codec
        self._signing_key = signing_key_bytes(signing_key, option="fsspec option signing_key")
        self._options = dict(storage_options or {})
        self._by_protocol = _is_keyed_by_protocol(self._options)
        self._owned_dir = tempfile.mkdtemp(prefix="file_backed-fsspec-") if url is None else None
        self._claim_fd: int | None = None
        self._claimed = False
        try:
            self.root = self._locate(self._owned_dir if url is None else url)
            self._claim()
            self.sanitize_path(self.root)
        except BaseException:
            self._release()
            self._remove_owned_dir()
            raise

    def __repr__(self) -> str:
        return f"FsspecBackend({self.root.url!r}, codec={self.codec.name!r})"

    # -- temporary area ----------------------------------------------------------------

    @hookimpl
    def store(self, key: uuid.UUID, data: Any) -> int:
        buffers, size = encode_blob(self.codec, data, key=key, signing_key=self._signing_key)
        with _failures(f"write {self.root.blob_url(key)}"):
            _put(self.root, key, buffers, durable=False)
        return size

    @hookimpl
    def load(self, key: uuid.UUID) -> Any:
        url = self.root.blob_url(key)
        with _failures(f"read {url}", missing=f"no blob for key {key} at {url}"):
            blob = _get(self.root, key)
        return decode_blob(self.codec, blob, source=f"blob {key} ({url})", key=key, signing_key=self._signing_key)

    @hookimpl
    def blob_size(self, key: uuid.UUID) -> int:
        url = self.root.blob_url(key)
        with _failures(f"stat {url}", missing=f"no blob for key {key} at {url}"):
            return int(self.root.fs.size(self.root.blob(key)))

    @hookimpl
    def delete(self, key: uuid.UUID) -> None:
        _remove(self.root, key)

    # -- persisted locations -----------------------------------------------------------

    @hookimpl
    def prepare_path(self, location: object) -> FsspecLocation:
        """The location, marked as persisted; a temporary area is refused."""
        if isinstance(location, FsspecLocation):
            return location
        prepared = self._locate(location)
        if _exists(prepared, prepared.marker(TEMPORARY_MARKER)):
            raise temporary_area_error(prepared.url)
        _mark_persisted(prepared)
        return prepared

    def _locate(self, location: object) -> FsspecLocation:
        """`location` (a URL or path) as a usable `FsspecLocation`, without markers."""
        if not isinstance(location, str | os.PathLike):
            raise TypeError(f"an fsspec location is a URL or a path, not {type(location).__name__}: {location!r}")
        url = os.fspath(location)
        protocol = split_protocol(url)[0] or "file"
        try:
            fs, root = fsspec.url_to_fs(url, **self._options_for(protocol))
        except ImportError as error:
            hint = " (pip install 'file-backed-fsspec[s3]')" if protocol in ("s3", "s3a") else ""
            raise ConfigError(f"{url}: {error}{hint}") from error
        except ValueError as error:
            raise ConfigError(f"{url}: {error}") from error
        root = root.rstrip("/")
        if not root:
            raise ConfigError(f"{url}: a location needs a path below the filesystem's root")
        kind: Kind = "rename"
        if isinstance(fs, LocalFileSystem):
            kind = "local"
        elif protocol in _OBJECT_PROTOCOLS:
            kind = "object"
        prepared = FsspecLocation(fs=fs, root=root, url=fs.unstrip_protocol(root), kind=kind)
        with _failures(f"prepare {prepared.url}"):
            _create(prepared, protocol)
        return prepared

    @hookimpl
    def sanitize_path(self, path: FsspecLocation) -> list[uuid.UUID]:
        """One recursive listing: names of 32 lowercase hex digits in their shard are
        keys; this library's partial writes (``.<hex>.<16 hex>.tmp``) are removed;
        anything else is left alone."""
        keys: list[uuid.UUID] = []
        foreign = 0
        for entry, parts in _listing(path):
            if parts and parts[0] in MARKERS:
                continue
            if len(parts) != 2 or (path.kind == "local" and os.path.islink(entry)):
                foreign += 1
                continue
            shard, name = parts
            if (key := key_of_blob_name(shard, name)) is not None:
                keys.append(key)
            elif is_temporary_name(shard, name):
                action = f"remove the partial write {path.fs.unstrip_protocol(entry)}"
                with _failures(action), contextlib.suppress(FileNotFoundError):
                    path.fs.rm_file(entry)
            else:
                foreign += 1
        if foreign:
            logger.info("%s: left %d entries alone that are not blobs of this library", path.url, foreign)
        return keys

    @hookimpl
    def persist(self, dest_path: FsspecLocation, key: uuid.UUID) -> None:
        _copy(self.root, dest_path, key, durable=True)

    @hookimpl
    def register(self, src_path: FsspecLocation, key: uuid.UUID) -> None:
        _copy(src_path, self.root, key, durable=False)

    @hookimpl
    def delete_persisted(self, path: FsspecLocation, key: uuid.UUID) -> None:
        _remove(path, key)

    @hookimpl
    def sync_persisted(self, path: FsspecLocation) -> None:
        """On the local disk, flush the filesystem holding `path` (``syncfs``, else
        ``sync``). A no-op elsewhere: an object store's PUT, copy and DELETE are
        durable when they return, and fsspec offers no fsync for other
        filesystems."""
        if path.kind == "local":
            with _failures(f"sync {path.url}"):
                if not syncfs(path.root):
                    os.sync()

    @hookimpl
    def shutdown(self) -> None:
        self._release()
        self._remove_owned_dir()

    # -- helpers -------------------------------------------------------------------------

    def _options_for(self, protocol: str) -> dict[str, Any]:
        if self._by_protocol:
            return dict(self._options.get(protocol, {}))
        return dict(self._options)

    def _claim(self) -> None:
        """Claim the temporary area (see the module docstring): collect a crashed
        owner's leftovers, refuse a live owner's area, a persisted location, or
        an area holding blobs no store of it wrote."""
        root = self.root
        option = "fsspec option url"
        if _exists(root, root.marker(PERSISTED_MARKER)):
            raise persisted_area_error(root.url, option)
        if root.kind == "local":
            self._claim_fd, existed = claim_local(Path(root.root), option)
        else:
            existed = self._claim_remote(option)
        self._claimed = True
        if existed:
            self._collect_leftovers()
        else:
            count = len(self._blobs_of(root))
            if count:
                raise foreign_blobs_error(root.url, option, count)

    def _claim_remote(self, option: str) -> bool:
        """Record this process as the owner of the (lockless) temporary area;
        returns whether a crashed owner's marker was there."""
        marker = self.root.marker(TEMPORARY_MARKER)
        with _failures(f"read {self.root.fs.unstrip_protocol(marker)}"):
            try:
                previous: bytes | None = self.root.fs.cat_file(marker)
            except FileNotFoundError:
                previous = None
        if previous is not None:
            owner = OwnerRecord.from_bytes(previous)
            if owner is None or owner.is_alive():
                who = owner.describe() if owner is not None else "an unknown owner"
                raise ConfigError(
                    f"{option}: {self.root.url} is the temporary area of {who}; give each store its own "
                    f"location (if that owner is gone for good, delete {self.root.fs.unstrip_protocol(marker)})"
                )
        with _failures(f"write {self.root.fs.unstrip_protocol(marker)}"):
            self.root.fs.pipe_file(marker, OwnerRecord.of_this_process().to_bytes())
        return previous is not None

    def _collect_leftovers(self) -> None:
        """Delete the blobs a crashed owner of the temporary area left."""
        blobs = self._blobs_of(self.root)
        for key in blobs:
            _remove(self.root, key)
        if blobs:
            logger.info(
                "%s: deleted %d blobs left by a previous store of this temporary area", self.root.url, len(blobs)
            )

    def _blobs_of(self, location: FsspecLocation) -> list[uuid.UUID]:
        """The keys of the blobs at `location` (never a symbolic link on the local disk)."""
        keys = []
        for entry, parts in _listing(location):
            key = key_of_blob_name(*parts) if len(parts) == 2 else None
            if key is not None and (location.kind != "local" or not os.path.islink(entry)):
                keys.append(key)
        return keys

    def _release(self) -> None:
        """Give up the claim on the temporary area (not when none was made)."""
        if self._claim_fd is not None:
            os.close(self._claim_fd)
            self._claim_fd = None
        if self._claimed and self.root.kind != "local":
            marker = self.root.marker(TEMPORARY_MARKER)
            with contextlib.suppress(Exception):
                self.root.fs.rm_file(marker)
        self._claimed = False

    def _remove_owned_dir(self) -> None:
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None


# -- storage operations (each raises what the filesystem raises) -------------------------------


def _create(location: FsspecLocation, protocol: str) -> None:
    """Make `location` usable: shard directories where directories are real, and a
    check that the bucket exists (buckets are never created implicitly)."""
    if location.kind == "local":
        for shard in SHARDS:
            os.makedirs(f"{location.root}/{shard}", exist_ok=True)
    elif location.kind == "rename":
        for shard in SHARDS:
            location.fs.makedirs(f"{location.root}/{shard}", exist_ok=True)
    elif protocol in _BUCKET_PROTOCOLS:
        bucket = location.root.split("/", 1)[0]
        try:
            location.fs.info(bucket)
        except FileNotFoundError:
            raise RemoteStoreError(f"{location.url}: bucket {bucket!r} does not exist") from None


def _put(location: FsspecLocation, key: uuid.UUID, buffers: Sequence[Buffer], *, durable: bool) -> None:
    """Write the blob of `key` atomically: either no blob or the whole one under its
    final name. `durable` fsyncs a local file before it is renamed into place."""
    final = location.blob(key)
    if location.kind == "object":
        size = sum(memoryview(buffer).nbytes for buffer in buffers)
        if is_s3(location.fs) and size <= MAX_PUT:
            put_object(location.fs, final, buffers, size)
        else:
            location.fs.pipe_file(final, buffers[0] if len(buffers) == 1 else b"".join(buffers))
        return
    with _temporary(location, final) as (temporary, file):
        for buffer in buffers:
            file.write(buffer)
        _finish(location, file, durable=durable)
    _move_into_place(location, temporary, final)


def _put_stream(location: FsspecLocation, key: uuid.UUID, reader: IO[bytes], *, durable: bool) -> None:
    """Like `_put`, reading the blob from `reader` in `CHUNK_SIZE` pieces."""
    final = location.blob(key)
    with _temporary(location, final) as (temporary, file):
        shutil.copyfileobj(reader, file, CHUNK_SIZE)
        _finish(location, file, durable=durable)
    _move_into_place(location, temporary, final)


@contextlib.contextmanager
def _temporary(location: FsspecLocation, final: str) -> Iterator[tuple[str, IO[bytes]]]:
    """A new file under a temporary name beside `final`, open for writing; removed
    again if the block (or the move that follows it) does not complete."""
    temporary = _temporary_name(final)
    file: IO[bytes]
    if location.kind == "local":
        file = open(temporary, "xb")  # noqa: SIM115 - closed below
    else:
        file = location.fs.open(temporary, "wb", block_size=CHUNK_SIZE)
    try:
        with file:
            yield temporary, file
    except BaseException:
        _discard(location, temporary)
        raise


def _temporary_name(final: str) -> str:
    """A unique temporary name beside `final`, recognised by `sanitize_path`."""
    directory, name = final.rsplit("/", 1)
    return f"{directory}/{temporary_name(name)}"


def _finish(location: FsspecLocation, file: IO[bytes], *, durable: bool) -> None:
    if durable and location.kind == "local":
        file.flush()
        os.fsync(file.fileno())


def _move_into_place(location: FsspecLocation, temporary: str, final: str) -> None:
    try:
        if location.kind == "local":
            os.replace(temporary, final)
        elif location.kind == "object":
            location.fs.cp_file(temporary, final)
            location.fs.rm_file(temporary)
        else:
            location.fs.mv(temporary, final)
    except BaseException:
        _discard(location, temporary)
        raise


def _discard(location: FsspecLocation, temporary: str) -> None:
    """Remove a partial write, best effort: `sanitize_path` removes what is left."""
    try:
        location.fs.rm_file(temporary)
    except Exception as error:  # noqa: BLE001 - the original failure is what the caller reports
        logger.debug("could not remove the partial write %s: %s", location.fs.unstrip_protocol(temporary), error)


def _get(location: FsspecLocation, key: uuid.UUID) -> memoryview:
    """The blob of `key`, whole, in an aligned writable buffer (codecs decode without copying)."""
    path = location.blob(key)
    if location.kind != "local":
        if is_s3(location.fs):
            return get_object(location.fs, path)
        return copy_of(location.fs.cat_file(path))
    fd = _open_regular(path, key)
    try:
        return read_file(fd)
    finally:
        os.close(fd)


def _open_regular(path: str, key: uuid.UUID) -> int:
    """Open the local blob file `path` for reading, never through a symbolic link."""
    try:
        return os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise BlobNotFoundError(f"{path} is a symbolic link, which the fsspec backend never follows") from None
        raise


def _mark_persisted(location: FsspecLocation) -> None:
    """Write the persisted-location marker unless it is there; a location this
    process may not write to (one it only registers from) needs none."""
    marker = location.marker(PERSISTED_MARKER)
    if _exists(location, marker):
        return
    try:
        with _failures(f"mark {location.url} as a persisted location"):
            location.fs.pipe_file(marker, b"")
    except RemoteStoreError as error:
        if not isinstance(error.__cause__, PermissionError):
            raise


def _listing(location: FsspecLocation) -> list[tuple[str, list[str]]]:
    """Every file under `location`, by one recursive listing: its path and the
    parts of that path below the root (none for an entry outside it)."""
    with _failures(f"list {location.url}"):
        location.fs.invalidate_cache(location.root)
        try:
            found = location.fs.find(location.root, withdirs=False, detail=False)
        finally:
            location.fs.invalidate_cache(location.root)  # fsspec would otherwise keep the whole listing
    prefix = location.root + "/"
    return [(entry, entry[len(prefix) :].split("/") if entry.startswith(prefix) else []) for entry in found]


def _remove(location: FsspecLocation, key: uuid.UUID) -> None:
    """Delete the blob of `key`; a blob already gone is not an error."""
    with _failures(f"delete {location.blob_url(key)}"), contextlib.suppress(FileNotFoundError):
        location.fs.rm_file(location.blob(key))


def _copy(source: FsspecLocation, target: FsspecLocation, key: uuid.UUID, *, durable: bool) -> None:
    """Copy the blob of `key` from `source` to `target` atomically: server-side on one
    filesystem, streamed with bounded memory across filesystems."""
    src, dst = source.blob(key), target.blob(key)
    action = f"copy {source.blob_url(key)} to {target.blob_url(key)}"
    try:
        with _failures(action):
            if source.fs == target.fs and target.kind == "object":
                target.fs.cp_file(src, dst)
            elif source.fs == target.fs and target.kind == "local":
                with _temporary(target, dst) as (temporary, file), open(_open_regular(src, key), "rb") as reader:
                    shutil.copyfileobj(reader, file, CHUNK_SIZE)
                    _finish(target, file, durable=durable)
                _move_into_place(target, temporary, dst)
            elif source.fs == target.fs:
                temporary = _temporary_name(dst)
                try:
                    target.fs.cp_file(src, temporary)
                except BaseException:
                    _discard(target, temporary)
                    raise
                _move_into_place(target, temporary, dst)
            elif source.fs.size(src) <= CHUNK_SIZE:
                _put(target, key, [source.fs.cat_file(src)], durable=durable)
            else:
                with source.fs.open(src, "rb", block_size=CHUNK_SIZE) as reader:
                    _put_stream(target, key, reader, durable=durable)
    except RemoteStoreError as error:
        if isinstance(error.__cause__, FileNotFoundError) and not _exists(source, src):
            raise BlobNotFoundError(f"no blob for key {key} at {source.blob_url(key)}") from None
        raise


def _exists(location: FsspecLocation, path: str) -> bool:
    with _failures(f"look up {location.fs.unstrip_protocol(path)}"):
        location.fs.invalidate_cache(path)
        return bool(location.fs.exists(path))


# -- errors and durability --------------------------------------------------------------


@contextlib.contextmanager
def _failures(action: str, *, missing: str | None = None) -> Iterator[None]:
    """Turn a filesystem failure inside the block into `RemoteStoreError` (or, with
    `missing`, a `FileNotFoundError` into `BlobNotFoundError(missing)`). `action`
    says what was attempted, with the URL."""
    try:
        yield
    except FileBackedError:
        raise
    except FileNotFoundError as error:
        if missing is not None:
            raise BlobNotFoundError(missing) from error
        raise RemoteStoreError(f"cannot {action}: {_describe(error)}") from error
    except Exception as error:
        raise RemoteStoreError(f"cannot {action}: {_describe(error)}") from error


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _is_keyed_by_protocol(options: Mapping[str, Any]) -> bool:
    """Whether `options` maps protocols to their options rather than being options."""
    if not options:
        return False
    known = set(fsspec.available_protocols())
    return all(name in known and isinstance(value, Mapping) for name, value in options.items())
