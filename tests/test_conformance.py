"""The conformance suite (`file_backed.testing`) against every bundled backend,
the sqlite example, and the fsspec backend when it is installed."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import file_backed as fb
from file_backed.testing import BackendFactory, BackendTests, BlobCorrupter, backend_by_name


def _flip_last_byte(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    file.write_bytes(bytes(data))


class TestMemoryBackend(BackendTests):
    @pytest.fixture
    def make_backend(self) -> BackendFactory:
        return backend_by_name("memory")

    @pytest.fixture
    def location(self) -> object:
        return f"conformance-{uuid.uuid4()}"

    @pytest.fixture
    def corrupt_blob(self) -> BlobCorrupter:
        def corrupt(backend: object, key: uuid.UUID) -> None:
            blobs = backend._blobs  # type: ignore[attr-defined]
            blob = bytearray(blobs[key])
            blob[-1] ^= 0xFF
            blobs[key] = bytes(blob)

        return corrupt


class TestFsHardlinkBackend(BackendTests):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> BackendFactory:
        counter = iter(range(1_000))
        factory = fb.available_backends()["fs_hardlink"]
        return lambda codec: factory(codec=codec, path=tmp_path / f"temporary-{next(counter)}")

    @pytest.fixture
    def corrupt_blob(self) -> BlobCorrupter:
        def corrupt(backend: object, key: uuid.UUID) -> None:
            _flip_last_byte(backend.root / key.hex[:2] / key.hex)  # type: ignore[attr-defined]

        return corrupt


class TestSqliteExampleBackend(BackendTests):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> BackendFactory:
        if "sqlite" not in fb.available_backends():
            pytest.fail("the sqlite example (examples/sqlite_backend) is not installed")
        counter = iter(range(1_000))
        factory = fb.available_backends()["sqlite"]
        return lambda codec: factory(codec=codec, database=tmp_path / f"temporary-{next(counter)}.sqlite")

    @pytest.fixture
    def location(self, tmp_path: Path) -> object:
        return tmp_path / "persisted.sqlite"

    @pytest.fixture
    def corrupt_blob(self) -> BlobCorrupter:
        import sqlite3

        def corrupt(backend: object, key: uuid.UUID) -> None:
            with sqlite3.connect(backend.database) as connection:  # type: ignore[attr-defined]
                (data,) = connection.execute("SELECT data FROM blobs WHERE key = ?", (key.bytes,)).fetchone()
                changed = bytearray(data)
                changed[-1] ^= 0xFF
                connection.execute("UPDATE blobs SET data = ? WHERE key = ?", (bytes(changed), key.bytes))
            connection.close()

        return corrupt


class TestFsspecBackend(BackendTests):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> BackendFactory:
        if "fsspec" not in fb.available_backends():
            pytest.skip("the fsspec backend (plugins/fsspec_remote) is not installed")
        counter = iter(range(1_000))
        factory = fb.available_backends()["fsspec"]
        return lambda codec: factory(codec=codec, url=(tmp_path / f"temporary-{next(counter)}").as_uri())

    @pytest.fixture
    def location(self, tmp_path: Path) -> object:
        return (tmp_path / "persisted").as_uri()

    @pytest.fixture
    def corrupt_blob(self, tmp_path: Path) -> BlobCorrupter:
        def corrupt(backend: object, key: uuid.UUID) -> None:
            (blob,) = tmp_path.glob(f"temporary-*/{key.hex[:2]}/{key.hex}")  # the documented layout
            _flip_last_byte(blob)

        return corrupt


def test_fb_backend_option_runs_the_suite_against_a_named_backend(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--fb-backend", "memory", "-q", "-p", "no:cacheprovider", "-x"],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout and "failed" not in result.stdout


def _pytest(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *arguments],
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_fb_backend_of_an_unknown_name_is_one_usage_error_listing_the_installed_backends(tmp_path: Path) -> None:
    result = _pytest("--fb-backend", "memroy", cwd=tmp_path)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    output = result.stdout + result.stderr
    assert "--fb-backend memroy: backend 'memroy' was not recognized" in output
    assert "fs_hardlink" in output and "Did you mean 'memory'?" in output
    assert output.count("was not recognized") == 1 and "TestNamedBackend" not in output


def test_fb_backend_runs_only_the_suite_beside_other_tests_in_the_directory(tmp_path: Path) -> None:
    (tmp_path / "test_unrelated.py").write_text("def test_unrelated():\n    raise AssertionError('collected')\n")
    result = _pytest("--fb-backend", "memory", "-x", "-k", "round_trip", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "collected" not in result.stdout
