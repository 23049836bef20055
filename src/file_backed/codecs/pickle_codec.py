"""The default codec: pickle protocol 5 with out-of-band buffers."""

from __future__ import annotations

import pickle
import struct
from collections.abc import Sequence
from typing import Any, ClassVar

from file_backed.codecs.base import ALIGNMENT, Buffer, Codec

__all__ = ["PickleCodec"]

_COUNT = struct.Struct("<I")
_LENGTH = struct.Struct("<Q")
_PADDING = bytes(ALIGNMENT)
_SINGLE = struct.Struct("<IQ")  # the count (0) and the stream's length


def _loads(stream: memoryview, buffers: Sequence[memoryview] = ()) -> Any:
    try:
        return pickle.loads(stream, buffers=buffers)
    except (pickle.UnpicklingError, EOFError) as error:
        raise ValueError(f"invalid pickle stream: {error}") from error


class PickleCodec(Codec):
    """Pickle with protocol 5; contiguous out-of-band buffers (numpy arrays,
    `pickle.PickleBuffer`) are written as separate buffers, not copied into the
    pickle stream, and decoded as zero-copy writable views.

    Layout: ``count:u32``, ``count+1`` lengths (u64: the pickle stream, then each
    buffer), the pickle stream, the buffers, each preceded by zero padding up to
    the next multiple of `ALIGNMENT` bytes from the start of the payload, so
    arrays decode aligned from a payload that starts aligned.

    Never decode blobs from a location others can write: unpickling runs code.
    """

    name: ClassVar[str] = "pickle"

    def __init__(self, *, protocol: int = 5) -> None:
        if not 5 <= protocol <= pickle.HIGHEST_PROTOCOL:
            raise ValueError(f"pickle protocol must be 5..{pickle.HIGHEST_PROTOCOL}, got {protocol}")
        self.protocol = protocol

    def encode(self, obj: Any) -> Sequence[Buffer]:
        buffers: list[memoryview] = []

        def out_of_band(buffer: pickle.PickleBuffer) -> bool:
            try:
                buffers.append(buffer.raw())
            except BufferError:  # not contiguous: keep it in the stream
                return True
            return False

        stream = pickle.dumps(obj, protocol=self.protocol, buffer_callback=out_of_band)
        lengths = [len(stream), *(view.nbytes for view in buffers)]
        header = _COUNT.pack(len(buffers)) + b"".join(_LENGTH.pack(n) for n in lengths)
        if not buffers:
            return [header, stream]
        parts: list[Buffer] = [header, stream]
        end = len(header) + len(stream)
        for view in buffers:
            padding = -end % ALIGNMENT
            if padding:
                parts.append(_PADDING[:padding])
            parts.append(view)
            end += padding + view.nbytes
        return parts

    def decode(self, data: memoryview) -> Any:
        if data.nbytes < _COUNT.size:
            raise ValueError("pickle payload too short")
        (count,) = _COUNT.unpack_from(data)
        if count == 0:  # no out-of-band buffers: the common case of small objects
            if data.nbytes < _SINGLE.size:
                raise ValueError("pickle payload header truncated")
            (length,) = _LENGTH.unpack_from(data, _COUNT.size)
            if _SINGLE.size + length != data.nbytes:
                raise ValueError("pickle payload length mismatch")
            return _loads(data[_SINGLE.size :])
        offset = _COUNT.size
        lengths_end = offset + (count + 1) * _LENGTH.size
        if lengths_end > data.nbytes:
            raise ValueError("pickle payload header truncated")
        lengths = [_LENGTH.unpack_from(data, offset + i * _LENGTH.size)[0] for i in range(count + 1)]
        views = [data[lengths_end : lengths_end + lengths[0]]]
        end = lengths_end + lengths[0]
        for length in lengths[1:]:
            start = end + -end % ALIGNMENT
            end = start + length
            views.append(data[start:end])
        if end != data.nbytes:
            raise ValueError("pickle payload length mismatch")
        return _loads(views[0], views[1:])
