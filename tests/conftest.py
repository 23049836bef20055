"""Shared fixtures."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
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


_BLOCKING_SITECUSTOMIZE = '''
"""Makes the listed top-level modules impossible to import, as if not installed."""
import sys

BLOCKED = {blocked!r}


class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
'''


@pytest.fixture
def plain_install(tmp_path: Path) -> dict[str, str]:
    """Environment variables for a subprocess that sees the test environment as a
    plain install: numpy and msgpack (the optional codecs' dependencies) cannot be
    imported, through a ``sitecustomize`` on ``PYTHONPATH``."""
    site = tmp_path / "plain-install-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_BLOCKING_SITECUSTOMIZE.format(blocked={"numpy", "msgpack"}))
    return {"PYTHONPATH": str(site)}


def add_distribution(site: Path, name: str, entry_points: str, modules: dict[str, str] | None = None) -> Path:
    """Make `site` (a ``PYTHONPATH`` directory) hold an installed distribution `name`
    with the given ``entry_points.txt`` text and module sources; returns `site`."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    return site
