"""The blob format: a small header with a checksum in front of a codec's payload.

Backends that keep blobs as byte strings (files, objects, rows) use this module
so every blob says which codec wrote it and how long it is, and so a changed,
truncated or foreign blob raises `CorruptBlobError` instead of decoding to a
wrong object.

Layout (little-endian)::

    magic     4 bytes  b"FBLB"
    version   u8       1
    flags     u8       0 (reserved)
    name_len  u8       length of the codec name
    reserved  u8       0
    length    u64      payload length in bytes
    checksum  u64      xxh3_64 of the 16 bytes above, the codec name and the payload
    codec     name_len bytes, ASCII
    payload   length bytes
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import attrs
import xxhash

from file_backed.codecs.base import Buffer, Codec
from file_backed.errors import CorruptBlobError

__all__ = [
    "FIXED_HEADER_SIZE",
    "MAGIC",
    "MAX_HEADER_SIZE", "BlobHeader", "decode_blob", "decode_payload", "encode_blob", "read_header"]

MAGIC = b"FBLB"
VERSION = 1
_PREFIX = struct.Struct("<4sBBBBQ")
_CHECKSUM = struct.Struct("<Q")
#: Bytes before the codec name; `read_header` needs at least this much.
FIXED_HEADER_SIZE = _PREFIX.size + _CHECKSUM.size
#: The most bytes a header can take (fixed part plus the longest codec name).
MAX_HEADER_SIZE = FIXED_HEADER_SIZE + 255


@attrs.frozen
class BlobHeader:
    """A parsed blob header."""

    codec: str
    payload_length: int
    checksum: int
    #: Bytes the header takes; the payload starts here.
    size: int
    #: The bytes the checksum covers besides the payload.
    covered: bytes


def _checksum(covered: bytes, payload: Iterable[Buffer]) -> int:
    digest = xxhash.xxh3_64(covered)
    for buffer in payload:
        digest.update(buffer)
    return digest.intdigest()


def encode_blob(codec: Codec, obj: Any) -> tuple[list[Buffer], int]:
    """Encode `obj` with `codec` and frame it.

    Returns the buffers to write, in order (header first, then the codec's
    buffers, uncopied), and their total length.
    """
    payload = codec.encode(obj)
    length = sum(memoryview(buffer).nbytes for buffer in payload)
    name = codec.name.encode("ascii")
    covered = _PREFIX.pack(MAGIC, VERSION, 0, len(name), 0, length) + name
    checksum = _checksum(covered, payload)
    header = covered[: _PREFIX.size] + _CHECKSUM.pack(checksum) + name
    return [header, *payload], len(header) + length


def read_header(data: Buffer, *, source: str) -> BlobHeader:
    """Parse the header at the start of `data` (at least `FIXED_HEADER_SIZE` bytes
    plus the codec name; `MAX_HEADER_SIZE` bytes always suffice).

    `source` names the blob (key and file or URL) in error messages. Raises
    `CorruptBlobError` for anything that is not a header of a known version.
    """
    view = memoryview(data)
    if view.nbytes < FIXED_HEADER_SIZE:
        raise CorruptBlobError(f"{source}: truncated blob ({view.nbytes} bytes, header needs {FIXED_HEADER_SIZE})")
    magic, version, _flags, name_length, _reserved, length = _PREFIX.unpack_from(view)
    if magic != MAGIC:
        raise CorruptBlobError(f"{source}: not a file_backed blob (bad magic {bytes(magic)!r})")
    if version != VERSION:
        raise CorruptBlobError(f"{source}: unknown blob format version {version} (this library reads {VERSION})")
    size = FIXED_HEADER_SIZE + name_length
    if view.nbytes < size:
        raise CorruptBlobError(f"{source}: truncated blob header")
    (checksum,) = _CHECKSUM.unpack_from(view, _PREFIX.size)
    name_bytes = bytes(view[FIXED_HEADER_SIZE:size])
    try:
        codec = name_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise CorruptBlobError(f"{source}: codec name in header is not ASCII") from None
    covered = bytes(view[: _PREFIX.size]) + name_bytes
    return BlobHeader(codec=codec, payload_length=length, checksum=checksum, size=size, covered=covered)


def decode_payload(codec: Codec, header: BlobHeader, payload: memoryview, *, source: str) -> Any:
    """Verify `payload` against `header` and decode it with `codec`.

    Raises `CorruptBlobError` when the length or checksum do not match, when the
    blob was written by another codec, or when the codec rejects the payload.
    """
    if payload.nbytes != header.payload_length:
        raise CorruptBlobError(
            f"{source}: truncated blob (payload is {payload.nbytes} bytes, header says {header.payload_length})"
        )
    if _checksum(header.covered, (payload,)) != header.checksum:
        raise CorruptBlobError(f"{source}: checksum mismatch, the blob's bytes changed after it was written")
    if header.codec != codec.name:
        raise CorruptBlobError(
            f"{source}: blob was written by codec {header.codec!r}, but this store decodes with {codec.name!r}"
        )
    try:
        return codec.decode(payload)
    except Exception as error:
        raise CorruptBlobError(f"{source}: codec {codec.name!r} could not decode the payload: {error}") from error


def decode_blob(codec: Codec, data: Buffer, *, source: str) -> Any:
    """Verify and decode a whole blob held in memory (header and payload)."""
    view = memoryview(data)
    header = read_header(view[:MAX_HEADER_SIZE], source=source)
    payload = view[header.size :]
    if payload.nbytes > header.payload_length:
        raise CorruptBlobError(f"{source}: {payload.nbytes - header.payload_length} unexpected bytes after the payload")
    return decode_payload(codec, header, payload, source=source)

