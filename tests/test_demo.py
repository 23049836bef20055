"""``file-backed demo``: the main job runs end to end and reports what flowed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("fsync", ["--fsync", "--no-fsync"])
def test_demo_moves_more_than_the_budget_and_restores_what_it_persisted(fsync: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "file_backed.cli",
            "demo",
            "--items",
            "60",
            "--item-kib",
            "16",
            "--pool-items",
            "6",
            "--reads",
            "200",
            fsync,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "60 x 16 KiB" in done.stdout and "6 items" in done.stdout
    assert "6, 6 registered in a new store and checked" in done.stdout
    assert "failed" not in done.stdout
