"""The sharded blob layout that file-like backends share (fs_hardlink, fsspec)
and that ``file-backed ls``/``verify`` read.

The blob of key ``K`` is ``<location>/<K.hex[:2]>/<K.hex>``. A blob being
written is ``<location>/<K.hex[:2]>/.<K.hex>.<16 hex>.tmp`` until it is renamed
into place; only names of that form are the library's to clean up.
"""

from __future__ import annotations

import re
import uuid

from file_backed.keys import random_hex

__all__ = ["SHARDS", "blob_parts", "is_temporary_name", "key_of_blob_name", "temporary_name"]

#: The shard directory names, ``"00"`` to ``"ff"``.
SHARDS = tuple(f"{i:02x}" for i in range(256))

_BLOB_NAME = re.compile(r"[0-9a-f]{32}")
_TEMPORARY_NAME = re.compile(r"\.([0-9a-f]{32})\.[0-9a-f]{16}\.tmp")


def blob_parts(key: uuid.UUID) -> tuple[str, str]:
    """The shard directory and the file name of `key`'s blob."""
    name = key.hex
    return name[:2], name


def key_of_blob_name(shard: str, name: str) -> uuid.UUID | None:
    """The key whose blob `name` is in `shard`, or None for any other name."""
    if _BLOB_NAME.fullmatch(name) and name.startswith(shard):
        return uuid.UUID(hex=name)
    return None


def is_temporary_name(shard: str, name: str) -> bool:
    """Whether `name` in `shard` is a partial blob written by this library."""
    match = _TEMPORARY_NAME.fullmatch(name)
    return match is not None and match.group(1).startswith(shard)


def temporary_name(name: str) -> str:
    """A fresh name to write the blob `name` under before renaming it into place."""
    return f".{name}.{random_hex(16)}.tmp"
