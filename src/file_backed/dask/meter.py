"""`SpillMeter`: middleware counting a spill area's writes, reads and live bytes."""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Generator
from typing import Any

from file_backed.hookspecs import hookimpl

__all__ = ["SpillMeter"]


class SpillMeter:
    """Middleware for one `BackingStore`: cumulative counts, bytes and seconds
    of blob writes (``disk-write``) and reads (``disk-read``), in the
    ``(label, unit) -> value`` form of Dask's ``SpillBuffer.cumulative_metrics``,
    and the bytes of the blobs present in the temporary area now.

    Notes on thread safety: hooks run on any thread; one lock guards the
    counters and is held only to add to them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blob_sizes: dict[uuid.UUID, int] = {}
        #: Bytes of the blobs written and not deleted yet.
        self.live_bytes = 0
        #: ``(label, unit) -> ever-increasing value``, labels ``disk-write`` and
        #: ``disk-read``, units ``count``, ``bytes`` and ``seconds``. Read it as a
        #: snapshot (`snapshot`) from other threads.
        self.cumulative: collections.defaultdict[tuple[str, str], float] = collections.defaultdict(float)

    def snapshot(self) -> dict[tuple[str, str], float]:
        """A copy of `cumulative`."""
        with self._lock:
            return dict(self.cumulative)

    def blob_size(self, key: uuid.UUID) -> int:
        """The size of `key`'s blob as written (0 when unknown)."""
        return self._blob_sizes.get(key, 0)

    def _add(self, label: str, count_bytes: int, seconds: float) -> None:
        cumulative = self.cumulative
        cumulative[label, "count"] += 1
        cumulative[label, "bytes"] += count_bytes
        cumulative[label, "seconds"] += seconds

    @hookimpl(wrapper=True)
    def store(self, key: uuid.UUID) -> Generator[None, Any, Any]:
        """Count a blob write, its bytes and seconds (encoding included)."""
        start = time.perf_counter()
        written = yield
        seconds = time.perf_counter() - start
        size = int(written or 0)
        with self._lock:
            self._add("disk-write", size, seconds)
            previous = self._blob_sizes.get(key, 0)
            self._blob_sizes[key] = size
            self.live_bytes += size - previous
        return written

    @hookimpl(wrapper=True)
    def load(self, key: uuid.UUID) -> Generator[None, Any, Any]:
        """Count a blob read, its bytes and seconds (decoding included)."""
        start = time.perf_counter()
        value = yield
        seconds = time.perf_counter() - start
        with self._lock:
            self._add("disk-read", self._blob_sizes.get(key, 0), seconds)
        return value

    @hookimpl(wrapper=True)
    def delete(self, key: uuid.UUID) -> Generator[None, Any, Any]:
        """Forget a deleted blob's bytes."""
        result = yield
        with self._lock:
            self.live_bytes -= self._blob_sizes.pop(key, 0)
        return result
