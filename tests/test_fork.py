"""Stores inherited through fork: the child cannot use them, and nothing the
child does (exit, garbage collection, close) touches the parent's data."""

from __future__ import annotations

import atexit
import gc
import multiprocessing
import os
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import file_backed as fb

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork"),
]


@pytest.fixture
def pool() -> Iterator[fb.FBPool[bytes]]:
    """A pool on a default fs_hardlink store (its own temporary directory, removed
    on close), with evicted and resident items."""
    store = fb.open_store("fs_hardlink")
    pool: fb.FBPool[bytes] = fb.FBPool(store, max_items=2)
    yield pool
    store.close()


def in_child(body: Callable[[], int]) -> int:
    """Run `body` in a forked child that then exits as a normal exit does (exit
    handlers and finalizers run); returns the child's exit status.

    Finalizers other libraries of the test session registered are detached in
    the child first: s3fs's closes its session through an event-loop thread a
    forked child lacks and waits ten seconds for it."""
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            _detach_foreign_finalizers()
            status = body()
        finally:
            atexit._run_exitfuncs()
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _detach_foreign_finalizers() -> None:
    for finalizer in list(weakref.finalize._registry):  # type: ignore[attr-defined]
        info = finalizer.peek()
        if info is not None and not getattr(info[1], "__module__", "").startswith("file_backed"):
            finalizer.detach()


def evicted_items(pool: fb.FBPool[bytes], count: int = 6) -> list[fb.Fb[bytes]]:
    handles = [pool.insert(bytes([index]) * 1000) for index in range(count)]
    pool.store.finished()
    assert not handles[0].resident
    return handles


def check_parent(handles: list[fb.Fb[bytes]]) -> None:
    for index, handle in enumerate(handles):
        assert handle.get() == bytes([index]) * 1000, f"item {index} lost"


def test_a_child_exiting_normally_leaves_the_parents_temporary_area(pool: fb.FBPool[bytes]) -> None:
    handles = evicted_items(pool)
    assert in_child(lambda: 0) == 0
    check_parent(handles)


def test_handles_collected_in_a_child_do_not_delete_the_parents_blobs(pool: fb.FBPool[bytes]) -> None:
    handles = evicted_items(pool)

    def drop_everything() -> int:
        handles.clear()
        gc.collect()
        return 0

    assert in_child(drop_everything) == 0
    check_parent(handles)


def test_closing_an_inherited_store_in_a_child_leaves_the_parents_data(pool: fb.FBPool[bytes]) -> None:
    handles = evicted_items(pool)

    def close() -> int:
        pool.store.close()
        return 0

    assert in_child(close) == 0
    check_parent(handles)


@pytest.mark.parametrize(
    "use",
    [
        lambda pool, handle: handle.get(),
        lambda pool, handle: handle.load(),
        lambda pool, handle: handle.load_mut(),
        lambda pool, handle: pool.insert(b"new"),
        lambda pool, handle: pool.store.finished(),
        lambda pool, handle: pool.evict_one(),
    ],
    ids=["get", "load", "load_mut", "insert", "finished", "evict_one"],
)
def test_using_an_inherited_pool_in_a_child_raises_store_forked_error(
    pool: fb.FBPool[bytes], use: Callable[[fb.FBPool[bytes], fb.Fb[bytes]], Any]
) -> None:
    handles = evicted_items(pool)

    def body() -> int:
        try:
            use(pool, handles[-1])
        except fb.StoreForkedError as error:
            return 0 if "open a store in the child" in str(error) else 2
        return 1

    assert in_child(body) == 0
    check_parent(handles)


def test_a_child_can_open_a_store_of_its_own(pool: fb.FBPool[bytes]) -> None:
    handles = evicted_items(pool)

    def body() -> int:
        with fb.open_store("fs_hardlink") as store:
            own: fb.FBPool[bytes] = fb.FBPool(store, max_items=1)
            mine = [own.insert(bytes([index])) for index in range(3)]
            return 0 if [h.get() for h in mine] == [b"\x00", b"\x01", b"\x02"] else 1

    assert in_child(body) == 0
    check_parent(handles)


_inherited: list[Any] = []


def _read_inherited(index: int) -> bytes:
    return _inherited[index].get()  # type: ignore[no-any-return]


def test_a_multiprocessing_fork_worker_gets_an_error_not_a_hang(pool: fb.FBPool[bytes]) -> None:
    handles = evicted_items(pool)
    _inherited[:] = handles
    try:
        with (
            multiprocessing.get_context("fork").Pool(2) as workers,
            pytest.raises(fb.StoreForkedError, match="open a store in the child"),
        ):
            workers.map(_read_inherited, range(len(handles)), chunksize=1)
    finally:
        _inherited.clear()
    check_parent(handles)
