"""The codec contract."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

__all__ = ["ALIGNMENT", "Buffer", "Codec"]

#: Bundled backends hand `Codec.decode` a payload that starts on a multiple of
#: this many bytes; codecs place array data on such offsets to decode aligned.
ALIGNMENT = 64
#: Anything that exposes the buffer protocol as contiguous bytes.
Buffer = bytes | bytearray | memoryview


class Codec(abc.ABC):
    """Encodes objects to a sequence of buffers and decodes them back.

    A codec is constructed with keyword options only (``cls(**options)``) and
    must be safe to use from several threads at once.

    Class attributes
    ----------------
    name:
        The name the codec is registered under; backends record it in every
        blob header so a blob is never decoded by the wrong codec.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def encode(self, obj: Any) -> Sequence[Buffer]:
        """Return buffers whose concatenation is the encoding of `obj`.

        Several buffers let large payloads (array data, pickle protocol-5
        out-of-band buffers) be written with one vectored write and no copy.
        The buffers must stay valid and unchanged until the write is done; the
        caller holds `obj` for that long.
        """

    @abc.abstractmethod
    def decode(self, data: memoryview) -> Any:
        """Return the object whose encoding is `data`.

        `data` is a writable view that the codec may keep referencing (zero-copy
        decoding): the caller never reuses it while anything references it. It
        starts on an `ALIGNMENT`-byte boundary when the backend reads blobs into
        `file_backed.buffers.allocate` buffers (every bundled backend does). Raises `ValueError` (or a
        subclass) when `data` is not a valid encoding.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
