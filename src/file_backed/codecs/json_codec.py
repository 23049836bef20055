"""JSON codec: safe to decode from untrusted locations; values JSON can represent only."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from file_backed.codecs.base import Buffer, Codec

__all__ = ["JsonCodec"]


class JsonCodec(Codec):
    """UTF-8 JSON. Tuples come back as lists and non-string dict keys as strings,
    as with `json` itself; `encode` raises `TypeError` for other types."""

    name: ClassVar[str] = "json"

    def __init__(self, *, sort_keys: bool = False) -> None:
        self.sort_keys = sort_keys

    def encode(self, obj: Any) -> Sequence[Buffer]:
        text = json.dumps(obj, sort_keys=self.sort_keys, separators=(",", ":"), allow_nan=True)
        return [text.encode()]

    def decode(self, data: memoryview) -> Any:
        try:
            return json.loads(bytes(data))
        except UnicodeDecodeError as error:
            raise ValueError(f"invalid JSON payload: {error}") from error
