"""The default codec: pickle protocol 5 with out-of-band buffers."""

from __future__ import annotations

import pickle
import struct
from collections.abc import Sequence
from typing import Any, ClassVar

from file_backed.codecs.base import Buffer, Codec

__all__ = ["PickleCodec"]

_COUNT = struct.Struct("<I")
_LENGTH = struct.Struct("<Q")


class PickleCodec(Codec):
    """Pickle with protocol 5; contiguous out-of-band buffers (numpy arrays,
    `pickle.PickleBuffer`) are written as separate buffers, not copied into the
    pickle stream, and decoded as zero-copy writable views.

    Layout: ``count:u32``, ``count+1`` lengths (u64: the pickle stream, then each
    buffer), the pickle stream, the buffers.

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
        return [header, stream, *buffers]

    def decode(self, data: memoryview) -> Any:
        if data.nbytes < _COUNT.size:
            raise ValueError("pickle payload too short")
        (count,) = _COUNT.unpack_from(data)
        offset = _COUNT.size
        lengths_end = offset + (count + 1) * _LENGTH.size
        if lengths_end > data.nbytes:
            raise ValueError("pickle payload header truncated")
        lengths = [_LENGTH.unpack_from(data, offset + i * _LENGTH.size)[0] for i in range(count + 1)]
        if lengths_end + sum(lengths) != data.nbytes:
            raise ValueError("pickle payload length mismatch")
        views = []
        start = lengths_end
        for length in lengths:
            views.append(data[start : start + length])
            start += length
        try:
            return pickle.loads(views[0], buffers=views[1:])
        except (pickle.UnpicklingError, EOFError) as error:
            raise ValueError(f"invalid pickle stream: {error}") from error
