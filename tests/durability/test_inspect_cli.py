"""``file-backed ls`` and ``file-backed verify``, run as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import file_backed as fb

from .conftest import blob_file

pytestmark = pytest.mark.timeout(60)

SECRET = "a signing key for the cli tests"


def cli(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from file_backed.cli import main; main()", *arguments],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


def persist(location: Path, area: Path, values: list[object], **options: object) -> list[uuid.UUID]:
    with fb.open_store("fs_hardlink", path=area, **options) as store:
        tracked = store.track_path(location)
        pool = fb.FBPool(store, max_items=4)
        handles = [pool.insert(value) for value in values]
        keys = [handle.persist(tracked) for handle in handles]
        store.fsync(tracked)
    return keys


def snapshot(location: Path) -> dict[str, bytes | str]:
    """Every entry under `location` with its bytes (files) or target (links)."""
    entries: dict[str, bytes | str] = {}
    for path in sorted(location.rglob("*")):
        name = str(path.relative_to(location))
        if path.is_symlink():
            entries[name] = os.readlink(path)
        elif path.is_file():
            entries[name] = path.read_bytes()
        else:
            entries[name] = "dir"
    return entries


@pytest.fixture
def location(tmp_path: Path) -> tuple[Path, list[uuid.UUID]]:
    """A location with three json blobs, a foreign file, a partial file and a
    symbolic link named like a key."""
    location = tmp_path / "persisted"
    keys = persist(location, tmp_path / "area", [{"i": 1}, [1, 2, 3], "three"], codec="json")
    (location / "MANIFEST").write_text("foreign")
    (location / "ab" / f".ab{'0' * 30}.{'1' * 16}.tmp").write_bytes(b"partial")
    (location / "cd" / f"cd{'2' * 30}").symlink_to(tmp_path / "outside")
    (tmp_path / "outside").write_bytes(b"not a blob")
    return location, keys


def test_ls_lists_keys_sizes_and_codecs(location: tuple[Path, list[uuid.UUID]]) -> None:
    path, keys = location
    result = cli("ls", str(path))
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [row[0] for row in rows] == sorted(str(key) for key in keys), "only blobs, sorted by key"
    for key_text, size, codec in rows:
        assert int(size) == blob_file(path, uuid.UUID(key_text)).stat().st_size
        assert codec == "json"
    assert "3 blobs" in result.stderr


def test_ls_marks_signed_blobs(tmp_path: Path) -> None:
    location = tmp_path / "persisted"
    persist(location, tmp_path / "area", [b"x"], codec="bytes", signing_key=SECRET)
    result = cli("ls", str(location))
    assert result.returncode == 0 and result.stdout.rstrip().endswith("bytes (signed)"), result.stdout


def test_verify_passes_on_whole_blobs_and_changes_nothing(location: tuple[Path, list[uuid.UUID]]) -> None:
    path, _ = location
    before = snapshot(path)
    result = cli("verify", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checked 3 blobs" in result.stdout and "0 corrupt" in result.stdout
    assert snapshot(path) == before, "verify must not create, delete or change anything"


def test_verify_reports_each_corrupt_blob(location: tuple[Path, list[uuid.UUID]]) -> None:
    path, keys = location
    flipped, truncated, intact = keys
    data = bytearray(blob_file(path, flipped).read_bytes())
    data[-1] ^= 0x10
    blob_file(path, flipped).write_bytes(data)
    blob_file(path, truncated).write_bytes(blob_file(path, truncated).read_bytes()[:20])
    result = cli("verify", str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("CORRUPT")]
    assert len(lines) == 2
    for key, reason in ((flipped, "checksum mismatch"), (truncated, "truncated")):
        (line,) = [line for line in lines if str(key) in line]
        assert str(blob_file(path, key)) in line and reason in line
    assert str(intact) not in result.stdout
    assert "2 corrupt" in result.stdout


def test_verify_checks_signatures_with_a_key(tmp_path: Path) -> None:
    signed, unsigned = tmp_path / "signed", tmp_path / "unsigned"
    persist(signed, tmp_path / "area", [{"s": 1}], signing_key=SECRET)
    persist(unsigned, tmp_path / "area", [{"u": 1}])
    assert cli("verify", str(signed), "--signing-key", SECRET).returncode == 0
    assert cli("verify", str(signed), env={"FILE_BACKED_SIGNING_KEY": SECRET}).returncode == 0
    wrong = cli("verify", str(signed), "--signing-key", "not the key that signed them")
    assert wrong.returncode == 1 and "signature mismatch" in wrong.stdout
    missing = cli("verify", str(unsigned), "--signing-key", SECRET)
    assert missing.returncode == 1 and "not signed" in missing.stdout


@pytest.mark.parametrize("command", ["ls", "verify"])
def test_bad_locations_are_usage_errors(tmp_path: Path, command: str) -> None:
    (tmp_path / "file").write_text("x")
    for bad in (tmp_path / "missing", tmp_path / "file"):
        result = cli(command, str(bad))
        assert result.returncode == 2 and "LOCATION" in result.stderr, result.stderr
    assert cli("verify", str(tmp_path), "--signing-key", "short").returncode == 2


def test_verify_reports_a_blob_copied_under_another_keys_name(tmp_path: Path) -> None:
    location = tmp_path / "persisted"
    first, second = persist(location, tmp_path / "area", [b"A" * 64, b"B" * 64])
    blob_file(location, first).write_bytes(blob_file(location, second).read_bytes())
    result = cli("verify", str(location))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"CORRUPT {first}" in result.stdout and "another key" in result.stdout
    assert f"CORRUPT {second}" not in result.stdout


def test_verify_of_an_empty_location_says_so_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = cli("verify", str(tmp_path / "empty"))
    assert result.returncode == 1
    assert f"no blobs at {tmp_path / 'empty'}" in result.stderr


def test_verify_of_a_mistyped_location_names_it_as_missing(tmp_path: Path) -> None:
    result = cli("verify", str(tmp_path / "persistd"))
    assert result.returncode == 2
    assert "persistd: no such directory" in result.stderr
