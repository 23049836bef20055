"""MessagePack codec: compact and safe to decode from untrusted locations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import msgpack

from file_backed.codecs.base import Buffer, Codec

__all__ = ["MsgpackCodec"]


class MsgpackCodec(Codec):
    """MessagePack via the `msgpack` package; tuples come back as lists."""

    name: ClassVar[str] = "msgpack"

    def encode(self, obj: Any) -> Sequence[Buffer]:
        return [msgpack.packb(obj, use_bin_type=True)]

    def decode(self, data: memoryview) -> Any:
        try:
            return msgpack.unpackb(data, raw=False, strict_map_key=False)
        except (msgpack.UnpackException, msgpack.ExtraData, ValueError) as error:
            raise ValueError(f"invalid msgpack payload: {error}") from error
