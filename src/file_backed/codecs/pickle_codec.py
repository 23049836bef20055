"""The default codec: pickle protocol 5 with out-of-band buffers."""

from __future__ import annotations

import pickle
import struct
from collections.abc import Sequence
from typing import Any, ClassVar

from file_backed.codecs.base import Buffer, Codec
from file_backed.codecs.framing import COUNT, frame, unframe

__all__ = ["PickleCodec"]

_SINGLE = struct.Struct("<IQ")  # the count (0) and the stream's length


class PickleCodec(Codec):
    """Pickle with protocol 5; contiguous out-of-band buffers (numpy arrays,
    `pickle.PickleBuffer`) are written as separate buffers, not copied into the
    pickle stream, and decoded as zero-copy writable views.

    Layout: `file_backed.codecs.framing` with the pickle stream as its head and
    the out-of-band buffers as its buffers, so arrays decode aligned from a
    payload that starts aligned.

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
        if not buffers:  # the common case of small objects
            return [_SINGLE.pack(0, len(stream)), stream]
        return frame(stream, buffers)

    def decode(self, data: memoryview) -> Any:
        size = data.nbytes
        buffers: Sequence[memoryview] = ()
        if size >= _SINGLE.size and _SINGLE.unpack_from(data) == (0, size - _SINGLE.size):
            stream = data[_SINGLE.size :]  # no out-of-band buffers: the common case of small objects
        elif size >= COUNT.size and COUNT.unpack_from(data)[0] == 0:
            raise ValueError(
                "pickle payload header truncated" if size < _SINGLE.size else "pickle payload length mismatch"
            )
        else:
            stream, buffers = unframe(data, "pickle")
        try:
            return pickle.loads(stream, buffers=buffers)
        except (pickle.UnpicklingError, EOFError) as error:
            raise ValueError(f"invalid pickle stream: {error}") from error
