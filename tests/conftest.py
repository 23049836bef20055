"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import file_backed as fb
from tests.recording import RecordingBackend


@pytest.fixture
def backend() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def store(backend: RecordingBackend) -> Iterator[fb.BackingStore]:
    with fb.BackingStore(backend, workers=4) as store:
        yield store


@pytest.fixture(params=["memory", "fs_hardlink"])
def real_store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[fb.BackingStore]:
    """A store on each bundled local backend (fs_hardlink in a test directory)."""
    options = {"path": tmp_path / "temporary"} if request.param == "fs_hardlink" else {}
    with fb.open_store(request.param, **options) as store:
        yield store
