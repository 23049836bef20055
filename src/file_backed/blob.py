"""The blob format: a small header with a checksum (and optionally a MAC) in front
of a codec's payload.

Backends that keep blobs as byte strings (files, objects, rows) use this module
so every blob says which codec wrote it and how long it is, and so a changed,
truncated or foreign blob raises `CorruptBlobError` instead of decoding to a
wrong object.

Layout (little-endian)::

    magic     4 bytes  b"FBLB"
    version   u8       1
    flags     u8       bit 0: signed (a MAC follows the codec name); other bits 0
    name_len  u8       length of the codec name
    reserved  u8       0
    length    u64      payload length in bytes
    checksum  u64      xxh3_64 of the 16 bytes above, the codec name and the payload
    codec     name_len bytes, ASCII
    mac       32 bytes, only when signed: HMAC-SHA256 (see below)
    payload   length bytes

The checksum detects accidental damage (bit rot, torn or truncated writes). It
is not a defence against someone who can write the blob: they can recompute
it. For locations others could write, a *signing key* makes every blob carry
``HMAC-SHA256(key, first 16 bytes + codec name + u8 len(context) + context +
payload)``, where the context is supplied by the caller and not stored (the
file backends pass the key's 16 bytes, so a signed blob cannot be moved under
another key's name). A reader with a signing key rejects unsigned blobs and
checks the MAC before the codec sees a byte of the payload.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable
from typing import Any

import attrs
import xxhash

from file_backed.codecs.base import Buffer, Codec
from file_backed.errors import ConfigError, CorruptBlobError

__all__ = [
    "FIXED_HEADER_SIZE",
    "MAC_SIZE",
    "MAGIC",
    "MAX_HEADER_SIZE",
    "MIN_SIGNING_KEY_BYTES",
    "BlobHeader",
    "decode_blob",
    "decode_payload",
    "encode_blob",
    "read_header",
    "signing_key_bytes",
    "verify_payload",
]

MAGIC = b"FBLB"
VERSION = 1
#: Flags bit: the header carries a MAC after the codec name.
FLAG_SIGNED = 0x01
_KNOWN_FLAGS = FLAG_SIGNED
_PREFIX = struct.Struct("<4sBBBBQ")
_CHECKSUM = struct.Struct("<Q")
#: Bytes of the MAC of a signed blob (HMAC-SHA256).
MAC_SIZE = hashlib.sha256().digest_size
#: Bytes before the codec name; `read_header` needs at least this much.
FIXED_HEADER_SIZE = _PREFIX.size + _CHECKSUM.size
#: The most bytes a header can take (fixed part, the longest codec name, a MAC).
MAX_HEADER_SIZE = FIXED_HEADER_SIZE + 255 + MAC_SIZE
#: The shortest signing key accepted, in bytes.
MIN_SIGNING_KEY_BYTES = 16


@attrs.frozen
class BlobHeader:
    """A parsed blob header."""

    codec: str
    payload_length: int
    checksum: int
    #: Bytes the header takes; the payload starts here.
    size: int
    #: The bytes the checksum (and MAC) cover besides the payload.
    covered: bytes
    #: The MAC of a signed blob, None for an unsigned one.
    mac: bytes | None = None

    @property
    def signed(self) -> bool:
        return self.mac is not None


def signing_key_bytes(key: str | bytes | bytearray | None, *, option: str = "signing_key") -> bytes | None:
    """Normalise a signing key given in a configuration: text is UTF-8 encoded.

    Returns None for None. Raises `ConfigError` naming `option` for a key that
    is not text or bytes, or shorter than `MIN_SIGNING_KEY_BYTES` bytes.
    """
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes | bytearray):
        raise ConfigError(f"{option}: expected text or bytes, got {type(key).__name__}")
    if len(key) < MIN_SIGNING_KEY_BYTES:
        raise ConfigError(
            f"{option}: a signing key needs at least {MIN_SIGNING_KEY_BYTES} bytes, got {len(key)}"
        )
    return bytes(key)


def _checksum(covered: bytes, payload: Iterable[Buffer]) -> int:
    digest = xxhash.xxh3_64(covered)
    for buffer in payload:
        digest.update(buffer)
    return digest.intdigest()


def _mac(signing_key: bytes, covered: bytes, context: bytes, payload: Iterable[Buffer]) -> bytes:
    if len(context) > 255:
        raise ValueError(f"a MAC context has at most 255 bytes, got {len(context)}")
    digest = hmac.new(signing_key, covered, hashlib.sha256)
    digest.update(bytes((len(context),)) + context)
    for buffer in payload:
        digest.update(buffer)
    return digest.digest()


def encode_blob(
    codec: Codec, obj: Any, *, signing_key: bytes | None = None, context: bytes = b""
) -> tuple[list[Buffer], int]:
    """Encode `obj` with `codec` and frame it.

    Returns the buffers to write, in order (header first, then the codec's
    buffers, uncopied), and their total length. With `signing_key` the blob is
    signed, its MAC bound to `context` (at most 255 bytes; a reader must pass
    the same context).
    """
    payload = codec.encode(obj)
    length = sum(memoryview(buffer).nbytes for buffer in payload)
    name = codec.name.encode("ascii")
    flags = FLAG_SIGNED if signing_key is not None else 0
    covered = _PREFIX.pack(MAGIC, VERSION, flags, len(name), 0, length) + name
    checksum = _checksum(covered, payload)
    header = covered[: _PREFIX.size] + _CHECKSUM.pack(checksum) + name
    if signing_key is not None:
        header += _mac(signing_key, covered, context, payload)
    return [header, *payload], len(header) + length


def read_header(data: Buffer, *, source: str) -> BlobHeader:
    """Parse the header at the start of `data` (at least `FIXED_HEADER_SIZE` bytes
    plus the codec name and MAC; `MAX_HEADER_SIZE` bytes always suffice).

    `source` names the blob (key and file or URL) in error messages. Raises
    `CorruptBlobError` for anything that is not a header of a known version.
    """
    view = memoryview(data).cast("B")
    if view.nbytes < FIXED_HEADER_SIZE:
        raise CorruptBlobError(f"{source}: truncated blob ({view.nbytes} bytes, header needs {FIXED_HEADER_SIZE})")
    magic, version, flags, name_length, reserved, length = _PREFIX.unpack_from(view)
    if magic != MAGIC:
        raise CorruptBlobError(f"{source}: not a file_backed blob (bad magic {bytes(magic)!r})")
    if version != VERSION:
        raise CorruptBlobError(f"{source}: unknown blob format version {version} (this library reads {VERSION})")
    if flags & ~_KNOWN_FLAGS or reserved:
        raise CorruptBlobError(f"{source}: unknown header flags 0x{flags:02x}/0x{reserved:02x}")
    mac_size = MAC_SIZE if flags & FLAG_SIGNED else 0
    size = FIXED_HEADER_SIZE + name_length + mac_size
    if view.nbytes < size:
        raise CorruptBlobError(f"{source}: truncated blob header ({view.nbytes} bytes, header needs {size})")
    (checksum,) = _CHECKSUM.unpack_from(view, _PREFIX.size)
    name_end = FIXED_HEADER_SIZE + name_length
    name_bytes = bytes(view[FIXED_HEADER_SIZE:name_end])
    try:
        codec = name_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise CorruptBlobError(f"{source}: codec name in header is not ASCII") from None
    covered = bytes(view[: _PREFIX.size]) + name_bytes
    mac = bytes(view[name_end:size]) if mac_size else None
    return BlobHeader(codec=codec, payload_length=length, checksum=checksum, size=size, covered=covered, mac=mac)


def verify_payload(
    header: BlobHeader,
    payload: Buffer,
    *,
    source: str,
    signing_key: bytes | None = None,
    context: bytes = b"",
) -> None:
    """Check `payload` against `header` without decoding it.

    With `signing_key`, the blob must be signed and its MAC (bound to
    `context`) must match; without one, a MAC is not checked. Raises
    `CorruptBlobError` on a length, MAC or checksum mismatch.
    """
    view = memoryview(payload).cast("B")
    if view.nbytes != header.payload_length:
        raise CorruptBlobError(
            f"{source}: truncated blob (payload is {view.nbytes} bytes, header says {header.payload_length})"
        )
    if signing_key is not None:
        if header.mac is None:
            raise CorruptBlobError(f"{source}: blob is not signed, but this store only reads signed blobs")
        if not hmac.compare_digest(_mac(signing_key, header.covered, context, (view,)), header.mac):
            raise CorruptBlobError(
                f"{source}: signature mismatch: the blob was changed, moved from another key, "
                "or signed with another key"
            )
    if _checksum(header.covered, (view,)) != header.checksum:
        raise CorruptBlobError(f"{source}: checksum mismatch, the blob's bytes changed after it was written")


def decode_payload(
    codec: Codec,
    header: BlobHeader,
    payload: memoryview,
    *,
    source: str,
    signing_key: bytes | None = None,
    context: bytes = b"",
) -> Any:
    """Verify `payload` against `header` (see `verify_payload`) and decode it with `codec`.

    Raises `CorruptBlobError` when the length, MAC or checksum do not match,
    when the blob was written by another codec, or when the codec rejects the
    payload; the codec never sees a payload that failed a check.
    """
    verify_payload(header, payload, source=source, signing_key=signing_key, context=context)
    if header.codec != codec.name:
        raise CorruptBlobError(
            f"{source}: blob was written by codec {header.codec!r}, but this store decodes with {codec.name!r}"
        )
    try:
        return codec.decode(payload)
    except Exception as error:
        raise CorruptBlobError(f"{source}: codec {codec.name!r} could not decode the payload: {error}") from error


def decode_blob(
    codec: Codec, data: Buffer, *, source: str, signing_key: bytes | None = None, context: bytes = b""
) -> Any:
    """Verify and decode a whole blob held in memory (header and payload)."""
    view = memoryview(data).cast("B")
    header = read_header(view[:MAX_HEADER_SIZE], source=source)
    payload = view[header.size :]
    if payload.nbytes > header.payload_length:
        raise CorruptBlobError(f"{source}: {payload.nbytes - header.payload_length} unexpected bytes after the payload")
    return decode_payload(codec, header, payload, source=source, signing_key=signing_key, context=context)
