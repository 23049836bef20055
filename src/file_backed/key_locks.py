"""One lock per key, for any number of keys, kept under an owner's lock."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["KeyLocks"]

K = TypeVar("K", bound=Hashable)


class KeyLocks(Generic[K]):
    """Mutual exclusion per key: holding a key excludes only other holders of
    the same key, never those of another key (unlike a fixed set of striped
    locks, where two keys may share one).

    The held keys are guarded by the owner's `lock`: `hold_locked` and
    `release_locked` are called with it held, so that the owner can check and
    change its own state in the same critical section (one lock round instead
    of two); `holding` takes it itself.

    Notes on thread safety: any thread may hold any key; a key is held by one
    thread at a time and is not reentrant (a thread that holds a key and asks
    for it again waits forever).
    """

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._released = threading.Condition(lock)
        self._held: set[K] = set()
        self._waiting = 0

    def hold_locked(self, key: K) -> None:
        """Hold `key`, waiting (the owner's lock released meanwhile) while
        another thread holds it."""
        if key in self._held:
            self._waiting += 1
            try:
                while key in self._held:
                    self._released.wait()
            finally:
                self._waiting -= 1
        self._held.add(key)

    def release_locked(self, key: K) -> None:
        """Release `key`, held by `hold_locked`."""
        self._held.remove(key)
        if self._waiting:
            self._released.notify_all()

    @contextlib.contextmanager
    def holding(self, key: K) -> Iterator[None]:
        """Hold `key` for the ``with`` block (taking the owner's lock to hold and release it)."""
        with self._lock:
            self.hold_locked(key)
        try:
            yield
        finally:
            with self._lock:
                self.release_locked(key)

    def __len__(self) -> int:
        """How many keys are held now (the owner's lock held or not)."""
        return len(self._held)
