"""The segmented LRU against a straightforward model of the Rust crate's policy."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from file_backed.lru import SegmentedLRU


class LRUModel(RuleBasedStateMachine):
    """Two lists, most recent first, updated by the policy as written in API.md."""

    @initialize(max_items=st.integers(min_value=1, max_value=8))
    def setup(self, max_items: int) -> None:
        self.lru: SegmentedLRU[int] = SegmentedLRU(max_items)
        self.back_capacity = max_items // 2
        self.front_capacity = max_items - self.back_capacity
        self.front: list[int] = []
        self.back: list[int] = []
        self.next_entry = 0
        self.evicted: list[int] = []

    def _model_rebalance(self) -> list[int]:
        while len(self.front) > self.front_capacity:
            self.back.insert(0, self.front.pop())
        victims = []
        while len(self.back) > self.back_capacity:
            victims.append(self.back.pop())
        return victims

    @rule()
    def insert(self) -> None:
        entry = self.next_entry
        self.next_entry += 1
        self.front.insert(0, entry)
        assert list(self.lru.insert(entry)) == self._model_rebalance()

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
        assert list(self.lru.access(entry)) == expected

    @precondition(lambda self: self.front or self.back)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from(self.front + self.back))
        (self.front if entry in self.front else self.back).remove(entry)
        assert self.lru.remove(entry)

    @invariant()
    def same_order(self) -> None:
        if hasattr(self, "lru"):
            assert self.lru.order() == self.front + self.back


TestLRUModel = LRUModel.TestCase


def test_byte_budget_takes_victims_from_the_end() -> None:
    lru: SegmentedLRU[str] = SegmentedLRU(10, max_bytes=100)
    assert list(lru.insert("a", 60)) == []
    assert list(lru.insert("b", 30)) == []
    assert list(lru.insert("c", 30)) == ["a"]
    assert lru.nbytes == 60


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
