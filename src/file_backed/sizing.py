"""How many bytes of memory an object holds, for the pool's byte budget."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["default_sizeof"]

_MAX_DEPTH = 3


def default_sizeof(obj: Any) -> int:
    """Bytes held by `obj`: ``nbytes`` where it has one (numpy arrays,
    memoryviews), the length of bytes-like objects, the sum over the items of
    lists, tuples, sets and dicts (three levels deep), else `sys.getsizeof`."""
    return _sizeof(obj, 0)


def _sizeof(obj: Any, depth: int) -> int:
    nbytes = getattr(obj, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(obj, bytes | bytearray):
        return len(obj)
    size = sys.getsizeof(obj)
    if depth < _MAX_DEPTH:
        if isinstance(obj, list | tuple | set | frozenset):
            size += sum(_sizeof(item, depth + 1) for item in obj)
        elif isinstance(obj, dict):
            size += sum(_sizeof(k, depth + 1) + _sizeof(v, depth + 1) for k, v in obj.items())
    return size
