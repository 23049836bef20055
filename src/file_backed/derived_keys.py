"""Keys derived from names: where saved-collection manifests and memoized results live.

Items get random version-4 keys (`file_backed.keys.new_key`). A blob that a
later process must find again without a manifest of its own — the manifest of
a saved collection, a memoized result — gets a *derived* key instead: a
version-8 UUID (RFC 9562, "custom") whose 12-bit field after the version tells
what it is and whose other bits come from a hash of what it stands for.

Layout of the 128 bits, most significant first::

    48 bits  a         hash bits
     4 bits  version   8
    12 bits  kind      KIND_MANIFEST, KIND_PENDING or KIND_MEMO
     2 bits  variant   0b10 (RFC 4122 / 9562)
    62 bits  c         hash bits; for collections the low 32 are the generation

A collection's keys share 78 bits of a BLAKE2b hash of its name, so every
generation of a name is recognised from the key alone, without reading it.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Final

__all__ = [
    "KIND_MANIFEST",
    "KIND_MEMO",
    "KIND_PENDING",
    "MAX_GENERATION",
    "collection_key",
    "kind_of",
    "memo_key",
    "name_id",
    "parse_collection_key",
]

#: The manifest of one generation of a saved collection.
KIND_MANIFEST: Final = 0x001
#: The record of the blobs a save of a collection is about to add (for cleanup after a crash).
KIND_PENDING: Final = 0x002
#: A memoized result.
KIND_MEMO: Final = 0x003

MAX_GENERATION: Final = 2**32 - 1

_GENERATION_BITS = 32
_VARIANT = 0b10


def _assemble(a: int, kind: int, c: int) -> uuid.UUID:
    return uuid.UUID(int=(a << 80) | (8 << 76) | (kind << 64) | (_VARIANT << 62) | c)


def kind_of(key: uuid.UUID) -> int | None:
    """The kind of a derived key, or None for any other key."""
    if key.version != 8 or key.variant != uuid.RFC_4122:
        return None
    return (key.int >> 64) & 0xFFF


def name_id(name: str) -> int:
    """78 bits of BLAKE2b of a collection name (its UTF-8 bytes)."""
    digest = hashlib.blake2b(name.encode(), digest_size=10, person=b"fb.collection").digest()
    return int.from_bytes(digest, "big") >> 2


def collection_key(kind: int, name: str, generation: int) -> uuid.UUID:
    """The key of generation `generation` (1 to `MAX_GENERATION`) of the manifest
    (`KIND_MANIFEST`) or pending record (`KIND_PENDING`) of collection `name`."""
    if not 0 < generation <= MAX_GENERATION:
        raise ValueError(f"a generation is between 1 and {MAX_GENERATION}, got {generation}")
    ident = name_id(name)
    a, c_high = ident >> 30, ident & (2**30 - 1)
    return _assemble(a, kind, (c_high << _GENERATION_BITS) | generation)


def parse_collection_key(key: uuid.UUID) -> tuple[int, int, int] | None:
    """``(kind, name_id, generation)`` of a collection key, or None for any other key."""
    kind = kind_of(key)
    if kind not in (KIND_MANIFEST, KIND_PENDING):
        return None
    a = key.int >> 80
    c = key.int & (2**62 - 1)
    generation = c & MAX_GENERATION
    if generation == 0:
        return None
    return kind, (a << 30) | (c >> _GENERATION_BITS), generation


def memo_key(digest: bytes) -> uuid.UUID:
    """The key of a memoized result whose call hashed to `digest` (at least 14 bytes)."""
    if len(digest) < 14:
        raise ValueError("a memo digest has at least 14 bytes")
    bits = int.from_bytes(digest[:14], "big") >> 2  # 110 bits
    return _assemble(bits >> 62, KIND_MEMO, bits & (2**62 - 1))
