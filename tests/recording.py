"""A backend written only against the hookspecs that records every hook call."""

from __future__ import annotations

import pickle
import threading
import uuid
from typing import Any

import file_backed as fb

__all__ = ["RecordingBackend"]


class RecordingBackend:
    """A backend that keeps pickled blobs in dicts and records every hook call.

    `calls` lists ``(hook, key_or_path)`` in call order. `gate(key)` makes the
    next `store` (or with ``hook="load"``, `load`) of that key wait until the
    returned event is set, so a test can hold an eviction write or a load in
    flight; `fail_stores` makes stores raise.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.blobs: dict[uuid.UUID, bytes] = {}
        self.persisted: dict[str, dict[uuid.UUID, bytes]] = {}
        self.fail_stores: BaseException | None = None
        self._gates: dict[tuple[str, uuid.UUID], tuple[threading.Event, threading.Event]] = {}
        self._lock = threading.Lock()

    def _record(self, hook: str, arg: Any) -> None:
        with self._lock:
            self.calls.append((hook, arg))

    def count(self, hook: str, arg: Any = None) -> int:
        with self._lock:
            return sum(1 for name, value in self.calls if name == hook and (arg is None or value == arg))

    def hooks(self) -> list[str]:
        with self._lock:
            return [name for name, _ in self.calls]

    def gate(self, key: uuid.UUID, hook: str = "store") -> tuple[threading.Event, threading.Event]:
        """(entered, release): `entered` is set when the `hook` call for `key`
        starts; it finishes once `release` is set."""
        entered, release = threading.Event(), threading.Event()
        self._gates[hook, key] = (entered, release)
        return entered, release

    def _pass_gate(self, hook: str, key: uuid.UUID) -> None:
        gate = self._gates.pop((hook, key), None)
        if gate is not None:
            gate[0].set()
            assert gate[1].wait(30), f"test never released the gated {hook}"

    @fb.hookimpl
    def store(self, key: uuid.UUID, data: Any) -> int:
        self._record("store", key)
        self._pass_gate("store", key)
        if self.fail_stores is not None:
            raise self.fail_stores
        blob = pickle.dumps(data)
        with self._lock:
            assert key not in self.blobs, f"store of existing key {key}"
            self.blobs[key] = blob
        return len(blob)

    @fb.hookimpl
    def load(self, key: uuid.UUID) -> Any:
        self._record("load", key)
        self._pass_gate("load", key)
        with self._lock:
            blob = self.blobs.get(key)
        if blob is None:
            raise fb.BlobNotFoundError(f"no blob for {key}")
        return pickle.loads(blob)

    @fb.hookimpl
    def delete(self, key: uuid.UUID) -> None:
        self._record("delete", key)
        with self._lock:
            del self.blobs[key]

    @fb.hookimpl
    def prepare_path(self, location: str) -> str:
        self._record("prepare_path", location)
        with self._lock:
            self.persisted.setdefault(location, {})
        return location

    @fb.hookimpl
    def sanitize_path(self, path: str) -> list[uuid.UUID]:
        self._record("sanitize_path", path)
        with self._lock:
            return list(self.persisted[path])

    @fb.hookimpl
    def persist(self, dest_path: str, key: uuid.UUID) -> None:
        self._record("persist", (dest_path, key))
        with self._lock:
            self.persisted[dest_path][key] = self.blobs[key]

    @fb.hookimpl
    def register(self, src_path: str, key: uuid.UUID) -> None:
        self._record("register", (src_path, key))
        with self._lock:
            assert key not in self.blobs, f"register over a live blob {key}"
            self.blobs[key] = self.persisted[src_path][key]

    @fb.hookimpl
    def delete_persisted(self, path: str, key: uuid.UUID) -> None:
        self._record("delete_persisted", (path, key))
        with self._lock:
            del self.persisted[path][key]

    @fb.hookimpl
    def sync_persisted(self, path: str) -> None:
        self._record("sync_persisted", path)
