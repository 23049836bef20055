"""Fixtures for the durability suite: real tiny filesystems and blob helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from file_backed.ownership import MARKERS

Mount = Callable[..., Path]


def blob_file(location: Path, key: uuid.UUID) -> Path:
    """The file of `key`'s blob in an fs_hardlink location."""
    return location / key.hex[:2] / key.hex


def stray_files(location: Path) -> list[Path]:
    """Every regular file under `location` (blobs and anything else) but the
    markers by which stores claim their locations."""
    return sorted(
        path for path in location.rglob("*") if path.is_file() and not path.is_symlink() and path.name not in MARKERS
    )


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """``mount_tmpfs(name, size="2m", readonly=False)`` mounts a fresh tmpfs at
    ``tmp_path / name`` and returns it; every mount is unmounted at teardown.

    Skips the test (with the reason) where mounting is not permitted.
    """
    mounted: list[Path] = []

    def mount(name: str, size: str = "2m", *, readonly: bool = False) -> Path:
        if shutil.which("mount") is None:
            pytest.skip("no mount(8) on this machine")
        target = tmp_path / name
        target.mkdir()
        result = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(target))
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {result.stderr.strip()}")
        mounted.append(target)
        if readonly:
            remount_readonly(target)
        return target

    yield mount
    for target in reversed(mounted):
        result = _run("umount", str(target))
        if result.returncode != 0:
            _run("umount", "-l", str(target))


def remount_readonly(target: Path) -> None:
    """Make the tmpfs mounted at `target` read-only."""
    result = _run("mount", "-o", "remount,ro", str(target))
    if result.returncode != 0:
        pytest.skip(f"cannot remount {target} read-only: {result.stderr.strip()}")


@pytest.fixture
def readonly_dir(tmp_path: Path, mount_tmpfs: Mount) -> Callable[[Callable[[Path], object]], Path]:
    """``readonly_dir(fill)`` makes a directory, lets ``fill(dir)`` write into it,
    then makes it read-only for this process: a read-only tmpfs as root (who
    ignores permission bits), ``chmod 0o555`` otherwise."""

    def make(fill: Callable[[Path], object]) -> Path:
        if os.geteuid() == 0:
            target = mount_tmpfs(f"ro-{uuid.uuid4().hex[:8]}", "1m")
            fill(target)
            remount_readonly(target)
            return target
        target = tmp_path / f"ro-{uuid.uuid4().hex[:8]}"
        target.mkdir()
        fill(target)
        for directory in [target, *(p for p in target.rglob("*") if p.is_dir())]:
            directory.chmod(0o555)
        return target

    return make
