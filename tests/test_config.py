"""Configuration by name: `load_config`, `open_pool`, sizes, discovery and the errors."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import file_backed as fb
from file_backed.config import FileBackedConfig, find_config_file, format_size, parse_size
from file_backed.metrics import Metrics, find_metrics


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# -- bad configurations: (id, table, key that the message must name, another fragment it must contain)

BAD_TABLES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown key", {"max_item": 10}, "$.max_item", "Did you mean 'max_items'?"),
    ("unknown key without match", {"colour": "blue"}, "$.colour", "Valid keys:"),
    ("source is not a key", {"source": "x"}, "$.source", "unknown key"),
    ("max_items as text", {"max_items": "10"}, "$.max_items", "expected an integer"),
    ("max_items as float", {"max_items": 10.5}, "$.max_items", "expected an integer"),
    ("max_items as bool", {"max_items": True}, "$.max_items", "expected an integer"),
    ("max_items zero", {"max_items": 0}, "$.max_items", "at least 1"),
    ("max_items negative", {"max_items": -5}, "$.max_items", "at least 1"),
    ("max_bytes negative", {"max_bytes": -1}, "$.max_bytes", "at least 1 byte"),
    ("max_bytes negative text", {"max_bytes": "-2 GiB"}, "$.max_bytes", "at least 1 byte"),
    ("max_bytes zero", {"max_bytes": "0 MB"}, "$.max_bytes", "at least 1 byte"),
    ("max_bytes unknown unit", {"max_bytes": "2 GB/s"}, "$.max_bytes", "2 GiB"),
    ("max_bytes fractional bytes", {"max_bytes": "1.5 B"}, "$.max_bytes", "whole number of bytes"),
    ("max_bytes as float", {"max_bytes": 1.5e9}, "$.max_bytes", "expected a size"),
    ("max_bytes as list", {"max_bytes": [1]}, "$.max_bytes", "expected a size"),
    ("workers zero", {"workers": 0}, "$.workers", "at least 1"),
    ("workers as text", {"workers": "4"}, "$.workers", "expected an integer"),
    ("backend as number", {"backend": 3}, "$.backend", "expected text"),
    ("backend misspelled", {"backend": "fs_hardlnk"}, "$.backend", "Did you mean 'fs_hardlink'?"),
    ("backend unknown", {"backend": "tape"}, "$.backend", "memory"),
    ("codec misspelled", {"codec": "pikle"}, "$.codec", "Did you mean 'pickle'?"),
    ("codec as list", {"codec": ["json"]}, "$.codec", "expected text"),
    ("plugins as text", {"plugins": "metrics"}, "$.plugins", "expected a list"),
    ("plugins with a number", {"plugins": [1]}, "$.plugins", "expected a list"),
    ("plugin misspelled", {"plugins": ["metrcs"]}, "$.plugins[0]", "Did you mean 'metrics'?"),
    ("plugin listed twice", {"plugins": ["metrics", "metrics"]}, "$.plugins[1]", "listed twice"),
    ("options not a table", {"options": "path=/tmp"}, "$.options", "expected a table"),
    ("unknown backend option", {"options": {"pth": "/tmp/x"}}, "$.options.pth", "Did you mean 'path'?"),
    ("option for memory", {"backend": "memory", "options": {"path": "x"}}, "$.options.path", "no options"),
    (
        "unknown codec option",
        {"codec": "pickle", "codec_options": {"protocl": 5}},
        "$.codec_options.protocl",
        "Did you mean 'protocol'?",
    ),
    ("codec_options not a table", {"codec_options": 5}, "$.codec_options", "expected a table"),
]


@pytest.mark.parametrize(
    ("table", "key", "fragment"), [case[1:] for case in BAD_TABLES], ids=[c[0] for c in BAD_TABLES]
)
def test_bad_table_raises_config_error_naming_the_key(table: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(fb.ConfigError) as raised:
        fb.load_config(table)
    message = str(raised.value)
    assert f"{key}:" in message
    assert fragment in message


@pytest.mark.parametrize(
    ("table", "key", "fragment"), [case[1:] for case in BAD_TABLES], ids=[c[0] for c in BAD_TABLES]
)
def test_bad_file_raises_config_error_naming_the_file(
    tmp_path: Path, table: dict[str, Any], key: str, fragment: str
) -> None:
    import json

    lines = "\n".join(f"{name} = {json.dumps(value)}" for name, value in table.items() if not isinstance(value, dict))
    tables = "\n".join(
        f"[file_backed.{name}]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
        for name, value in table.items()
        if isinstance(value, dict)
    )
    path = write(tmp_path / "file_backed.toml", f"[file_backed]\n{lines}\n{tables}\n")
    with pytest.raises(fb.ConfigError) as raised:
        fb.load_config(path)
    assert str(path) in str(raised.value)
    assert f"{key}:" in str(raised.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(fb.ConfigError) as raised:
        fb.load_config({"max_items": 0, "workers": "x", "colour": 1})
    assert {"$.max_items:", "$.workers:", "$.colour:"} <= set(str(raised.value).split())


def test_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "file_backed.toml", "[file_backed]\nmax_items = = 3\n")
    with pytest.raises(fb.ConfigError, match=r"file_backed\.toml: not valid TOML.*line 2"):
        fb.load_config(path)


def test_file_without_the_table_says_which_table(tmp_path: Path) -> None:
    path = write(tmp_path / "file_backed.toml", "[filebacked]\nmax_items = 3\n")
    with pytest.raises(fb.ConfigError, match=r"no \[file_backed\] table"):
        fb.load_config(path)


def test_table_that_is_not_a_table_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "file_backed.toml", "file_backed = 3\n")
    with pytest.raises(fb.ConfigError, match=r"\$: expected a table"):
        fb.load_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(fb.ConfigError, match="no such configuration file"):
        fb.load_config(tmp_path / "absent.toml")


def test_source_of_another_type_is_a_config_error() -> None:
    with pytest.raises(fb.ConfigError, match="path or a mapping"):
        fb.load_config(42)  # type: ignore[arg-type]


def test_backend_needing_an_option_reports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import file_backed.config as config_module

    def factory(*, codec: fb.Codec, url: str) -> object:
        raise AssertionError("never built by load_config")

    monkeypatch.setattr(config_module, "get_backend", lambda name: factory)
    with pytest.raises(fb.ConfigError, match=r"\$\.options\.url: backend 'memory' needs the option 'url'"):
        fb.load_config({"backend": "memory"})


# -- good configurations ------------------------------------------------------------------------


def test_mapping_gives_a_config_with_defaults_for_missing_keys() -> None:
    config = fb.load_config({"backend": "memory"})
    assert config == FileBackedConfig(backend="memory", codec="pickle", max_items=1000)  # type: ignore[arg-type]
    assert config.source == "<mapping>"


def test_file_backed_toml_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path / "file_backed.toml",
        """
        [file_backed]
        backend = "fs_hardlink"
        codec = "json"
        max_items = 50
        max_bytes = "2 GiB"
        workers = 3
        plugins = ["metrics"]

        [file_backed.options]
        fsync = false

        [file_backed.codec_options]
        sort_keys = true
        """,
    )
    config = fb.load_config(path)
    assert (config.backend, config.codec, config.max_items, config.max_bytes, config.workers) == (
        "fs_hardlink",
        "json",
        50,
        2 * 2**30,
        3,
    )
    assert config.plugins == ("metrics",)
    assert dict(config.options) == {"fsync": False}
    assert dict(config.codec_options) == {"sort_keys": True}
    assert config.source == f"{path} [file_backed]"


def test_pyproject_tool_table_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n\n[tool.file_backed]\nbackend = "memory"\n')
    config = fb.load_config(path)
    assert config.backend == "memory"
    assert config.source == f"{path} [tool.file_backed]"


def test_pyproject_without_the_tool_table_is_an_error_when_named(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    with pytest.raises(fb.ConfigError, match=r"no \[tool\.file_backed\] table"):
        fb.load_config(path)


def test_directory_source_reads_the_file_in_it(tmp_path: Path) -> None:
    write(tmp_path / "file_backed.toml", '[file_backed]\nbackend = "memory"\n')
    assert fb.load_config(tmp_path).backend == "memory"


# -- discovery -------------------------------------------------------------------------------------


def test_discovery_finds_file_backed_toml_from_a_nested_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "file_backed.toml", '[file_backed]\nbackend = "memory"\nmax_items = 7\n')
    nested = tmp_path / "a" / "b" / "c"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    config = fb.load_config()
    assert (config.backend, config.max_items) == ("memory", 7)


def test_discovery_finds_the_pyproject_table_from_a_nested_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "pyproject.toml", '[tool.file_backed]\nbackend = "memory"\n')
    nested = tmp_path / "src" / "pkg"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert fb.load_config().backend == "memory"


def test_discovery_prefers_file_backed_toml_over_pyproject_in_one_directory(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.file_backed]\nbackend = "memory"\n')
    write(tmp_path / "file_backed.toml", '[file_backed]\nbackend = "fs_hardlink"\n')
    assert find_config_file(tmp_path) == tmp_path / "file_backed.toml"


def test_discovery_skips_a_pyproject_without_the_tool_table(tmp_path: Path) -> None:
    write(tmp_path / "file_backed.toml", '[file_backed]\nbackend = "memory"\n')
    write(tmp_path / "project" / "pyproject.toml", '[project]\nname = "unrelated"\n')
    assert find_config_file(tmp_path / "project") == tmp_path / "file_backed.toml"


def test_no_file_found_gives_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if find_config_file(tmp_path) is not None:
        pytest.skip("a configuration file exists above the temporary directory")
    config = fb.load_config()
    assert config == FileBackedConfig()
    assert config.source == "<defaults>"


# -- sizes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [("2 GiB", 2 * 1024**3), ("512 MB", 512 * 10**6), ("1kB", 1000), ("1.5 KiB", 1536), ("7", 7), ("3 bytes", 3)],
)
def test_size_text_is_parsed(text: str, size: int) -> None:
    assert parse_size(text) == size


@given(st.integers(min_value=1, max_value=2**70))
def test_formatted_size_parses_back(size: int) -> None:
    assert parse_size(format_size(size)) == size


# -- constructing directly --------------------------------------------------------------------------------


def test_direct_construction_rejects_a_bad_range() -> None:
    with pytest.raises(ValueError, match="max_items"):
        FileBackedConfig(max_items=0)  # type: ignore[arg-type]


# -- open_pool -------------------------------------------------------------------------------------------------


def test_open_pool_opens_the_configured_store_and_pool(tmp_path: Path) -> None:
    table = {"backend": "fs_hardlink", "max_items": 4, "max_bytes": "1 MiB", "options": {"path": str(tmp_path)}}
    pool = fb.open_pool(table)
    with pool.store:
        assert (pool.max_items, pool.max_bytes) == (4, 2**20)
        handles = [pool.insert([index] * 100) for index in range(10)]
        pool.store.finished()
        assert pool.stats.stores == 6
        assert [handle.get() for handle in handles] == [[index] * 100 for index in range(10)]


def test_open_pool_with_metrics_counts_hooks() -> None:
    pool = fb.open_pool({"backend": "memory", "max_items": 1, "plugins": ["metrics"]})
    with pool.store:
        recorder = find_metrics(pool.store)
        assert isinstance(recorder, Metrics)
        before = recorder.snapshot().get("store")
        pool.insert("a").write_now()
        after = recorder.snapshot()["store"]
        assert after.calls == (before.calls if before else 0) + 1


def test_open_pool_wraps_a_rejected_codec_option_value_in_a_config_error() -> None:
    with pytest.raises(fb.ConfigError, match=r"<mapping>:\n  \$\.codec_options: codec 'pickle' rejected"):
        fb.open_pool({"backend": "memory", "codec_options": {"protocol": 2}})


# -- the reference documentation ------------------------------------------------------------------------------

REFERENCE = Path(__file__).parents[1] / "docs" / "configuration.md"


def test_configuration_reference_documents_exactly_the_keys_of_the_config_class() -> None:
    import re

    import attrs

    documented = re.findall(r"^### `(\w+)`$", REFERENCE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    keys = [field.name for field in attrs.fields(FileBackedConfig) if field.name != "source"]
    assert documented == keys


def test_configuration_reference_example_is_valid(tmp_path: Path) -> None:
    import re

    example = re.search(r"## Example\n\n```toml\n(.*?)```", REFERENCE.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert example is not None
    config = fb.load_config(write(tmp_path / "file_backed.toml", example.group(1)))
    assert config.max_bytes == 2 * 2**30


def test_the_repr_of_a_configuration_hides_secrets() -> None:
    config = fb.load_config({"backend": "fs_hardlink", "options": {"signing_key": "0123456789abcdef-hidden"}})
    assert "0123456789abcdef-hidden" not in repr(config) and "<redacted>" in repr(config)
