"""Plugins that cannot be used: an optional codec whose dependency is missing is
*not installed* (with the command that installs it), not broken; an entry point
that breaks its group's contract is named with the contract. Each scenario runs
in a subprocess whose environment blocks imports or adds a distribution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import add_distribution
from tests.test_cli import file_backed, write_config

NOT_A_CODEC = '''
import pickle


class ReversedPickle:
    """A codec author's first try: the right methods, but no file_backed.Codec base."""

    name = "reversed"

    def encode(self, obj):
        return [pickle.dumps(obj)[::-1]]

    def decode(self, data):
        return pickle.loads(bytes(data)[::-1])
'''


def python(code: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def reversed_codec_site(tmp_path: Path) -> dict[str, str]:
    site = add_distribution(
        tmp_path / "site",
        "reversed-codec",
        "[file_backed.codecs]\nreversed = reversed_codec:ReversedPickle\n",
        {"reversed_codec": NOT_A_CODEC},
    )
    return {"PYTHONPATH": str(site)}


# -- a missing optional dependency -------------------------------------------------------------


def test_plugins_lists_codecs_without_their_dependency_as_not_installed_and_exits_0(
    tmp_path: Path, plain_install: dict[str, str]
) -> None:
    result = file_backed("plugins", cwd=tmp_path, env=plain_install)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not installed — pip install 'file-backed[numpy]'" in result.stdout
    assert "not installed — pip install 'file-backed[msgpack]'" in result.stdout
    assert "broken" not in result.stdout


def test_plugins_json_gives_the_install_command_of_a_codec_without_its_dependency(
    tmp_path: Path, plain_install: dict[str, str]
) -> None:
    result = file_backed("plugins", "--json", cwd=tmp_path, env=plain_install)
    rows = {(row["kind"], row["name"]): row for row in json.loads(result.stdout)}
    assert rows["codecs", "numpy"]["not_installed"] == "pip install 'file-backed[numpy]'"
    assert rows["codecs", "numpy"]["error"] is None
    assert rows["codecs", "pickle"]["not_installed"] is None


def test_config_naming_a_codec_without_its_dependency_says_how_to_install_it_under_codec(
    tmp_path: Path, plain_install: dict[str, str]
) -> None:
    write_config(tmp_path / "file_backed.toml", '[file_backed]\nbackend = "memory"\ncodec = "numpy"\n')
    result = python(
        """
        import file_backed as fb
        try:
            fb.load_config()
        except fb.ConfigError as error:
            print(error)
        """,
        tmp_path,
        plain_install,
    )
    assert "$.codec: codec 'numpy' is not installed — pip install 'file-backed[numpy]'" in result.stdout, result.stderr
    assert "$.codec_options" not in result.stdout


def test_opening_a_codec_without_its_dependency_raises_plugin_not_installed(
    tmp_path: Path, plain_install: dict[str, str]
) -> None:
    result = python(
        """
        import file_backed as fb
        try:
            fb.open_store("memory", codec="msgpack")
        except fb.PluginNotInstalledError as error:
            print(error.module, error.hint, isinstance(error, fb.PluginNotFoundError))
        """,
        tmp_path,
        plain_install,
    )
    assert result.stdout.split() == ["msgpack", "pip", "install", "'file-backed[msgpack]'", "True"], result.stderr


# -- an entry point that breaks the contract -------------------------------------------------------


def test_codec_class_not_deriving_from_codec_is_named_with_its_entry_point_and_the_contract(tmp_path: Path) -> None:
    result = python(
        """
        import file_backed as fb
        try:
            fb.open_store("memory", codec="reversed")
        except fb.PluginNotFoundError as error:
            print(error)
        """,
        tmp_path,
        reversed_codec_site(tmp_path),
    )
    message = result.stdout
    assert "reversed = reversed_codec:ReversedPickle" in message, result.stderr
    assert "installed by reversed-codec" in message
    assert "does not subclass file_backed.Codec" in message
    assert "docs/writing-a-codec.md" in message


def test_config_with_a_codec_not_deriving_from_codec_reports_it_under_codec(tmp_path: Path) -> None:
    write_config(tmp_path / "file_backed.toml", '[file_backed]\nbackend = "memory"\ncodec = "reversed"\n')
    result = file_backed("check", cwd=tmp_path, env=reversed_codec_site(tmp_path))
    assert result.returncode == 1
    assert "$.codec: codec 'reversed' cannot be used" in result.stderr
    assert "does not subclass file_backed.Codec" in result.stderr
    assert "not iterable" not in result.stderr


def test_plugins_shows_a_codec_not_deriving_from_codec_as_broken_and_exits_1(tmp_path: Path) -> None:
    result = file_backed("plugins", "--json", cwd=tmp_path, env=reversed_codec_site(tmp_path))
    assert result.returncode == 1
    rows = {(row["kind"], row["name"]): row for row in json.loads(result.stdout)}
    assert "does not subclass file_backed.Codec" in rows["codecs", "reversed"]["error"]


def test_a_codec_given_as_an_object_of_another_class_is_a_clear_type_error(tmp_path: Path) -> None:
    result = python(
        """
        import file_backed as fb
        from reversed_codec import ReversedPickle
        try:
            fb.open_store("memory", codec=ReversedPickle())
        except TypeError as error:
            print(error)
        """,
        tmp_path,
        reversed_codec_site(tmp_path),
    )
    assert "file_backed.Codec instance, not ReversedPickle" in result.stdout, result.stderr
