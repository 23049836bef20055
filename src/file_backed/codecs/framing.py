"""The framing codecs share for a head and buffers placed on aligned offsets.

Layout: ``count:u32``, ``count+1`` lengths (u64: the head, then each buffer),
the head, then the buffers, each preceded by zero padding up to the next
multiple of `ALIGNMENT` bytes from the start of the payload, so buffers decode
aligned (and without a copy) from a payload that starts aligned.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from file_backed.codecs.base import ALIGNMENT, Buffer

__all__ = ["COUNT", "LENGTH", "frame", "unframe"]

#: The number of buffers.
COUNT = struct.Struct("<I")
#: One length.
LENGTH = struct.Struct("<Q")
_PADDING = bytes(ALIGNMENT)


def frame(head: Buffer, buffers: Sequence[memoryview]) -> list[Buffer]:
    """The parts of a payload holding `head` and `buffers` (byte views), in order."""
    lengths = [memoryview(head).nbytes, *(view.nbytes for view in buffers)]
    prelude = COUNT.pack(len(buffers)) + b"".join(LENGTH.pack(n) for n in lengths)
    parts: list[Buffer] = [prelude, head]
    end = len(prelude) + lengths[0]
    for view in buffers:
        padding = -end % ALIGNMENT
        if padding:
            parts.append(_PADDING[:padding])
        parts.append(view)
        end += padding + view.nbytes
    return parts


def unframe(data: memoryview, what: str) -> tuple[memoryview, list[memoryview]]:
    """The head and the buffers (views of `data`) of a payload made by `frame`.
    Raises `ValueError` naming `what` (the codec) when `data` is not one."""
    if data.nbytes < COUNT.size:
        raise ValueError(f"{what} payload too short")
    (count,) = COUNT.unpack_from(data)
    lengths_end = COUNT.size + (count + 1) * LENGTH.size
    if lengths_end > data.nbytes:
        raise ValueError(f"{what} payload header truncated")
    lengths = [LENGTH.unpack_from(data, COUNT.size + i * LENGTH.size)[0] for i in range(count + 1)]
    end = lengths_end + lengths[0]
    if end > data.nbytes:
        raise ValueError(f"{what} payload header truncated")
    head = data[lengths_end:end]
    buffers = []
    for length in lengths[1:]:
        start = end + -end % ALIGNMENT
        end = start + length
        buffers.append(data[start:end])
    if end != data.nbytes:
        raise ValueError(f"{what} payload length mismatch")
    return head, buffers
