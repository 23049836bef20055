"""The segmented LRU order of the file_backed Rust crate, as a plain data structure."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Generic, TypeVar

__all__ = ["SegmentedLRU"]

K = TypeVar("K", bound=Hashable)


class SegmentedLRU(Generic[K]):
    """Two segments, each ordered from most to least recently entered.

    ``max_items`` is split in two halves: the front holds ``max_items -
    max_items // 2`` entries, the back ``max_items // 2``. New entries enter the
    front of the front half; what falls off the front half enters the front of
    the back half; what falls off the back half is a victim. Accessing an entry
    in the front half does not move it; accessing one in the back half moves it
    to the front of the front half. With ``max_bytes``, victims are taken from
    the end of the back half (then of the front half) until the sizes fit.

    Not thread-safe: the pool calls it under its lock.
    """

    __slots__ = ("_back", "_front", "back_capacity", "front_capacity", "max_bytes", "max_items", "nbytes")

    def __init__(self, max_items: int, max_bytes: int | None = None) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.back_capacity = max_items // 2
        self.front_capacity = max_items - self.back_capacity
        # Most recently entered last; each maps an entry to its size.
        self._front: OrderedDict[K, int] = OrderedDict()
        self._back: OrderedDict[K, int] = OrderedDict()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._front) + len(self._back)

    def __contains__(self, entry: object) -> bool:
        return entry in self._front or entry in self._back

    def order(self) -> list[K]:
        """Entries from the front of the front half to the end of the back half."""
        return [*reversed(self._front), *reversed(self._back)]

    def insert(self, entry: K, size: int = 0) -> Sequence[K]:
        """Enter `entry` at the front (or access it when present); returns the victims."""
        if entry in self._front:
            return ()
        if entry in self._back:
            return self.access(entry)
        self._front[entry] = size
        self.nbytes += size
        return self._rebalance()

    def insert_last(self, entry: K, size: int = 0) -> None:
        """Enter `entry` at the end of the back half: the next victim. Takes no
        victims now, so the order may stay over budget until the next insert."""
        self._back[entry] = size
        self._back.move_to_end(entry, last=False)
        self.nbytes += size

    def access(self, entry: K) -> Sequence[K]:
        """Record an access to a present entry; returns the victims."""
        if entry in self._front:
            return ()
        size = self._back.pop(entry)
        self._front[entry] = size
        return self._rebalance()

    def remove(self, entry: K) -> bool:
        """Take `entry` out of the order; False when it was not there."""
        size = self._front.pop(entry, None)
        if size is None:
            size = self._back.pop(entry, None)
        if size is None:
            return False
        self.nbytes -= size
        return True

    def _rebalance(self) -> Sequence[K]:
        while len(self._front) > self.front_capacity:
            entry, size = self._front.popitem(last=False)
            self._back[entry] = size
        victims: list[K] = []
        while len(self._back) > self.back_capacity:
            victims.append(self._pop_last(self._back))
        if self.max_bytes is not None:
            while self.nbytes > self.max_bytes and (self._back or self._front):
                victims.append(self._pop_last(self._back or self._front))
        return victims

    def _pop_last(self, segment: OrderedDict[K, int]) -> K:
        entry, size = segment.popitem(last=False)
        self.nbytes -= size
        return entry
