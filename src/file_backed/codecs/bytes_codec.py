"""Raw bytes codec: `bytes`, `bytearray` and `memoryview` stored as they are."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from file_backed.codecs.base import Buffer, Codec

__all__ = ["BytesCodec"]


class BytesCodec(Codec):
    """Stores the bytes of any contiguous buffer without a copy.

    Decoding returns a `bytearray` (writable, so `load_mut` can change it in
    place) unless ``as_bytes=True``.
    """

    name: ClassVar[str] = "bytes"

    def __init__(self, *, as_bytes: bool = False) -> None:
        self.as_bytes = as_bytes

    def encode(self, obj: Any) -> Sequence[Buffer]:
        if not isinstance(obj, bytes | bytearray | memoryview):
            raise TypeError(f"the bytes codec stores bytes, bytearray or memoryview, not {type(obj).__name__}")
        view = memoryview(obj)
        if not view.contiguous:
            raise TypeError("the bytes codec needs a contiguous buffer")
        return [view.cast("B") if view.format != "B" or view.ndim != 1 else view]

    def decode(self, data: memoryview) -> Any:
        if self.as_bytes:
            return bytes(data)
        return data.obj if isinstance(data.obj, bytearray) and data.nbytes == len(data.obj) else bytearray(data)
