"""The ``file-backed`` command run as a subprocess: ``plugins``, ``check`` and error reporting."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def file_backed(*arguments: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the console script (or ``python -m file_backed.cli`` where it is not on disk)."""
    script = Path(sys.executable).with_name("file-backed")
    found = str(script) if script.exists() else shutil.which("file-backed")
    command = [found] if found else [sys.executable, "-m", "file_backed.cli"]
    return subprocess.run(
        [*command, *arguments],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_config(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


# -- help ----------------------------------------------------------------------------------------


def test_help_lists_the_commands_and_the_debug_option(tmp_path: Path) -> None:
    result = file_backed("--help", cwd=tmp_path)
    assert result.returncode == 0
    for word in ("plugins", "check", "--debug"):
        assert word in result.stdout


# -- plugins ---------------------------------------------------------------------------------------


def test_plugins_lists_bundled_backends_codecs_and_middleware_with_distributions(tmp_path: Path) -> None:
    result = file_backed("plugins", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for text in ("backends", "codecs", "middleware", "fs_hardlink", "file-backed-fs-hardlink", "memory", "pickle"):
        assert text in result.stdout
    assert "metrics" in result.stdout


def test_plugins_json_gives_name_distribution_and_version_of_each(tmp_path: Path) -> None:
    result = file_backed("plugins", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    names = {(row["kind"], row["name"]): row for row in rows}
    assert names["backends", "memory"]["distribution"] == "file-backed-memory"
    assert names["codecs", "pickle"]["distribution"] == "file-backed"
    assert names["middleware", "metrics"]["version"]
    assert all(row["error"] is None for row in rows)


def test_plugins_reports_a_broken_entry_point_and_exits_1(tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "broken_backend-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-backend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[file_backed.backends]\nbroken = no_such_module_anywhere:Factory\n")
    result = file_backed("plugins", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert result.returncode == 1
    assert "broken" in result.stdout and "ModuleNotFoundError" in result.stdout
    assert "Traceback" not in result.stderr


# -- check --------------------------------------------------------------------------------------------


def test_check_of_a_valid_file_writes_reads_and_deletes_a_probe(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "file_backed.toml",
        f"""
        [file_backed]
        backend = "fs_hardlink"
        max_items = 10

        [file_backed.options]
        path = "{tmp_path / "area"}"
        """,
    )
    result = file_backed("check", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for step in ("load configuration", "open store", "write probe", "read probe", "delete probe", "check passed"):
        assert step in result.stdout
    assert str(config) in result.stdout


def test_check_shows_metrics_when_the_middleware_is_enabled(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "file_backed.toml", '[file_backed]\nbackend = "memory"\ncodec = "json"\nplugins = ["metrics"]\n'
    )
    result = file_backed("check", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "metrics (hook calls)" in result.stdout
    assert "store" in result.stdout.split("metrics (hook calls)")[1]


def test_check_finds_the_configuration_from_a_nested_directory(tmp_path: Path) -> None:
    write_config(tmp_path / "pyproject.toml", '[tool.file_backed]\nbackend = "memory"\ncodec = "bytes"\n')
    nested = tmp_path / "src" / "package"
    nested.mkdir(parents=True)
    result = file_backed("check", cwd=nested)
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'pyproject.toml'} [tool.file_backed]" in result.stdout


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[file_backed]\nmax_item = 10\n", "$.max_item: unknown key. Did you mean 'max_items'?"),
        ('[file_backed]\nbackend = "fs_hardlnk"\n', "Did you mean 'fs_hardlink'?"),
        ('[file_backed]\nmax_bytes = "-1 GiB"\n', "$.max_bytes:"),
        ("[file_backed]\nmax_items = = 3\n", "not valid TOML"),
    ],
    ids=["unknown key", "unknown backend", "negative size", "toml syntax"],
)
def test_check_of_a_bad_file_prints_one_message_without_traceback(tmp_path: Path, body: str, expected: str) -> None:
    config = write_config(tmp_path / "bad.toml", body)
    result = file_backed("check", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert expected in result.stderr and str(config) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_check_of_a_missing_file_exits_1_without_traceback(tmp_path: Path) -> None:
    result = file_backed("check", str(tmp_path / "absent.toml"), cwd=tmp_path)
    assert result.returncode == 1
    assert "no such configuration file" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback_of_a_bad_file(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bad.toml", "[file_backed]\nmax_item = 10\n")
    result = file_backed("--debug", "check", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr


def test_check_of_a_backend_rejecting_its_options_exits_1(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("the temporary area cannot be a file")
    config = write_config(
        tmp_path / "file_backed.toml", f'[file_backed]\nbackend = "fs_hardlink"\noptions = {{ path = "{blocker}" }}\n'
    )
    result = file_backed("check", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    result = file_backed("chekc", cwd=tmp_path)
    assert result.returncode == 2
    assert "No such command" in result.stderr


# -- secrets ---------------------------------------------------------------------------------------

SECRETS = ("0123456789abcdef-signing", "AKIAEXAMPLEKEYID", "example-secret-access-key")


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_check_never_prints_a_signing_key_or_storage_credentials(tmp_path: Path, debug: bool) -> None:
    config = write_config(
        tmp_path / "file_backed.toml",
        f"""\
        [file_backed]
        backend = "fsspec"
        [file_backed.options]
        url = "memory://check-secrets"
        signing_key = "{SECRETS[0]}"
        storage_options = {{ key = "{SECRETS[1]}", secret = "{SECRETS[2]}", skip_instance_cache = true }}
        """,
    )
    result = file_backed(*(["--debug"] if debug else []), "check", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "options.signing_key" in result.stdout and "<redacted>" in result.stdout
    assert "skip_instance_cache" in result.stdout
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_a_rejected_secret_is_not_printed_in_the_error(tmp_path: Path, debug: bool) -> None:
    config = write_config(
        tmp_path / "file_backed.toml",
        '[file_backed]\nbackend = "fsspec"\n[file_backed.options]\nsigning_key = 1234567890123456789\n',
    )
    result = file_backed(*(["--debug"] if debug else []), "check", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "$.options.signing_key" in result.stderr
    assert "1234567890123456789" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("path = 5", "$.options.path: backend 'fs_hardlink' expects text or a path here, got int 5"),
        ('fsync = "yes"', "$.options.fsync: backend 'fs_hardlink' expects true or false here, got str 'yes'"),
        ('path = ""', "fs_hardlink option path: empty"),
    ],
    ids=["path is a number", "fsync is text", "path is empty"],
)
def test_a_backend_option_of_the_wrong_type_or_empty_is_named_by_its_key(
    tmp_path: Path, option: str, expected: str
) -> None:
    config = write_config(
        tmp_path / "file_backed.toml", f'[file_backed]\nbackend = "fs_hardlink"\n[file_backed.options]\n{option}\n'
    )
    result = file_backed("check", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert expected in result.stderr and str(config) in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file_backed.toml"]
