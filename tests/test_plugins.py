"""Discovery by entry points, and the errors for names that are not installed."""

from __future__ import annotations

import sys

import pytest

import file_backed as fb


def test_bundled_backends_and_codecs_are_available() -> None:
    assert {"memory", "fs_hardlink"} <= set(fb.available_backends())
    assert {"pickle", "json", "bytes", "numpy"} <= set(fb.available_codecs())


def test_unknown_backend_lists_installed_and_closest() -> None:
    with pytest.raises(fb.PluginNotFoundError) as raised:
        fb.open_store("fs_hardlnk")
    message = str(raised.value)
    assert "memory" in message and "Did you mean 'fs_hardlink'?" in message


def test_unknown_codec_lists_installed() -> None:
    with pytest.raises(fb.PluginNotFoundError, match="pickle"):
        fb.open_store("memory", codec="pikle")


def test_unknown_backend_option_is_a_config_error() -> None:
    with pytest.raises(fb.ConfigError, match="'colour'.*path, fsync"):
        fb.open_store("fs_hardlink", colour="blue")


def test_import_loads_no_plugin_and_no_heavy_module() -> None:
    import subprocess

    code = (
        "import sys, file_backed; "
        "print(sorted(m for m in ('numpy', 'fsspec', 'rich', 'file_backed_memory', 'file_backed_fs_hardlink') "
        "if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    assert output.stdout.strip() == "[]"


def test_backend_missing_hooks_is_rejected() -> None:
    class Incomplete:
        @fb.hookimpl
        def store(self, key: object, data: object) -> None: ...

    with pytest.raises(TypeError, match="load"):
        fb.BackingStore(Incomplete())


def test_misspelled_hookimpl_fails_loudly() -> None:
    from tests.recording import RecordingBackend

    class Misspelled(RecordingBackend):
        @fb.hookimpl
        def stor(self, key: object, data: object) -> None: ...

    import pluggy

    with pytest.raises(pluggy.PluginValidationError, match="stor"):
        fb.BackingStore(Misspelled())


def test_broken_entry_point_is_skipped_and_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from file_backed import plugins

    real = importlib.metadata.entry_points

    def with_broken(*, group: str) -> list[importlib.metadata.EntryPoint]:
        found = list(real(group=group))
        if group == plugins.BACKENDS_GROUP:
            found.append(importlib.metadata.EntryPoint("broken", "no_such_module:Backend", group))
        return found

    monkeypatch.setattr(importlib.metadata, "entry_points", with_broken)
    plugins.refresh()
    try:
        assert "broken" not in fb.available_backends()
        assert "memory" in fb.available_backends()
        with pytest.raises(fb.PluginNotFoundError, match="failed to load: ModuleNotFoundError"):
            fb.open_store("broken")
    finally:
        monkeypatch.undo()
        plugins.refresh()
