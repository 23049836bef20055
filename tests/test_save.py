"""`save`: persist, sync, commit, prune — and a failing commit keeps the old save."""

from __future__ import annotations

import uuid

import pytest

import file_backed as fb
from tests.recording import RecordingBackend


def test_save_persists_syncs_commits_then_prunes(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=4)
    tracked = store.track_path("p")
    old = [pool.insert(f"old {i}") for i in range(3)]
    fb.save(store, old, tracked)
    backend.calls.clear()
    new = [old[0], pool.insert("new")]
    order: list[str] = []

    def commit(keys: list[uuid.UUID]) -> None:
        order.append("commit")
        assert keys == [handle.key for handle in new]
        assert backend.hooks()[-1] == "sync_persisted"

    keys = fb.save(store, new, tracked, commit=commit)
    assert order == ["commit"]
    assert tracked.keys() == set(keys)
    assert backend.count("persist", ("p", old[0].key)) == 0  # already there
    assert backend.count("delete_persisted") == 2
    assert backend.hooks()[-1] == "sync_persisted"


def test_failing_commit_leaves_the_old_save_intact(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=4)
    tracked = store.track_path("p")
    old = [pool.insert(i) for i in range(3)]
    old_keys = set(fb.save(store, old, tracked))

    def commit(keys: list[uuid.UUID]) -> None:
        raise RuntimeError("manifest write failed")

    with pytest.raises(RuntimeError, match="manifest"):
        fb.save(store, [pool.insert("replacement")], tracked, commit=commit)
    assert old_keys <= tracked.keys()
    assert backend.count("delete_persisted") == 0


def test_save_with_max_parallel_one_persists_in_order(store: fb.BackingStore, backend: RecordingBackend) -> None:
    pool = fb.FBPool(store, max_items=4)
    tracked = store.track_path("p")
    handles = [pool.insert(i) for i in range(4)]
    fb.save(store, handles, tracked, max_parallel=1)
    persisted = [key for hook, (_, key) in ((h, a) for h, a in backend.calls if h == "persist")]
    assert persisted == [handle.key for handle in handles]


def test_save_rejects_handles_of_another_store(store: fb.BackingStore) -> None:
    other_store = fb.BackingStore(RecordingBackend())
    handle = fb.FBPool(other_store, max_items=1).insert(1)
    with pytest.raises(ValueError, match="another store"):
        fb.save(store, [handle], store.track_path("p"))
    other_store.close()
