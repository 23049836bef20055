"""The segmented LRU against a straightforward model of the Rust crate's policy."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from file_backed.lru import SegmentedLRU


class LRUModel(RuleBasedStateMachine):
    """Two lists, most recent first, updated by the policy as written in API.md:
    halves of ``max_items`` and, with a byte budget, of ``max_bytes``."""

    @initialize(
        max_items=st.integers(min_value=1, max_value=8),
        max_bytes=st.none() | st.integers(min_value=1, max_value=40),
    )
    def setup(self, max_items: int, max_bytes: int | None) -> None:
        self.lru: SegmentedLRU[int] = SegmentedLRU(max_items, max_bytes)
        self.max_bytes = max_bytes
        self.back_capacity = max_items // 2
        self.front_capacity = max_items - self.back_capacity
        self.front_bytes = None if max_bytes is None else max_bytes - max_bytes // 2
        self.front: list[int] = []
        self.back: list[int] = []
        self.sizes: dict[int, int] = {}
        self.next_entry = 0

    def _bytes(self, entries: list[int]) -> int:
        return sum(self.sizes[entry] for entry in entries)

    def _model_rebalance(self) -> list[int]:
        while len(self.front) > self.front_capacity or (
            self.front_bytes is not None and self._bytes(self.front) > self.front_bytes
        ):
            self.back.insert(0, self.front.pop())
        victims = []
        while len(self.back) > self.back_capacity:
            victims.append(self.back.pop())
        while self.max_bytes is not None and self._bytes(self.front + self.back) > self.max_bytes:
            victims.append(self.back.pop() if self.back else self.front.pop())
        for victim in victims:
            del self.sizes[victim]
        return victims

    @rule(size=st.integers(min_value=0, max_value=15))
    def insert(self, size: int) -> None:
        entry = self.next_entry
        self.next_entry += 1
        self.front.insert(0, entry)
        self.sizes[entry] = size
        assert self.lru.insert(entry, size) == self._model_rebalance()

    @precondition(lambda self: self.front or self.back)
    @rule(data=st.data())
    def access(self, data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from(self.front + self.back))
        if entry in self.front:
            expected: list[int] = []
        else:
            self.back.remove(entry)
            self.front.insert(0, entry)
            expected = self._model_rebalance()
        assert self.lru.access(entry) == expected

    @precondition(lambda self: self.front or self.back)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from(self.front + self.back))
        (self.front if entry in self.front else self.back).remove(entry)
        del self.sizes[entry]
        assert self.lru.remove(entry)

    @invariant()
    def same_order(self) -> None:
        if hasattr(self, "lru"):
            assert self.lru.order() == self.front + self.back
            assert self.lru.nbytes == self._bytes(self.front + self.back)
            assert list(self.lru.least_recent()) == (self.front + self.back)[::-1]


TestLRUModel = LRUModel.TestCase


def test_byte_budget_takes_victims_from_the_end() -> None:
    lru: SegmentedLRU[str] = SegmentedLRU(10, max_bytes=100)
    assert list(lru.insert("a", 60)) == []
    assert list(lru.insert("b", 30)) == []
    assert list(lru.insert("c", 30)) == ["a"]
    assert lru.nbytes == 60


def test_a_hit_in_the_back_half_saves_an_item_under_a_byte_budget() -> None:
    """The halves count bytes: an item used while in the back half outlives
    items inserted after it but never used (as with max_items alone)."""
    lru: SegmentedLRU[int] = SegmentedLRU(1000, max_bytes=10)
    for entry in range(9):
        lru.insert(entry, 1)
    for _ in range(3):
        lru.access(0)
    victims = [victim for entry in range(9, 12) for victim in lru.insert(entry, 1)]
    assert 0 not in victims
    assert victims == [1, 2]


def test_set_limits_returns_what_no_longer_fits() -> None:
    lru: SegmentedLRU[str] = SegmentedLRU(10, max_bytes=100)
    for entry in "abcd":
        lru.insert(entry, 20)
    assert lru.set_limits(10, 50) == ["a", "b"]
    assert lru.set_limits(1, None) == ["c"]
    assert lru.order() == ["d"]


def test_insert_last_makes_the_next_victim() -> None:
    lru: SegmentedLRU[str] = SegmentedLRU(2)
    lru.insert("a")
    lru.insert("b")
    lru.insert_last("retry")
    assert list(lru.insert("c")) == ["retry", "a"]


@pytest.mark.parametrize("max_items", [0, -1])
def test_max_items_must_be_positive(max_items: int) -> None:
    with pytest.raises(ValueError, match="max_items"):
        SegmentedLRU(max_items)
