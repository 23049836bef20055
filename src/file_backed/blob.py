"""The blob format: a small header with a checksum (and optionally a MAC) in front
of a codec's payload, bound to the blob's key.

Backends that keep blobs as byte strings (files, objects, rows) use this module
so every blob says which codec wrote it and how long it is, and so a changed,
truncated, foreign or misplaced blob raises `CorruptBlobError` instead of
decoding to a wrong object.

Layout (little-endian)::

    magic     4 bytes  b"FBLB"
    version   u8       2
    flags     u8       bit 0: signed (a MAC follows the codec name); other bits 0
    name_len  u8       length of the codec name
    blocks    u8       header size in units of 64 bytes
    length    u64      payload length in bytes
    checksum  u64      xxh3_64 of the 16 bytes above, the codec name, the key's
                       16 bytes and the payload
    codec     name_len bytes, ASCII
    mac       32 bytes, only when signed: HMAC-SHA256 (see below)
    padding   zero bytes up to the header size
    payload   length bytes

The header takes a multiple of 64 bytes, so a payload read into a buffer from
`file_backed.buffers.allocate` starts on a 64-byte boundary, and so do the
array data that codecs align within their payload.

The checksum covers the key the blob was stored under (the key is not stored):
a blob copied or renamed to another key's name fails its check. It detects
accidental damage and mix-ups (bit rot, torn or truncated writes, swapped
files); it is not a defence against someone who can write the blob, who can
recompute it. For locations others could write, a *signing key* makes every
blob carry ``HMAC-SHA256(signing key, first 16 bytes + codec name + key +
payload)``. A reader with a signing key rejects unsigned blobs and checks the
MAC before the codec sees a byte of the payload.

The key of a blob is the one a backend passes (`key=`); where it passes none,
the key of the hook call the store is making on this thread (`rebind`), so
backends that frame blobs with these functions bind them to their keys without
doing anything for it; outside any store call and without `key=`, blobs are
bound to no key (16 zero bytes).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import threading
import uuid
from collections.abc import Iterable
from typing import Any, NamedTuple

import xxhash

from file_backed.codecs.base import ALIGNMENT, Buffer, Codec
from file_backed.errors import ConfigError, CorruptBlobError

__all__ = [
    "FIXED_HEADER_SIZE",
    "HEADER_ALIGNMENT",
    "MAC_SIZE",
    "MAGIC",
    "MAX_HEADER_SIZE",
    "MIN_SIGNING_KEY_BYTES",
    "BlobHeader",
    "BlobSource",
    "decode_blob",
    "decode_payload",
    "encode_blob",
    "read_header",
    "rebind",
    "signing_key_bytes",
    "verify_payload",
]

MAGIC = b"FBLB"
VERSION = 2
#: Flags bit: the header carries a MAC after the codec name.
FLAG_SIGNED = 0x01
_KNOWN_FLAGS = FLAG_SIGNED
_PREFIX = struct.Struct("<4sBBBBQ")
_CHECKSUM = struct.Struct("<Q")
_FIXED = struct.Struct("<4sBBBBQQ")
#: Bytes of the MAC of a signed blob (HMAC-SHA256).
MAC_SIZE = hashlib.sha256().digest_size
#: Bytes before the codec name; `read_header` needs at least this much.
FIXED_HEADER_SIZE = _PREFIX.size + _CHECKSUM.size
#: A header's size is a multiple of this, so payloads start aligned.
HEADER_ALIGNMENT = ALIGNMENT
#: The most bytes a header can take (fixed part, the longest codec name, a MAC, padding).
MAX_HEADER_SIZE = -(-(FIXED_HEADER_SIZE + 255 + MAC_SIZE) // HEADER_ALIGNMENT) * HEADER_ALIGNMENT
#: The shortest signing key accepted, in bytes.
MIN_SIGNING_KEY_BYTES = 16
_ZEROS = bytes(HEADER_ALIGNMENT)
_NO_KEY = bytes(16)
#: The payload length and checksum, after the first 8 bytes of the header.
_LENGTH_AND_CHECKSUM = struct.Struct("<QQ")
#: Distinct unsigned one-block headers `read_header` remembers (see `_KNOWN_HEADERS`).
_KNOWN_HEADERS_LIMIT = 64


class _Binding(threading.local):
    #: (key, signing key) of the hook call on this thread, None outside one.
    binding: tuple[uuid.UUID, bytes | None] | None = None


_current = _Binding()


class _Layout(NamedTuple):
    """How `encode_blob` frames a payload for one codec name, signed or not."""

    #: The first 8 bytes of the header (magic, version, flags, name length, blocks).
    start: bytes
    name: bytes
    #: Packs (start, payload length, name): the header bytes the checksum and MAC cover.
    covered: struct.Struct
    #: Packs (start, payload length, checksum, name[, mac]) and the zero padding: the header.
    header: struct.Struct


#: Layouts by codec name, unsigned and signed.
_LAYOUTS: tuple[dict[str, _Layout], dict[str, _Layout]] = ({}, {})


def _layout(codec_name: str, signed: bool) -> _Layout:
    """The layout of `codec_name`, made and remembered on first use."""
    layouts = _LAYOUTS[signed]
    layout = layouts.get(codec_name)
    if layout is None:
        name = codec_name.encode("ascii")
        unpadded = FIXED_HEADER_SIZE + len(name) + (MAC_SIZE if signed else 0)
        blocks = -(-unpadded // HEADER_ALIGNMENT)
        start = _PREFIX.pack(MAGIC, VERSION, FLAG_SIGNED if signed else 0, len(name), blocks, 0)[:8]
        mac = f"{MAC_SIZE}s" if signed else ""
        layout = _Layout(
            start,
            name,
            struct.Struct(f"<8sQ{len(name)}s"),
            struct.Struct(f"<8sQQ{len(name)}s{mac}{blocks * HEADER_ALIGNMENT - unpadded}x"),
        )
        layouts[codec_name] = layout
    return layout


#: Unsigned headers of one block that `read_header` checked in full, keyed by
#: their bytes without the payload length and checksum (the first 8 bytes,
#: then the codec name and padding): the codec name as text and as bytes.
_KNOWN_HEADERS: dict[bytes, tuple[str, bytes]] = {}


class BlobHeader(NamedTuple):
    """A parsed blob header."""

    codec: str
    payload_length: int
    checksum: int
    #: Bytes the header takes; the payload starts here.
    size: int
    #: The header bytes the checksum (and MAC) cover besides the key and the payload.
    covered: bytes
    #: The MAC of a signed blob, None for an unsigned one.
    mac: bytes | None = None

    @property
    def signed(self) -> bool:
        return self.mac is not None


class BlobSource:
    """Names a blob in error messages ("blob KEY (WHERE)"), formatted only when
    a message is made."""

    __slots__ = ("key", "where")

    def __init__(self, key: uuid.UUID, where: object) -> None:
        self.key = key
        self.where = where

    def __str__(self) -> str:
        return f"blob {self.key} ({self.where})"


def rebind(binding: tuple[uuid.UUID, bytes | None] | None) -> tuple[uuid.UUID, bytes | None] | None:
    """Set the context of one hook call on this thread, ``(key, signing key)``,
    and return the one it replaces (None: outside a hook call), to set back
    when the call ends. Within it, blobs framed or checked without an explicit
    ``key=`` are bound to the key, and signed with the signing key where the
    caller passes none. The store sets it around ``store`` and ``load`` hook
    calls (a pair of calls rather than a context manager: it is on every
    load's path)."""
    outer = _current.binding
    _current.binding = binding
    return outer


def _binding(key: uuid.UUID | None, signing_key: bytes | None) -> tuple[bytes, bytes | None]:
    """The key bytes and signing key that apply to one blob."""
    outer = _current.binding
    if outer is None:
        return (_NO_KEY if key is None else key.bytes), signing_key
    return (outer[0] if key is None else key).bytes, (outer[1] if signing_key is None else signing_key)


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
        raise ConfigError(f"{option}: a signing key needs at least {MIN_SIGNING_KEY_BYTES} bytes, got {len(key)}")
    return bytes(key)


def _mac(signing_key: bytes, covered: bytes, key_bytes: bytes, payload: Iterable[Buffer]) -> bytes:
    digest = hmac.new(signing_key, covered, hashlib.sha256)
    digest.update(key_bytes)
    for buffer in payload:
        digest.update(buffer)
    return digest.digest()


def encode_blob(
    codec: Codec, obj: Any, *, key: uuid.UUID | None = None, signing_key: bytes | None = None
) -> tuple[list[Buffer], int]:
    """Encode `obj` with `codec` and frame it as the blob of `key`.

    Returns the buffers to write, in order (header first, then the codec's
    buffers, uncopied), and their total length. Without `key` or
    `signing_key`, those of the store's hook call on this thread apply (see
    `rebind`); with a signing key the blob is signed.
    """
    key_bytes, signing_key = _binding(key, signing_key)
    payload = codec.encode(obj)
    length = 0
    for buffer in payload:
        length += (
            buffer.nbytes
            if type(buffer) is memoryview
            else len(buffer)
            if type(buffer) is bytes or type(buffer) is bytearray
            else memoryview(buffer).nbytes
        )
    layout = _LAYOUTS[signing_key is not None].get(codec.name) or _layout(codec.name, signing_key is not None)
    covered = layout.covered.pack(layout.start, length, layout.name)
    digest = xxhash.xxh3_64(covered)
    update = digest.update
    update(key_bytes)
    for buffer in payload:
        update(buffer)
    if signing_key is None:
        header = layout.header.pack(layout.start, length, digest.intdigest(), layout.name)
    else:
        mac = _mac(signing_key, covered, key_bytes, payload)
        header = layout.header.pack(layout.start, length, digest.intdigest(), layout.name, mac)
    return [header, *payload], len(header) + length


def read_header(data: Buffer, *, source: object) -> BlobHeader:
    """Parse the header at the start of `data` (`MAX_HEADER_SIZE` bytes always
    suffice; the header's own size is in its first `FIXED_HEADER_SIZE` bytes).

    `source` names the blob (key and file or URL) in error messages. Raises
    `CorruptBlobError` for anything that is not a header of a known version.
    """
    if type(data) is bytes:
        first = data[:HEADER_ALIGNMENT]
    else:
        view = data if type(data) is memoryview and data.format == "B" and data.ndim == 1 else _byte_view(data)
        first = view[:HEADER_ALIGNMENT].tobytes()
    known = _KNOWN_HEADERS.get(first[:8] + first[FIXED_HEADER_SIZE:])
    if known is None:
        return _read_header(data, source)
    length, checksum = _LENGTH_AND_CHECKSUM.unpack_from(first, 8)
    # tuple.__new__ skips the NamedTuple's Python-level __new__ (a third of the time here)
    return tuple.__new__(BlobHeader, (known[0], length, checksum, HEADER_ALIGNMENT, first[:16] + known[1], None))


def _read_header(data: Buffer, source: object) -> BlobHeader:
    """`read_header` checking every field (and remembering unsigned one-block
    headers that pass, up to `_KNOWN_HEADERS_LIMIT` of them)."""
    view = _byte_view(data)
    if view.nbytes < FIXED_HEADER_SIZE:
        raise CorruptBlobError(f"{source}: truncated blob ({view.nbytes} bytes, header needs {FIXED_HEADER_SIZE})")
    magic, version, flags, name_length, blocks, length, checksum = _FIXED.unpack_from(view)
    if magic != MAGIC:
        raise CorruptBlobError(f"{source}: not a file_backed blob (bad magic {bytes(magic)!r})")
    if version != VERSION:
        raise CorruptBlobError(f"{source}: unknown blob format version {version} (this library reads {VERSION})")
    if flags & ~_KNOWN_FLAGS:
        raise CorruptBlobError(f"{source}: unknown header flags 0x{flags:02x}")
    name_end = FIXED_HEADER_SIZE + name_length
    contents_end = name_end + (MAC_SIZE if flags & FLAG_SIGNED else 0)
    size = blocks * HEADER_ALIGNMENT
    if size != -(-contents_end // HEADER_ALIGNMENT) * HEADER_ALIGNMENT:
        raise CorruptBlobError(f"{source}: header size {size} does not fit its contents")
    if view.nbytes < size:
        raise CorruptBlobError(f"{source}: truncated blob header ({view.nbytes} bytes, header needs {size})")
    if view[contents_end:size] != _ZEROS[: size - contents_end]:
        raise CorruptBlobError(f"{source}: header padding is not zero")
    name_bytes = bytes(view[FIXED_HEADER_SIZE:name_end])
    try:
        codec = name_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise CorruptBlobError(f"{source}: codec name in header is not ASCII") from None
    covered = bytes(view[: _PREFIX.size]) + name_bytes
    mac = bytes(view[name_end:contents_end]) if contents_end > name_end else None
    if mac is None and size == HEADER_ALIGNMENT and len(_KNOWN_HEADERS) < _KNOWN_HEADERS_LIMIT:
        _KNOWN_HEADERS[bytes(view[:8]) + bytes(view[FIXED_HEADER_SIZE:size])] = (codec, name_bytes)
    return BlobHeader(codec, length, checksum, size, covered, mac)


def _byte_view(data: Buffer) -> memoryview:
    """`data` as a flat view of unsigned bytes."""
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def verify_payload(
    header: BlobHeader,
    payload: Buffer,
    *,
    source: object,
    key: uuid.UUID | None = None,
    signing_key: bytes | None = None,
) -> None:
    """Check `payload` against `header` and `key` without decoding it.

    Without `key` or `signing_key`, those of the store's hook call on this
    thread apply (see `rebind`). With a signing key, the blob must be signed
    and its MAC must match; without one, a MAC is not checked. Raises
    `CorruptBlobError` on a length, MAC or checksum mismatch; a blob stored
    under another key fails the checksum.
    """
    _verify(header, payload, source, key, signing_key)


def _verify(
    header: BlobHeader, payload: Buffer, source: object, key: uuid.UUID | None, signing_key: bytes | None
) -> None:
    """`verify_payload`."""
    key_bytes, signing_key = _binding(key, signing_key)
    view = (
        payload if type(payload) is memoryview and payload.format == "B" and payload.ndim == 1 else _byte_view(payload)
    )
    if view.nbytes != header.payload_length:
        raise CorruptBlobError(
            f"{source}: truncated blob (payload is {view.nbytes} bytes, header says {header.payload_length})"
        )
    if signing_key is not None:
        if header.mac is None:
            raise CorruptBlobError(f"{source}: blob is not signed, but this store only reads signed blobs")
        if not hmac.compare_digest(_mac(signing_key, header.covered, key_bytes, (view,)), header.mac):
            raise CorruptBlobError(
                f"{source}: signature mismatch: the blob was changed, moved from another key, "
                "or signed with another key"
            )
    digest = xxhash.xxh3_64(header.covered)
    digest.update(key_bytes)
    digest.update(view)
    if digest.intdigest() != header.checksum:
        raise CorruptBlobError(
            f"{source}: checksum mismatch: the blob's bytes changed after it was written, or it is another key's blob"
        )


def decode_payload(
    codec: Codec,
    header: BlobHeader,
    payload: memoryview,
    *,
    source: object,
    key: uuid.UUID | None = None,
    signing_key: bytes | None = None,
) -> Any:
    """Verify `payload` against `header` (see `verify_payload`) and decode it with `codec`.

    Raises `CorruptBlobError` when the length, MAC or checksum do not match,
    when the blob was written by another codec, or when the codec rejects the
    payload; the codec never sees a payload that failed a check.
    """
    _verify(header, payload, source, key, signing_key)
    if header.codec != codec.name:
        raise CorruptBlobError(
            f"{source}: blob was written by codec {header.codec!r}, but this store decodes with {codec.name!r}"
        )
    try:
        return codec.decode(payload)
    except Exception as error:
        raise CorruptBlobError(f"{source}: codec {codec.name!r} could not decode the payload: {error}") from error


def decode_blob(
    codec: Codec,
    data: Buffer,
    *,
    source: object,
    key: uuid.UUID | None = None,
    signing_key: bytes | None = None,
) -> Any:
    """Verify and decode a whole blob held in memory (header and payload).

    `data` should come from `file_backed.buffers.allocate` (or be a copy into
    one) so that array data come back aligned; the decoded object may keep
    referencing it."""
    view = _byte_view(data)
    header = read_header(view, source=source)
    payload = view[header.size :]
    if payload.nbytes > header.payload_length:
        raise CorruptBlobError(f"{source}: {payload.nbytes - header.payload_length} unexpected bytes after the payload")
    return decode_payload(codec, header, payload, source=source, key=key, signing_key=signing_key)
