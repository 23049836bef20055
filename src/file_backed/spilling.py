"""Whether the ``store`` hook running on this thread writes an evicted value.

An eviction write (a *spill*) is read back only by the store that wrote it,
through its ``load`` hook, or leaves the temporary area only through
``persist``; nothing else names that blob. A backend may keep such blobs in a
form private to its temporary area (`file_backed.segments` packs small ones
into shared files). Blobs written for `Fb.write_now` and `Fb.persist` are not
spills: backends keep them in their documented layout.
"""

from __future__ import annotations

import threading

__all__ = ["in_spill", "spill"]


class _Spilling(threading.local):
    #: Whether the ``store`` hook call on this thread writes an evicted value.
    spilling = False


_current = _Spilling()


def in_spill() -> bool:
    """Whether the ``store`` hook call running on this thread writes an evicted value."""
    return _current.spilling


class spill:
    """Context in which the store's ``store`` hook call writes an evicted value."""

    __slots__ = ("_outer",)

    def __init__(self) -> None:
        self._outer = False

    def __enter__(self) -> None:
        self._outer = _current.spilling
        _current.spilling = True

    def __exit__(self, *exc_info: object) -> None:
        _current.spilling = self._outer
