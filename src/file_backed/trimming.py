"""Handing freed memory back to the operating system.

Evicting a value frees it, but the C allocator may keep the freed pages in its
heaps, so the process's resident set stays above what the pool holds. glibc's
``malloc_trim`` returns them (dask's workers trim for the same reason).
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable

__all__ = ["release_free_memory", "trimming_available"]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def trimming_available() -> bool:
    """Whether this platform's allocator can return freed memory on request."""
    return _malloc_trim() is not None


def release_free_memory() -> None:
    """Return the allocator's free pages to the operating system; a no-op where
    that is not possible."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
