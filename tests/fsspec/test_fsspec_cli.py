"""``file-backed ls`` and ``verify`` on fsspec URLs: an S3 bucket on the loopback
server and ``memory://`` (in the process that persisted to it), run as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

import file_backed as fb

pytestmark = pytest.mark.timeout(90)


def cli(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "file_backed", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def persist_to_s3(bucket: str, s3_options: dict[str, Any], values: list[bytes]) -> list[uuid.UUID]:
    with fb.open_store("fsspec", url=f"s3://{bucket}/temporary", storage_options=s3_options, codec="bytes") as store:
        tracked = store.track_path(f"s3://{bucket}/persisted")
        pool = fb.FBPool(store, max_items=4)
        keys = [pool.insert(value).persist(tracked) for value in values]
        store.fsync(tracked)
    return keys


def test_ls_lists_the_blobs_of_an_s3_url(bucket: str, s3_options: dict[str, Any], tmp_path: Path) -> None:
    keys = persist_to_s3(bucket, s3_options, [b"a" * 100, b"b" * 200])
    result = cli("ls", f"s3://{bucket}/persisted", "--storage-options", json.dumps(s3_options), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert sorted(uuid.UUID(row[0]) for row in rows) == sorted(keys)
    assert {row[2] for row in rows} == {"bytes"}
    assert "2 blobs" in result.stderr


def test_verify_checks_an_s3_url_and_reports_a_changed_object(
    bucket: str, s3_options: dict[str, Any], s3: Any, tmp_path: Path
) -> None:
    keys = persist_to_s3(bucket, s3_options, [b"a" * 100, b"b" * 200])
    options = json.dumps(s3_options)
    assert cli("verify", f"s3://{bucket}/persisted", "--storage-options", options, cwd=tmp_path).returncode == 0
    path = f"{bucket}/persisted/{keys[0].hex[:2]}/{keys[0].hex}"
    s3.pipe_file(path, s3.cat_file(path)[:-1] + b"!")
    result = cli("verify", f"s3://{bucket}/persisted", "--storage-options", options, cwd=tmp_path)
    assert result.returncode == 1
    assert f"CORRUPT {keys[0]}" in result.stdout and "1 corrupt" in result.stdout


def test_storage_options_come_from_the_environment_too(bucket: str, s3_options: dict[str, Any], tmp_path: Path) -> None:
    persist_to_s3(bucket, s3_options, [b"x"])
    result = subprocess.run(
        [sys.executable, "-m", "file_backed", "verify", f"s3://{bucket}/persisted"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "FILE_BACKED_STORAGE_OPTIONS": json.dumps(s3_options)},
    )
    assert result.returncode == 0, result.stderr
    assert "checked 1 blobs" in result.stdout


def test_verify_of_a_mistyped_s3_url_is_a_usage_error(bucket: str, s3_options: dict[str, Any], tmp_path: Path) -> None:
    persist_to_s3(bucket, s3_options, [b"x"])
    result = cli("verify", f"s3://{bucket}/persistd", "--storage-options", json.dumps(s3_options), cwd=tmp_path)
    assert result.returncode == 2
    assert "persistd: nothing is there" in result.stderr


def test_ls_and_verify_read_a_memory_url_in_the_process_that_wrote_it(tmp_path: Path) -> None:
    code = """
        import file_backed as fb
        from file_backed.cli import main
        with fb.open_store("fsspec", url="memory://cli-test/temporary") as store:
            tracked = store.track_path("memory://cli-test/persisted")
            pool = fb.FBPool(store, max_items=2)
            for value in ("one", "two", "three"):
                pool.insert(value).persist(tracked)
            store.fsync(tracked)
        main([COMMAND, "memory://cli-test/persisted"], prog_name="file-backed")
    """
    for command, expected in (("ls", "3 blobs"), ("verify", "checked 3 blobs")):
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code).replace("COMMAND", repr(command))],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout + result.stderr


def test_an_unknown_protocol_is_a_usage_error(tmp_path: Path) -> None:
    result = cli("ls", "s4://bucket/x", cwd=tmp_path)
    assert result.returncode == 2
    assert "s4://bucket/x" in result.stderr and "Traceback" not in result.stderr
