"""The ``metrics`` middleware: call counts, failures and latency histograms of every hook.

Enable it by name (``plugins = ["metrics"]`` in a configuration, or
``open_store(..., plugins=["metrics"])``): the entry point ``metrics`` of the
``file_backed.plugins`` group is the process-wide `metrics` object, so every
store that enables it by name adds to the same counters. For counters of one
store only, pass your own instance: ``open_store(..., plugins=[Metrics()])``.

>>> import file_backed as fb
>>> from file_backed.metrics import Metrics
>>> recorder = Metrics()
>>> with fb.open_store("memory", plugins=[recorder]) as store:
...     pool = fb.FBPool(store, max_items=1)
...     pool.insert("some value").write_now()
>>> recorder.snapshot()["store"].calls
1

Notes on thread safety: hooks run on any thread; each `Metrics` guards its
counters with one lock, held only to add a sample or copy the counters.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import attrs

from file_backed import hookspecs
from file_backed.hookspecs import hookimpl

__all__ = ["BUCKET_BOUNDS", "HOOKS", "HookMetrics", "Metrics", "find_metrics", "metrics"]

#: The hooks the middleware wraps, in the order of `file_backed.hookspecs`.
HOOKS = hookspecs.HOOKS

#: Upper bounds (seconds) of the latency histogram buckets: 1 µs to about 67 s,
#: doubling; one more bucket counts everything slower.
BUCKET_BOUNDS: tuple[float, ...] = tuple(1e-6 * 2**exponent for exponent in range(27))


@attrs.frozen
class HookMetrics:
    """What one hook did, as counted by a `Metrics` (a snapshot).

    calls: completed calls, successful or not.
    errors: calls that raised.
    total_seconds: time spent in the hook (including inner middleware).
    max_seconds: the slowest call.
    buckets: call counts per latency bucket; ``buckets[i]`` counts calls of at
        most ``BUCKET_BOUNDS[i]`` seconds (and more than the bound before); the
        last entry counts calls slower than every bound.
    """

    calls: int = 0
    errors: int = 0
    total_seconds: float = 0.0
    max_seconds: float = 0.0
    buckets: tuple[int, ...] = (0,) * (len(BUCKET_BOUNDS) + 1)

    @property
    def mean_seconds(self) -> float:
        """The mean latency, 0.0 before the first call."""
        return self.total_seconds / self.calls if self.calls else 0.0

    def quantile(self, q: float) -> float:
        """An upper bound of the `q`-quantile latency (0 ≤ q ≤ 1), from the buckets:
        the bound of the bucket holding it, or `max_seconds` for the last bucket."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"a quantile is between 0 and 1, got {q}")
        if not self.calls:
            return 0.0
        rank = max(1, round(q * self.calls))
        seen = 0
        for index, count in enumerate(self.buckets):
            seen += count
            if seen >= rank:
                return min(BUCKET_BOUNDS[index], self.max_seconds) if index < len(BUCKET_BOUNDS) else self.max_seconds
        return self.max_seconds  # pragma: no cover - the buckets sum to calls

    def _add(self, seconds: float, failed: bool) -> HookMetrics:
        index = bisect.bisect_left(BUCKET_BOUNDS, seconds)
        buckets = list(self.buckets)
        buckets[index] += 1
        return HookMetrics(
            calls=self.calls + 1,
            errors=self.errors + failed,
            total_seconds=self.total_seconds + seconds,
            max_seconds=max(self.max_seconds, seconds),
            buckets=tuple(buckets),
        )


def _timed(hook: str) -> Callable[[Metrics], Generator[None, Any, Any]]:
    """A ``wrapper=True`` hookimpl for `hook` that measures every call."""

    def wrapper(self: Metrics) -> Generator[None, Any, Any]:
        with self._measure(hook):
            return (yield)

    wrapper.__name__ = wrapper.__qualname__ = hook
    wrapper.__doc__ = f"Measure the ``{hook}`` hook."
    return hookimpl(wrapper=True)(wrapper)


class Metrics:
    """Middleware counting calls, failures and latencies of every hook.

    Register it with a store (``plugins=[Metrics()]``, or the shared `metrics`
    object by the name ``"metrics"``). It wraps the backend's hooks and any
    middleware registered before it, and changes no result and no exception.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: dict[str, HookMetrics] = {}

    def __repr__(self) -> str:
        with self._lock:
            calls = sum(entry.calls for entry in self._hooks.values())
        return f"<Metrics {calls} hook calls>"

    def snapshot(self) -> Mapping[str, HookMetrics]:
        """The metrics of every hook called since creation or the last `reset`, by hook name."""
        with self._lock:
            return dict(self._hooks)

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._hooks.clear()

    @contextlib.contextmanager
    def _measure(self, hook: str) -> Iterator[None]:
        failed = True
        start = time.perf_counter()
        try:
            yield
            failed = False
        finally:
            seconds = time.perf_counter() - start
            with self._lock:
                self._hooks[hook] = self._hooks.get(hook, HookMetrics())._add(seconds, failed)

    store = _timed("store")
    load = _timed("load")
    delete = _timed("delete")
    prepare_path = _timed("prepare_path")
    sanitize_path = _timed("sanitize_path")
    persist = _timed("persist")
    register = _timed("register")
    delete_persisted = _timed("delete_persisted")
    sync_persisted = _timed("sync_persisted")
    shutdown = _timed("shutdown")


#: The process-wide instance behind the entry point ``metrics`` of ``file_backed.plugins``.
metrics = Metrics()


def find_metrics(store: Any) -> Metrics | None:
    """The `Metrics` registered with `store` (a `file_backed.BackingStore`), or None."""
    for plugin in store.plugin_manager.get_plugins():
        if isinstance(plugin, Metrics):
            return plugin
    return None
