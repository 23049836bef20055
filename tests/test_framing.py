"""The framing codecs share: heads and any number of buffers come back as they
went in, buffers start aligned, and a payload that is not a frame is refused."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from file_backed.codecs.base import ALIGNMENT
from file_backed.codecs.framing import frame, unframe
from file_backed.codecs.pickle_codec import PickleCodec

heads = st.binary(max_size=200)
buffer_lists = st.lists(st.binary(max_size=200), max_size=40)


def _framed(head: bytes, buffers: list[bytes]) -> memoryview:
    return memoryview(bytearray(b"".join(frame(head, [memoryview(b) for b in buffers]))))


@given(heads, buffer_lists)
def test_unframe_returns_the_head_and_buffers_that_were_framed(head: bytes, buffers: list[bytes]) -> None:
    got_head, got_buffers = unframe(_framed(head, buffers), "test")
    assert bytes(got_head) == head
    assert [bytes(b) for b in got_buffers] == buffers


@pytest.mark.parametrize("count", [1, 2, 15, 16, 17, 100])
def test_any_number_of_buffers_roundtrips(count: int) -> None:
    buffers = [bytes([n % 256]) * n for n in range(count)]
    _, got_buffers = unframe(_framed(b"head", buffers), "test")
    assert [bytes(b) for b in got_buffers] == buffers


@given(heads, buffer_lists)
def test_framed_buffers_start_on_aligned_offsets(head: bytes, buffers: list[bytes]) -> None:
    views = [memoryview(b) for b in buffers]
    offset = 0
    for part in frame(head, views):
        if any(part is view for view in views):
            assert offset % ALIGNMENT == 0
        offset += memoryview(part).nbytes


@given(heads, st.lists(st.binary(min_size=1, max_size=100), min_size=1, max_size=5), st.data())
def test_a_cut_frame_is_refused(head: bytes, buffers: list[bytes], data: st.DataObject) -> None:
    framed = _framed(head, buffers)
    cut = data.draw(st.integers(0, framed.nbytes - 1))
    with pytest.raises(ValueError, match="^test payload"):
        unframe(framed[:cut], "test")


@given(heads, st.lists(st.binary(max_size=100), max_size=5))
def test_trailing_bytes_after_a_frame_are_refused(head: bytes, buffers: list[bytes]) -> None:
    framed = bytearray(_framed(head, buffers)) + b"\x00"
    with pytest.raises(ValueError, match="length mismatch"):
        unframe(memoryview(framed), "test")


def test_a_count_beyond_the_payload_is_refused() -> None:
    with pytest.raises(ValueError, match="header truncated"):
        unframe(memoryview(bytearray(b"\xff\xff\xff\xff" + bytes(60))), "test")


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_pickle_roundtrips_several_out_of_band_buffers(chunks: list[bytes]) -> None:
    codec = PickleCodec()
    value = [pickle.PickleBuffer(bytearray(chunk)) for chunk in chunks]
    payload = memoryview(bytearray(b"".join(codec.encode(value))))
    assert [bytes(b) for b in codec.decode(payload)] == chunks
