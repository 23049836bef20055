"""`KeyLocks`: one lock per key, for any number of keys."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from file_backed.key_locks import KeyLocks


@pytest.mark.timeout(30)
def test_holding_one_key_never_blocks_another_key() -> None:
    locks: KeyLocks[uuid.UUID] = KeyLocks(threading.Lock())
    held = uuid.uuid4()
    others = [uuid.UUID(int=held.int ^ (1 << bit)) for bit in range(128)] + [uuid.uuid4() for _ in range(1000)]
    done = threading.Event()

    def hold_all_others() -> None:
        for key in others:
            with locks.holding(key):
                pass
        done.set()

    with locks.holding(held):
        threading.Thread(target=hold_all_others, daemon=True).start()
        assert done.wait(10)


@pytest.mark.timeout(30)
def test_a_held_key_excludes_other_holders_of_the_same_key() -> None:
    locks: KeyLocks[str] = KeyLocks(threading.Lock())
    entered = threading.Event()

    def hold() -> None:
        with locks.holding("a"):
            entered.set()

    with locks.holding("a"):
        threading.Thread(target=hold, daemon=True).start()
        assert not entered.wait(0.1)
    assert entered.wait(10)


def test_a_key_is_released_when_the_guarded_block_raises() -> None:
    locks: KeyLocks[int] = KeyLocks(threading.Lock())
    with pytest.raises(KeyError), locks.holding(1):
        raise KeyError(1)
    assert len(locks) == 0


@pytest.mark.timeout(30)
def test_a_thread_waiting_for_a_key_leaves_the_owners_lock_free() -> None:
    lock = threading.Lock()
    locks: KeyLocks[int] = KeyLocks(lock)
    with lock:
        locks.hold_locked(1)
    waiting = threading.Event()

    def wait_for_key() -> None:
        with lock:
            waiting.set()
            locks.hold_locked(1)

    waiter = threading.Thread(target=wait_for_key, daemon=True)
    waiter.start()
    assert waiting.wait(10)
    assert lock.acquire(timeout=10)  # free only while the waiter waits for key 1
    try:
        locks.release_locked(1)
    finally:
        lock.release()
    waiter.join(10)
    assert not waiter.is_alive() and len(locks) == 1  # the waiter holds key 1 now


@pytest.mark.timeout(60)
def test_threads_holding_random_keys_never_share_one() -> None:
    lock = threading.Lock()
    locks: KeyLocks[int] = KeyLocks(lock)
    holders = [0] * 8
    overlaps: list[int] = []

    def work(seed: int) -> None:
        for step in range(2000):
            key = (seed * 7919 + step * 104729) % len(holders)
            with locks.holding(key):
                holders[key] += 1
                time.sleep(0)  # lets another thread run inside the held key, if it could
                if holders[key] != 1:
                    overlaps.append(key)
                holders[key] -= 1

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(50)
    assert not any(thread.is_alive() for thread in threads)
    assert overlaps == [] and len(locks) == 0
