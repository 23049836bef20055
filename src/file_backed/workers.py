"""Background worker threads whose outstanding work can be waited for."""

from __future__ import annotations

import collections
import logging
import queue
import threading
import traceback
from collections.abc import Callable
from typing import Any, cast

from file_backed import forking

__all__ = ["KEPT_ERRORS", "Workers"]

#: How many exceptions of failed tasks are kept for `Workers.take_errors` (the most recent).
KEPT_ERRORS = 100

logger = logging.getLogger("file_backed")

_Task = tuple[Callable[..., object], tuple[Any, ...]]
_STOP = object()
_DRAIN = object()


class Workers:
    """A fixed set of daemon threads running fire-and-forget tasks.

    `spawn` counts a task as outstanding until it has run; `defer` does the same
    for calls made from finalizers (``__del__``, weakref callbacks), where taking
    a lock could deadlock: it only appends to a deque and puts on a
    `queue.SimpleQueue`, both reentrant. `wait_idle` returns once nothing is
    outstanding, including tasks that running tasks deferred or spawned.

    A task's exception is logged (logger ``file_backed``, ERROR), passed to
    `on_error` when given, and kept: at most `KEPT_ERRORS`, the most recent,
    plus a count of all; `take_errors` hands the kept ones
    over once. Threads start on the first task.

    Notes on thread safety: every method may be called from any thread; a
    task must not call `wait_idle` (it would wait for itself).
    """

    def __init__(
        self,
        count: int,
        *,
        name: str = "file_backed",
        on_error: Callable[[BaseException], object] | None = None,
    ) -> None:
        if count < 1:
            raise ValueError(f"workers must be at least 1, got {count}")
        self.count = count
        self._name = name
        self._tasks: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._deferred: collections.deque[_Task] = collections.deque()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._outstanding = 0
        self._errors: collections.deque[BaseException] = collections.deque(maxlen=KEPT_ERRORS)
        self._failures = 0
        self._on_error = on_error
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._epoch = forking.epoch

    def spawn(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker thread."""
        with self._lock:
            if self._closed:
                raise RuntimeError("workers are shut down")
            self._start_locked()
            self._outstanding += 1
            self._tasks.put((fn, args))

    def defer(self, fn: Callable[..., object], *args: Any) -> None:
        """Like `spawn`, but safe to call from a finalizer; ignored after `shutdown`
        and in a forked child (the work would be the parent's)."""
        if self._closed or forking.inherited(self._epoch):
            return
        self._deferred.append((fn, args))
        self._tasks.put(_DRAIN)

    def run_here(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on the calling thread as a task: an exception is
        logged and kept for `take_errors`, not raised."""
        try:
            fn(*args)
        except Exception as error:  # noqa: BLE001 - kept and re-raised by the store
            # The tracebacks reach the caller's frames (through each frame's
            # f_back), whose locals would stay alive as long as the error is kept.
            _drop_tracebacks(error)
            self._failed(fn, error)
            del error

    def run_deferred_here(self) -> None:
        """Run the deferred tasks waiting now (deletes of dropped blobs) on the
        calling thread, as `run_here` does, instead of leaving them to a worker."""
        if self._closed or forking.inherited(self._epoch):
            return
        deferred = self._deferred
        while deferred:
            try:
                fn, args = deferred.popleft()
            except IndexError:
                return
            self.run_here(fn, *args)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no task is outstanding; False if `timeout` (seconds) ran out first."""
        if threading.current_thread() in self._threads:
            raise RuntimeError("a background task cannot wait for background tasks to finish")
        with self._lock:
            while True:
                self._claim_deferred_locked()
                if self._outstanding == 0:
                    return True
                if not self._idle.wait(timeout):
                    return False

    def take_errors(self) -> tuple[list[BaseException], int]:
        """The kept exceptions raised by tasks since the last call, oldest first,
        and how many tasks failed in all since then."""
        with self._lock:
            errors, failures = list(self._errors), self._failures
            self._errors.clear()
            self._failures = 0
        return errors, failures

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop the threads once the queued tasks have run (waiting for them when
        `wait`); later `spawn` raises."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._tasks.put(_STOP)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    def _failed(self, fn: Callable[..., object], error: BaseException) -> None:
        logger.error("background task %s failed: %r", getattr(fn, "__qualname__", fn), error)
        traceback.clear_frames(error.__traceback__)
        with self._lock:
            self._errors.append(error)
            self._failures += 1
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                logger.exception("the on_error callback failed")

    def _start_locked(self) -> None:
        while len(self._threads) < self.count:
            thread = threading.Thread(target=self._run, name=f"{self._name}-worker-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _claim_deferred_locked(self) -> None:
        if not self._deferred:
            return
        if self._closed or forking.inherited(self._epoch):
            self._deferred.clear()
            return
        self._start_locked()
        while self._deferred:
            self._outstanding += 1
            self._tasks.put(self._deferred.popleft())

    def _run(self) -> None:
        tasks = self._tasks
        while True:
            item = tasks.get()
            if item is _STOP:
                return
            if item is _DRAIN:
                with self._lock:
                    self._claim_deferred_locked()
                continue
            fn, args = cast(_Task, item)
            try:
                fn(*args)
            except BaseException as error:  # noqa: BLE001 - kept and re-raised by the store
                self._failed(fn, error)
                del error
            # Drop every reference the task held before it counts as done, so
            # what those references' finalizers defer is seen by wait_idle.
            del item, fn, args
            with self._lock:
                self._outstanding -= 1
                if self._outstanding == 0:
                    self._idle.notify_all()


def _drop_tracebacks(error: BaseException) -> None:
    """Detach the tracebacks of `error` and of the exceptions it chains."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__
