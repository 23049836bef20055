"""What a newcomer meets in the first hour of the command line: the version,
``python -m file_backed``, help that is not cut off, usage errors for
impossible demo sizes, progress bars that end with the time taken, and tables
that fit 80 columns. Each runs the command as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from rich.console import Console

from file_backed.cli.progress import progress_bar
from tests.test_cli import file_backed


def test_version_option_prints_the_distribution_version(tmp_path: Path) -> None:
    result = file_backed("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"file-backed {version('file-backed')}"


def test_python_m_file_backed_runs_the_command_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "file_backed", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: file-backed ")


def test_help_shows_each_command_summary_whole_at_80_columns(tmp_path: Path) -> None:
    result = file_backed("--help", cwd=tmp_path, env={"COLUMNS": "80"})
    commands = result.stdout.partition("Commands:")[2]
    assert "..." not in commands
    assert "distributions." in commands
    assert max(map(len, result.stdout.splitlines())) <= 80


@pytest.mark.parametrize(
    ("option", "value"),
    [("--items", "0"), ("--items", "-3"), ("--item-kib", "0"), ("--item-kib", "-1"), ("--pool-items", "0")],
)
def test_demo_rejects_sizes_below_one_with_a_usage_error(tmp_path: Path, option: str, value: str) -> None:
    result = file_backed("demo", option, value, cwd=tmp_path)
    assert result.returncode == 2
    assert f"Invalid value for '{option}'" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_fits_80_columns_and_its_finished_bars_show_the_time_taken(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "file_backed",
            "demo",
            "--items",
            "30",
            "--item-kib",
            "4",
            "--pool-items",
            "4",
            "--reads",
            "30",
            "--no-fsync",
        ],
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "80", "FORCE_COLOR": "0", "TERM": "dumb"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    assert [line.split()[0] for line in lines if line.startswith(("inserting", "reading", "persisting"))] == [
        "inserting",
        "reading",
        "persisting",
    ]
    assert "hit rate" in result.stdout and "KiB written" in result.stdout


def test_a_finished_progress_bar_shows_the_time_it_took() -> None:
    now = [0.0]
    console = Console(record=True, width=80, force_terminal=False)
    with progress_bar(console, get_time=lambda: now[0]) as bar:
        task = bar.add_task("inserting", total=2)
        now[0] = 65.0
        bar.advance(task, 2)
    assert console.export_text().split()[-2:] == ["2/2", "0:01:05"]


def test_plugins_tables_fit_80_columns(tmp_path: Path) -> None:
    result = file_backed("plugins", cwd=tmp_path, env={"COLUMNS": "80"})
    assert result.returncode == 0
    assert max(map(len, result.stdout.splitlines())) <= 80
