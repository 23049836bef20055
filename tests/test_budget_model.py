"""A byte-budgeted pool under any sequence of operations keeps its books: the
budget holds, every value reads back as last written, and the items counted as
not written yet (what writing ahead of eviction works from) are exactly the
resident items without a blob, with their current sizes."""

from __future__ import annotations

import contextlib
import errno
import gc
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import file_backed as fb
from file_backed.handle import ABSENT
from tests.recording import RecordingBackend

# Above the default `cheap_writes_up_to` (32 KiB), so evictions run on the
# worker threads and writes ahead happen as in a pool of large values.
SIZES = st.sampled_from([40_000, 70_000, 110_000])
BUDGETS = st.sampled_from([150_000, 300_000, 500_000, None])  # None: no byte budget for a while


class BudgetedPoolKeepsItsBooks(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.backend = RecordingBackend()
        self.store = fb.BackingStore(self.backend, workers=2)
        self.pool: fb.FBPool[bytes] = fb.FBPool(self.store, max_items=1000, max_bytes=300_000)
        self.handles: list[fb.Fb[bytes]] = []
        self.expected: list[bytes] = []
        self.tag = 0
        self.over_budget_allowed = False

    def _value(self, size: int) -> bytes:
        self.tag = (self.tag + 1) % 256
        return bytes([self.tag]) * size

    @rule(size=SIZES)
    def insert(self, size: int) -> None:
        value = self._value(size)
        self.handles.append(self.pool.insert(value))
        self.expected.append(value)
        self.over_budget_allowed = False

    @precondition(lambda self: self.handles)
    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.handles) - 1))
        assert self.handles[index].get() == self.expected[index]

    @precondition(lambda self: self.handles)
    @rule(data=st.data(), size=SIZES)
    def replace_under_a_write_guard(self, data: st.DataObject, size: int) -> None:
        index = data.draw(st.integers(0, len(self.handles) - 1))
        value = self._value(size)
        guard = self.handles[index].load_mut()
        assert guard.value == self.expected[index]
        guard.value = value
        guard.release()
        self.expected[index] = value

    @precondition(lambda self: self.handles)
    @rule(data=st.data(), size=SIZES)
    def insert_while_a_read_guard_is_held(self, data: st.DataObject, size: int) -> None:
        index = data.draw(st.integers(0, len(self.handles) - 1))
        with self.handles[index].load() as value:
            self.insert(size)
            assert value == self.expected[index]

    @precondition(lambda self: self.handles)
    @rule(data=st.data())
    def drop_a_handle(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.handles) - 1))
        del self.handles[index], self.expected[index]
        gc.collect()

    @precondition(lambda self: self.handles)
    @rule(data=st.data())
    def write_now(self, data: st.DataObject) -> None:
        self.handles[data.draw(st.integers(0, len(self.handles) - 1))].write_now()

    @rule(size=SIZES)
    def insert_while_writes_fail(self, size: int) -> None:
        self.backend.fail_stores = OSError(errno.EIO, "Input/output error")
        try:
            self.insert(size)
            with contextlib.suppress(fb.BackgroundTaskError):
                self.store.finished(timeout=10)
        finally:
            self.backend.fail_stores = None
        self.over_budget_allowed = True  # failed evictions keep their items until the next insert

    @rule()
    def evict_one(self) -> None:
        self.pool.evict_one()

    @rule(max_bytes=BUDGETS)
    def change_the_budget(self, max_bytes: int | None) -> None:
        self.pool.max_bytes = max_bytes

    @invariant()
    def books_balance(self) -> None:
        self.store.finished(timeout=10)
        pool: Any = self.pool
        max_bytes = pool.max_bytes
        assert max_bytes is None or pool.stats.bytes <= max_bytes or self.over_budget_allowed
        with pool._lock:  # a snapshot: the assertions' reports take the lock themselves
            pool._purge_locked()
            unwritten = {
                handle._ref: handle._size
                for handle in self.handles
                if max_bytes is not None
                and handle._value is not ABSENT
                and handle._token is None
                and handle._ref in pool._lru
            }
            writing = [handle for handle in self.handles if handle._writing]
            counted, counted_bytes = dict(pool._unwritten), pool._unwritten_bytes
        assert not writing
        assert counted == unwritten
        assert counted_bytes == sum(unwritten.values())

    def teardown(self) -> None:
        self.store.close()


TestBudgetedPoolKeepsItsBooks = BudgetedPoolKeepsItsBooks.TestCase
TestBudgetedPoolKeepsItsBooks.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
