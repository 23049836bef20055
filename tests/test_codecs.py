"""Codecs and the blob format: roundtrips, and no wrong object from changed bytes."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import file_backed as fb
from file_backed.blob import decode_blob, encode_blob
from file_backed.codecs.bytes_codec import BytesCodec
from file_backed.codecs.framing import frame
from file_backed.codecs.json_codec import JsonCodec
from file_backed.codecs.pickle_codec import PickleCodec

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


def _roundtrip(codec: fb.Codec, value: object) -> object:
    buffers, size = encode_blob(codec, value)
    blob = bytearray(b"".join(buffers))
    assert len(blob) == size
    return decode_blob(codec, blob, source="test")


@given(json_values)
def test_json_roundtrips(value: object) -> None:
    assert _roundtrip(JsonCodec(), value) == value


@given(json_values | st.binary() | st.tuples(st.integers(), st.text()) | st.frozensets(st.integers()))
def test_pickle_roundtrips(value: object) -> None:
    assert _roundtrip(PickleCodec(), value) == value


@given(st.binary())
def test_bytes_roundtrips(value: bytes) -> None:
    assert _roundtrip(BytesCodec(), value) == value


@given(
    st.lists(st.integers(min_value=0, max_value=255), min_size=1, max_size=64),
    st.integers(min_value=0),
    st.integers(min_value=0, max_value=7),
)
def test_a_flipped_bit_never_decodes_to_a_wrong_object(values: list[int], position: int, bit: int) -> None:
    codec = PickleCodec()
    buffers, size = encode_blob(codec, values)
    blob = bytearray(b"".join(buffers))
    blob[position % size] ^= 1 << bit
    with pytest.raises(fb.CorruptBlobError):
        decode_blob(codec, blob, source="test")


@given(st.binary(max_size=200), st.integers(min_value=0))
def test_truncation_is_corruption(value: bytes, cut: int) -> None:
    codec = BytesCodec()
    blob = b"".join(encode_blob(codec, value)[0])
    with pytest.raises(fb.CorruptBlobError):
        decode_blob(codec, bytearray(blob[: cut % len(blob)]), source="test")


def test_blob_of_another_codec_is_rejected_with_both_names() -> None:
    blob = bytearray(b"".join(encode_blob(JsonCodec(), [1])[0]))
    with pytest.raises(fb.CorruptBlobError, match="'json'.*'pickle'"):
        decode_blob(PickleCodec(), blob, source="test")


def test_pickle_keeps_numpy_buffers_out_of_band() -> None:
    np = pytest.importorskip("numpy")
    array = np.arange(1000, dtype=np.int64)
    buffers = PickleCodec().encode({"a": array})
    assert any(memoryview(b).nbytes == array.nbytes for b in buffers[2:])
    restored = _roundtrip(PickleCodec(), {"a": array})
    np.testing.assert_array_equal(restored["a"], array)  # type: ignore[index]


def _array(dtype: str, shape: list[int], layout: str, writeable: bool) -> Any:
    """An array of `dtype` and `shape`: C- or F-ordered, or a strided view."""
    np = pytest.importorskip("numpy")
    base = np.arange(int(np.prod(shape)) * 2).astype(dtype)
    if layout == "strided":
        array = base[::2].reshape(shape)
    else:
        array = base[: int(np.prod(shape))].reshape(shape, order=layout)
    array.flags.writeable = writeable
    return array


arrays = st.builds(
    _array,
    st.sampled_from(["<f8", "<i2", "u1", "?", "<c16", ">f8", "<M8[ns]", "<U3"]),
    st.lists(st.integers(0, 4), max_size=3),
    st.sampled_from(["C", "F", "strided"]),
    st.booleans(),
)


def _payload(codec: fb.Codec, value: object) -> bytearray:
    return bytearray(b"".join(bytes(buffer) for buffer in codec.encode(value)))


@given(arrays)
def test_pickle_encodes_an_array_it_has_seen_as_pickling_it_does(array: Any) -> None:
    codec = PickleCodec()
    first = _payload(codec, array)
    assert _payload(codec, array) == first == _payload(PickleCodec(), array)


@given(arrays)
def test_pickle_decodes_an_array_it_has_seen_as_unpickling_does(array: Any) -> None:
    np = pytest.importorskip("numpy")
    codec = PickleCodec()
    payload = _payload(codec, array)
    remembered = codec.decode(memoryview(bytearray(payload)))
    unpickled = PickleCodec().decode(memoryview(bytearray(payload)))
    assert type(remembered) is type(unpickled) is np.ndarray
    assert remembered.dtype == unpickled.dtype
    assert remembered.shape == unpickled.shape and remembered.strides == unpickled.strides
    assert remembered.flags.writeable == unpickled.flags.writeable
    np.testing.assert_array_equal(remembered, array)


def test_pickle_decodes_an_array_that_holds_its_data_exported() -> None:
    np = pytest.importorskip("numpy")
    codec = PickleCodec()
    array = np.arange(512, dtype=np.float64)
    _payload(codec, array)  # remembered from here on
    payload = _payload(codec, array)
    decoded = codec.decode(memoryview(payload))
    with pytest.raises(BufferError):  # the memory the array reads cannot be released or moved under it
        payload.extend(b"x")
    del decoded
    payload.extend(b"x")


def test_pickle_rejects_a_remembered_array_stream_with_data_of_another_length() -> None:
    np = pytest.importorskip("numpy")
    codec = PickleCodec()
    array = np.arange(512, dtype=np.float64)
    _payload(codec, array)
    stream = bytes(codec.encode(array)[1])
    short = bytearray(b"".join(bytes(part) for part in frame(stream, [memoryview(bytes(8 * 511))])))
    for decoder in (codec, PickleCodec()):  # remembered or not: as unpickling does
        with pytest.raises(ValueError):
            decoder.decode(memoryview(short))


def test_pickle_remembers_an_array_layout_without_copying_the_array() -> None:
    np = pytest.importorskip("numpy")
    array = np.zeros(1 << 19)  # 4 MiB
    tracemalloc.start()
    try:
        PickleCodec().encode(array)  # remembers its layout
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < array.nbytes // 8


def test_pickle_keeps_subclasses_of_arrays() -> None:
    np = pytest.importorskip("numpy")
    codec = PickleCodec()
    array = np.ma.masked_array(np.arange(6.0), mask=[0, 1, 0, 0, 1, 0])
    for _ in range(2):
        restored = _roundtrip(codec, array)
        assert type(restored) is np.ma.MaskedArray
        assert restored.mask.tolist() == array.mask.tolist()  # type: ignore[attr-defined]


def test_pickle_encodes_arrays_of_more_layouts_than_it_remembers() -> None:
    np = pytest.importorskip("numpy")
    codec = PickleCodec()
    for length in range(300):
        array = np.arange(length, dtype=np.int32)
        np.testing.assert_array_equal(_roundtrip(codec, array), array)
        np.testing.assert_array_equal(_roundtrip(codec, array), array)


@given(st.sampled_from(["<i4", ">f8", "u1", "<c16"]), st.lists(st.integers(0, 5), max_size=3), st.booleans())
def test_numpy_codec_roundtrips_shapes_and_orders(dtype: str, shape: list[int], fortran: bool) -> None:
    np = pytest.importorskip("numpy")
    from file_backed.codecs.numpy_codec import NumpyCodec

    array = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape, order="F" if fortran else "C")
    restored = _roundtrip(NumpyCodec(), array)
    assert restored.dtype == array.dtype  # type: ignore[attr-defined]
    np.testing.assert_array_equal(restored, array)


def test_numpy_codec_rejects_object_arrays() -> None:
    np = pytest.importorskip("numpy")
    from file_backed.codecs.numpy_codec import NumpyCodec

    with pytest.raises(TypeError, match="object dtype"):
        NumpyCodec().encode(np.array([object()]))


def test_msgpack_roundtrips() -> None:
    pytest.importorskip("msgpack")
    from file_backed.codecs.msgpack_codec import MsgpackCodec

    value = {"a": [1, 2, b"x"], "b": None}
    assert _roundtrip(MsgpackCodec(), value) == value


def test_bytes_codec_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="bytes codec"):
        BytesCodec().encode("text")
