"""The segmented LRU order of the file_backed Rust crate, as a plain data structure."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["SegmentedLRU"]

K = TypeVar("K", bound=Hashable)


class SegmentedLRU(Generic[K]):
    """Two segments, each ordered from most to least recently entered.

    The budget is split in two halves: the front half holds at most
    ``max_items - max_items // 2`` entries and, with ``max_bytes``, at most
    ``max_bytes - max_bytes // 2`` bytes; the back half holds the rest of the
    budget (``max_items // 2`` entries, and whatever keeps the total within
    ``max_bytes``). New entries enter the front of the front half; what falls
    off the front half enters the front of the back half; what falls off the
    back half is a victim. Accessing an entry in the front half does not move
    it; accessing one in the back half moves it to the front of the front half.
    So under a byte budget, too, the least recently used entries go first.

    Not thread-safe: the pool calls it under its lock.
    """

    __slots__ = (
        "_back",
        "back_items",
        "front",
        "front_bytes",
        "front_bytes_cap",
        "front_items",
        "max_bytes",
        "max_items",
        "nbytes",
    )

    def __init__(self, max_items: int, max_bytes: int | None = None) -> None:
        # Most recently entered last; each maps an entry to its size. `front`
        # is the front half (entries whose access moves nothing): read-only
        # for callers, an attribute rather than a property for the hit path.
        self.front: OrderedDict[K, int] = OrderedDict()
        self._back: OrderedDict[K, int] = OrderedDict()
        self.nbytes = 0
        self.front_bytes = 0
        self.max_items = self.front_items = self.back_items = 0
        self.max_bytes: int | None = None
        self.front_bytes_cap: int | None = None
        self.set_limits(max_items, max_bytes)

    def set_limits(self, max_items: int, max_bytes: int | None) -> list[K]:
        """Change the budget; returns the victims that no longer fit."""
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.max_items = max_items
        self.back_items = max_items // 2
        self.front_items = max_items - self.back_items
        self.max_bytes = max_bytes
        self.front_bytes_cap = None if max_bytes is None else max_bytes - max_bytes // 2
        return self._rebalance()

    def __len__(self) -> int:
        return len(self.front) + len(self._back)

    def __contains__(self, entry: object) -> bool:
        return entry in self.front or entry in self._back

    def order(self) -> list[K]:
        """Entries from the front of the front half to the end of the back half."""
        return [*reversed(self.front), *reversed(self._back)]

    def size_of(self, entry: K) -> int | None:
        """The size `entry` was entered with, or None when it is not here."""
        size = self.front.get(entry)
        return self._back.get(entry) if size is None else size

    def insert(self, entry: K, size: int = 0) -> list[K]:
        """Enter `entry` at the front (or access it when present); returns the victims."""
        if entry in self.front:
            return []
        if entry in self._back:
            return self.access(entry)
        self.front[entry] = size
        self.front_bytes += size
        self.nbytes += size
        return self._rebalance()

    def insert_last(self, entry: K, size: int = 0) -> None:
        """Enter `entry` at the end of the back half: the next victim. Takes no
        victims now, so the order may stay over budget until the next insert."""
        self._back[entry] = size
        self._back.move_to_end(entry, last=False)
        self.nbytes += size

    def access(self, entry: K) -> list[K]:
        """Record an access to a present entry; returns the victims."""
        if entry in self.front:
            return []
        size = self._back.pop(entry)
        self.front[entry] = size
        self.front_bytes += size
        return self._rebalance()

    def remove(self, entry: K) -> bool:
        """Take `entry` out of the order; False when it was not there."""
        size = self.front.pop(entry, None)
        if size is not None:
            self.front_bytes -= size
        else:
            size = self._back.pop(entry, None)
        if size is None:
            return False
        self.nbytes -= size
        return True

    def set_size(self, entry: K, size: int) -> list[K]:
        """Change the size of a present entry in place (no access); returns the
        victims. A no-op for an absent entry."""
        if entry in self.front:
            self.front_bytes += size - self.front[entry]
            self.nbytes += size - self.front[entry]
            self.front[entry] = size
        elif entry in self._back:
            self.nbytes += size - self._back[entry]
            self._back[entry] = size
        else:
            return []
        return self._rebalance()

    def least_recent(self) -> Iterator[K]:
        """Entries from the least recently used (the end of the back half) on.
        Do not change the order while iterating."""
        yield from self._back
        yield from self.front

    def pop_victim(self) -> K | None:
        """Take out the least recently used entry (the end of the back half, else
        of the front half); None when empty."""
        if self._back:
            return self._pop_last(self._back)
        if self.front:
            entry, size = self.front.popitem(last=False)
            self.front_bytes -= size
            self.nbytes -= size
            return entry
        return None

    def _rebalance(self) -> list[K]:
        front, back = self.front, self._back
        cap = self.front_bytes_cap
        front_items = self.front_items
        while len(front) > front_items or (cap is not None and self.front_bytes > cap):
            entry, size = front.popitem(last=False)
            self.front_bytes -= size
            back[entry] = size
        victims: list[K] = []
        back_items = self.back_items
        while len(back) > back_items:  # `_pop_last` inline: once per miss of a full pool
            entry, size = back.popitem(last=False)
            self.nbytes -= size
            victims.append(entry)
        if self.max_bytes is not None:
            while self.nbytes > self.max_bytes:
                victim = self.pop_victim()
                if victim is None:
                    break
                victims.append(victim)
        return victims

    def _pop_last(self, segment: OrderedDict[K, int]) -> K:
        entry, size = segment.popitem(last=False)
        self.nbytes -= size
        return entry
