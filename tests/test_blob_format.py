"""The blob format (version 2) byte for byte: what `encode_blob` writes and what
`read_header` reads back, for any codec name, signed or not."""

from __future__ import annotations

import hashlib
import hmac
import struct
import uuid
from typing import Any, ClassVar

import pytest
import xxhash
from hypothesis import given
from hypothesis import strategies as st

from file_backed.blob import decode_blob, encode_blob, read_header
from file_backed.codecs.base import Buffer, Codec
from file_backed.errors import CorruptBlobError

KEY = uuid.UUID("12345678-1234-5678-1234-567812345678")
SIGNING_KEY = b"0123456789abcdef"
#: b"file_backed blob" stored by the bytes codec under KEY, unsigned and signed with SIGNING_KEY.
STORED_UNSIGNED = bytes.fromhex(
    "46424c420200050110000000000000000914cedd4d1c8ae8627974657300000000000000000000000000000000000000"
    "0000000000000000000000000000000066696c655f6261636b656420626c6f62"
)
STORED_SIGNED = bytes.fromhex(
    "46424c42020105011000000000000000f55715325fe8247a62797465733318f02cdee22a14f0b05fe5a870dde1f2cb57"
    "6010cc64b5cb44eba7c3d3d38c00000066696c655f6261636b656420626c6f62"
)

codec_names = st.text(st.characters(max_codepoint=127), max_size=255)
signing_keys = st.none() | st.binary(min_size=16, max_size=64)


def raw_codec(codec_name: str) -> Codec:
    """A codec named `codec_name` that stores bytes as they are."""

    class Raw(Codec):
        name: ClassVar[str] = codec_name

        def encode(self, obj: Any) -> list[Buffer]:
            return [obj]

        def decode(self, data: memoryview) -> Any:
            return bytes(data)

    return Raw()


def expected_blob(codec_name: str, payload: bytes, key: uuid.UUID, signing_key: bytes | None) -> bytes:
    """The blob the format's description prescribes."""
    name = codec_name.encode("ascii")
    unpadded = 24 + len(name) + (32 if signing_key is not None else 0)
    blocks = -(-unpadded // 64)
    flags = 1 if signing_key is not None else 0
    covered = b"FBLB" + struct.pack("<BBBBQ", 2, flags, len(name), blocks, len(payload)) + name
    checksum = xxhash.xxh3_64_intdigest(covered + key.bytes + payload)
    mac = b"" if signing_key is None else hmac.digest(signing_key, covered + key.bytes + payload, hashlib.sha256)
    header = covered[:16] + struct.pack("<Q", checksum) + name + mac
    return header + bytes(blocks * 64 - len(header)) + payload


@given(codec_names, st.binary(max_size=300), signing_keys)
def test_encode_blob_writes_the_documented_layout(codec_name: str, payload: bytes, signing_key: bytes | None) -> None:
    buffers, size = encode_blob(raw_codec(codec_name), payload, key=KEY, signing_key=signing_key)
    blob = b"".join(buffers)
    assert blob == expected_blob(codec_name, payload, KEY, signing_key)
    assert size == len(blob)


@given(codec_names, st.binary(max_size=300), signing_keys)
def test_read_header_reads_the_documented_layout(codec_name: str, payload: bytes, signing_key: bytes | None) -> None:
    blob = expected_blob(codec_name, payload, KEY, signing_key)
    header = read_header(blob, source="test")
    assert header.codec == codec_name
    assert header.payload_length == len(payload)
    assert header.size == len(blob) - len(payload)
    assert header.covered == blob[:16] + codec_name.encode("ascii")
    assert header.checksum == struct.unpack_from("<Q", blob, 16)[0]
    assert header.signed == (signing_key is not None)


@given(st.lists(st.tuples(codec_names, st.booleans()), min_size=2, max_size=6))
def test_headers_read_one_after_another_keep_their_own_codec_and_signature(blobs: list[tuple[str, bool]]) -> None:
    for codec_name, signed in blobs:
        blob = expected_blob(codec_name, b"payload", KEY, SIGNING_KEY if signed else None)
        header = read_header(memoryview(bytearray(blob)), source="test")
        assert (header.codec, header.signed) == (codec_name, signed)


def test_a_codec_name_that_differs_by_a_trailing_zero_byte_is_another_codec() -> None:
    buffers, _ = encode_blob(raw_codec("raw"), b"payload", key=KEY)
    blob = bytearray(b"".join(buffers))
    assert decode_blob(raw_codec("raw"), blob, source="test", key=KEY) == b"payload"
    with pytest.raises(CorruptBlobError, match="written by codec 'raw'"):
        decode_blob(raw_codec("raw\x00"), blob, source="test", key=KEY)


def test_an_unsigned_blob_read_after_a_signed_one_of_the_same_codec_is_unsigned() -> None:
    read_header(STORED_SIGNED, source="test")
    assert not read_header(STORED_UNSIGNED, source="test").signed
    with pytest.raises(CorruptBlobError, match="not signed"):
        decode_blob(raw_codec("bytes"), bytearray(STORED_UNSIGNED), source="test", key=KEY, signing_key=SIGNING_KEY)


@pytest.mark.parametrize(("stored", "signing_key"), [(STORED_UNSIGNED, None), (STORED_SIGNED, SIGNING_KEY)])
def test_blobs_stored_in_format_version_2_decode(stored: bytes, signing_key: bytes | None) -> None:
    blob = bytearray(stored)
    assert decode_blob(raw_codec("bytes"), blob, source="test", key=KEY, signing_key=signing_key) == b"file_backed blob"


@pytest.mark.parametrize(("stored", "signing_key"), [(STORED_UNSIGNED, None), (STORED_SIGNED, SIGNING_KEY)])
def test_encode_blob_writes_format_version_2(stored: bytes, signing_key: bytes | None) -> None:
    buffers, _ = encode_blob(raw_codec("bytes"), b"file_backed blob", key=KEY, signing_key=signing_key)
    assert b"".join(buffers) == stored
