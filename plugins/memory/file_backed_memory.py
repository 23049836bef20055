"""The ``memory`` backend: encoded blobs in this process's memory.

Blobs are stored encoded (so mutating the caller's object later never changes
what is stored) and checksummed like file blobs. Persisted locations are names
in a process-wide namespace, so a second store in the same process can register
what the first persisted.
"""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

import attrs

from file_backed import BlobNotFoundError, Codec, hookimpl
from file_backed.blob import BlobSource, decode_blob, encode_blob
from file_backed.buffers import copy_of

__all__ = ["MemoryBackend", "MemoryLocation"]

_LOCATIONS: dict[str, dict[uuid.UUID, bytes]] = {}
_LOCATIONS_LOCK = threading.Lock()


@attrs.frozen
class MemoryLocation:
    """A persisted location: a name in the process-wide namespace."""

    name: str

    def blobs(self) -> dict[uuid.UUID, bytes]:
        with _LOCATIONS_LOCK:
            return _LOCATIONS.setdefault(self.name, {})


class MemoryBackend:
    """Backend plugin keeping blobs in a dict. Options: none."""

    def __init__(self, *, codec: Codec) -> None:
        self.codec = codec
        self._blobs: dict[uuid.UUID, bytes] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryBackend(codec={self.codec.name!r}, blobs={len(self._blobs)})"

    def _blob(self, key: uuid.UUID) -> bytes:
        with self._lock:
            blob = self._blobs.get(key)
        if blob is None:
            raise BlobNotFoundError(f"no blob for key {key} in the memory store")
        return blob

    @hookimpl
    def store(self, key: uuid.UUID, data: Any) -> int:
        buffers, size = encode_blob(self.codec, data, key=key)
        blob = b"".join(buffers)
        with self._lock:
            self._blobs[key] = blob
        return size

    @hookimpl
    def load(self, key: uuid.UUID) -> Any:
        return decode_blob(self.codec, copy_of(self._blob(key)), source=BlobSource(key, "memory store"), key=key)

    @hookimpl
    def blob_size(self, key: uuid.UUID) -> int:
        return len(self._blob(key))

    @hookimpl
    def delete(self, key: uuid.UUID) -> None:
        with self._lock:
            self._blobs.pop(key, None)

    @hookimpl
    def prepare_path(self, location: object) -> MemoryLocation:
        if isinstance(location, MemoryLocation):
            return location
        if not isinstance(location, str | os.PathLike):
            raise TypeError(f"a memory location is a name (str), not {type(location).__name__}")
        name = os.fspath(location)
        name = name.removeprefix("memory://")
        if not name:
            raise ValueError("a memory location needs a non-empty name")
        location_obj = MemoryLocation(str(name))
        location_obj.blobs()
        return location_obj

    @hookimpl
    def sanitize_path(self, path: MemoryLocation) -> list[uuid.UUID]:
        with _LOCATIONS_LOCK:
            return list(_LOCATIONS.get(path.name, {}))

    @hookimpl
    def persist(self, dest_path: MemoryLocation, key: uuid.UUID) -> None:
        blob = self._blob(key)
        with _LOCATIONS_LOCK:
            _LOCATIONS.setdefault(dest_path.name, {})[key] = blob

    @hookimpl
    def register(self, src_path: MemoryLocation, key: uuid.UUID) -> None:
        with _LOCATIONS_LOCK:
            blob = _LOCATIONS.get(src_path.name, {}).get(key)
        if blob is None:
            raise BlobNotFoundError(f"no blob for key {key} at memory location {src_path.name!r}")
        with self._lock:
            self._blobs[key] = blob

    @hookimpl
    def delete_persisted(self, path: MemoryLocation, key: uuid.UUID) -> None:
        with _LOCATIONS_LOCK:
            _LOCATIONS.get(path.name, {}).pop(key, None)

    @hookimpl
    def sync_persisted(self, path: MemoryLocation) -> None:
        """Nothing to do: a persisted blob is complete when `persist` returns and
        lives as long as the process."""

    @hookimpl
    def shutdown(self) -> None:
        with self._lock:
            self._blobs.clear()
