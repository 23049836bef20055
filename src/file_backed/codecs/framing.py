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
#: Preludes (the count and all lengths) by count, for the counts most payloads have.
_PRELUDES = [struct.Struct(f"<I{count + 1}Q") for count in range(16)]
_ONE = _PRELUDES[1]


def _prelude(count: int) -> struct.Struct:
    """Packs and unpacks the count and the ``count+1`` lengths."""
    return _PRELUDES[count] if count < len(_PRELUDES) else struct.Struct(f"<I{count + 1}Q")


def frame(head: Buffer, buffers: Sequence[memoryview]) -> list[Buffer]:
    """The parts of a payload holding `head` and `buffers` (byte views), in order."""
    head_length = len(head) if type(head) is bytes else memoryview(head).nbytes
    count = len(buffers)
    if count == 1:  # the common case: one array
        (view,) = buffers
        padding = -(_ONE.size + head_length) % ALIGNMENT
        prelude_bytes = _ONE.pack(1, head_length, view.nbytes)
        return [prelude_bytes, head, _PADDING[:padding], view] if padding else [prelude_bytes, head, view]
    prelude = _prelude(count)
    end = prelude.size + head_length
    lengths = []
    parts: list[Buffer] = [b"", head]
    for view in buffers:
        padding = -end % ALIGNMENT
        if padding:
            parts.append(_PADDING[:padding])
        parts.append(view)
        length = view.nbytes
        lengths.append(length)
        end += padding + length
    parts[0] = prelude.pack(count, head_length, *lengths)
    return parts


def unframe(data: memoryview, what: str) -> tuple[memoryview, list[memoryview]]:
    """The head and the buffers (views of `data`) of a payload made by `frame`.
    Raises `ValueError` naming `what` (the codec) when `data` is not one."""
    size = data.nbytes
    if size < COUNT.size:
        raise ValueError(f"{what} payload too short")
    (count,) = COUNT.unpack_from(data)
    if COUNT.size + (count + 1) * LENGTH.size > size:
        raise ValueError(f"{what} payload header truncated")
    prelude = _prelude(count)
    lengths = prelude.unpack_from(data)
    end = prelude.size + lengths[1]
    if end > size:
        raise ValueError(f"{what} payload header truncated")
    head = data[prelude.size : end]
    if count == 1:  # the common case: one array
        start = end + -end % ALIGNMENT
        if start + lengths[2] != size:
            raise ValueError(f"{what} payload length mismatch")
        return head, [data[start:size]]
    buffers = []
    for index in range(2, count + 2):
        start = end + -end % ALIGNMENT
        end = start + lengths[index]
        buffers.append(data[start:end])
    if end != size:
        raise ValueError(f"{what} payload length mismatch")
    return head, buffers
