"""`fb.FBDict`: a MutableMapping with the user's own keys over a pool."""

from __future__ import annotations

import gc
import pickle
import threading
import weakref
from collections.abc import Iterator

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import file_backed as fb

KEYS = st.one_of(st.text(max_size=3), st.integers(-3, 3), st.tuples(st.integers(0, 2), st.text(max_size=1)))
VALUES = st.lists(st.integers(), max_size=4)


@pytest.fixture
def memory_store() -> Iterator[fb.BackingStore]:
    with fb.open_store("memory") as store:
        yield store


@pytest.fixture
def pool(memory_store: fb.BackingStore) -> fb.FBPool[object]:
    return fb.FBPool(memory_store, max_items=2)


class FBDictMatchesDict(RuleBasedStateMachine):
    """Any sequence of mapping operations on an FBDict over a two-item pool
    gives what the same operations give on a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.store = fb.open_store("memory")
        self.d: fb.FBDict[object, list[int]] = fb.FBDict(fb.FBPool(self.store, max_items=2))
        self.model: dict[object, list[int]] = {}

    @rule(key=KEYS, value=VALUES)
    def set_item(self, key: object, value: list[int]) -> None:
        self.d[key] = value
        self.model[key] = value

    @rule(key=KEYS)
    def get_item(self, key: object) -> None:
        if key in self.model:
            assert self.d[key] == self.model[key]
        else:
            with pytest.raises(KeyError):
                self.d[key]

    @rule(key=KEYS)
    def delete_item(self, key: object) -> None:
        if key in self.model:
            del self.d[key]
            del self.model[key]
        else:
            with pytest.raises(KeyError):
                del self.d[key]

    @rule(key=KEYS, default=VALUES)
    def pop_item(self, key: object, default: list[int]) -> None:
        assert self.d.pop(key, default) == self.model.pop(key, default)

    @rule(key=KEYS, value=VALUES)
    def set_default(self, key: object, value: list[int]) -> None:
        assert self.d.setdefault(key, value) == self.model.setdefault(key, value)

    @rule()
    def clear(self) -> None:
        self.d.clear()
        self.model.clear()

    @invariant()
    def same_contents(self) -> None:
        assert len(self.d) == len(self.model)
        assert set(self.d) == set(self.model)
        assert dict(self.d.items()) == self.model
        for key in self.model:
            assert key in self.d

    def teardown(self) -> None:
        self.store.close()


TestFBDictMatchesDict = FBDictMatchesDict.TestCase
TestFBDictMatchesDict.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)


def test_values_beyond_the_pool_are_evicted_and_loaded_back(pool: fb.FBPool[object]) -> None:
    d: fb.FBDict[str, list[int]] = fb.FBDict(pool)
    for i in range(10):
        d[f"k{i}"] = [i] * 100
    pool.store.finished(timeout=10)
    assert len(pool) == 2
    assert [d[f"k{i}"][0] for i in range(10)] == list(range(10))
    assert pool.stats.loads >= 8


def test_handle_gives_the_values_fb(pool: fb.FBPool[object]) -> None:
    d: fb.FBDict[str, str] = fb.FBDict(pool)
    d["a"] = "value"
    handle = d.handle("a")
    assert isinstance(handle, fb.Fb)
    assert handle.get() == "value"
    assert d.handle("a") is handle


def test_handle_of_a_missing_key_raises_key_error(pool: fb.FBPool[object]) -> None:
    with pytest.raises(KeyError):
        fb.FBDict(pool).handle("missing")


def test_assigning_a_key_drops_its_old_handle(pool: fb.FBPool[object], memory_store: fb.BackingStore) -> None:
    d: fb.FBDict[str, str] = fb.FBDict(pool)
    d["a"] = "old"
    old = weakref.ref(d.handle("a"))
    d["a"] = "new"
    gc.collect()
    assert old() is None
    assert d["a"] == "new"
    memory_store.finished(timeout=10)


def test_deleting_a_key_drops_its_handle(pool: fb.FBPool[object]) -> None:
    d: fb.FBDict[str, str] = fb.FBDict(pool)
    d["a"] = "value"
    handle = weakref.ref(d.handle("a"))
    del d["a"]
    gc.collect()
    assert handle() is None
    assert "a" not in d


def test_assigning_a_handle_puts_it_under_the_key(pool: fb.FBPool[object]) -> None:
    handle = pool.insert("value")
    d: fb.FBDict[str, str] = fb.FBDict(pool)
    d["a"] = handle
    assert d.handle("a") is handle
    assert d["a"] == "value"


def test_assigning_a_handle_of_another_pool_raises(memory_store: fb.BackingStore) -> None:
    other = fb.FBPool(memory_store, max_items=2).insert("value")
    with pytest.raises(ValueError, match="another pool"):
        fb.FBDict(fb.FBPool(memory_store, max_items=2))["a"] = other


def test_an_fbdict_cannot_be_pickled(pool: fb.FBPool[object]) -> None:
    with pytest.raises(TypeError, match="save it"):
        pickle.dumps(fb.FBDict(pool))


def test_fbdict_needs_a_pool(memory_store: fb.BackingStore) -> None:
    with pytest.raises(TypeError, match="FBPool"):
        fb.FBDict(memory_store)  # type: ignore[arg-type]


@pytest.mark.timeout(30)
def test_threads_setting_and_deleting_keep_the_mapping_consistent(pool: fb.FBPool[object]) -> None:
    d: fb.FBDict[tuple[int, int], list[int]] = fb.FBDict(pool)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            start.wait(timeout=10)
            for i in range(200):
                d[(thread, i % 20)] = [thread, i]
                assert d[(thread, i % 20)] == [thread, i]
                d[(-1, i % 5)] = [i]  # a key every thread writes
                if i % 3 == 0:
                    d.pop((thread, (i + 7) % 20), None)
                len(d)
                list(d)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=25)
    assert not errors
    assert not any(thread.is_alive() for thread in threads)
    assert all(value in ([i] for i in range(200)) for key, value in d.items() if key[0] == -1)
    assert sorted(key for key in d if key[0] == -1) == [(-1, i) for i in range(5)]
    for key in d:
        if key[0] >= 0:
            assert d[key][0] == key[0]
