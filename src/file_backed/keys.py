"""New keys for items: random version-4 UUIDs without a system call per key."""

from __future__ import annotations

import os
import random
import uuid

__all__ = ["new_key", "random_hex"]

_VERSION_4 = (4 << 76) | (2 << 62)  # version 4, RFC 4122 variant
_RANDOM_BITS = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown
_new_uuid = object.__new__
_set_slot = object.__setattr__  # UUID's own __setattr__ refuses: it is immutable

# A generator of our own, seeded from the OS: the user seeding `random` (or
# taking its state) never makes keys repeat across runs. Reseeded in a forked
# child, so parent and child never draw the same keys.
_generator = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _generator.seed(os.urandom(32)))


def random_hex(digits: int) -> str:
    """`digits` random hexadecimal digits (for unique file names), from the
    same generator as `new_key`."""
    return f"{_generator.getrandbits(4 * digits):0{digits}x}"


def new_key() -> uuid.UUID:
    """A random (version 4) UUID with 122 random bits, as `uuid.uuid4` gives,
    from a generator seeded by the operating system.

    Made as ``uuid.UUID.__setstate__`` (unpickling) makes one, without
    ``__init__``'s argument checks: a fifth of the cost, on every insert."""
    key: uuid.UUID = _new_uuid(uuid.UUID)
    _set_slot(key, "int", (_generator.getrandbits(128) & _RANDOM_BITS) | _VERSION_4)
    _set_slot(key, "is_safe", _UNKNOWN_SAFETY)
    return key
