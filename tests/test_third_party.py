"""Third-party plugins: a throwaway backend and codec distribution are built, pip-installed
into a temporary virtual environment that sees the test environment, used by name from
Python and from a TOML file, and uninstalled again."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BACKEND_MODULE = '''
"""A throwaway backend: blobs in dicts, persisted locations in a process-wide dict."""
import threading
import uuid
from typing import Any

from file_backed import BlobNotFoundError, hookimpl
from file_backed.blob import decode_blob, encode_blob

LOCATIONS: dict[str, dict[uuid.UUID, bytes]] = {}
LOCK = threading.Lock()


class DictBackend:
    def __init__(self, *, codec, prefix: str = "") -> None:
        self.codec = codec
        self.prefix = prefix
        self.blobs: dict[uuid.UUID, bytes] = {}

    def _get(self, blobs: dict[uuid.UUID, bytes], key: uuid.UUID) -> bytes:
        with LOCK:
            if key not in blobs:
                raise BlobNotFoundError(str(key))
            return blobs[key]

    @hookimpl
    def store(self, key: uuid.UUID, data: Any) -> int:
        buffers, size = encode_blob(self.codec, data)
        with LOCK:
            self.blobs[key] = b"".join(buffers)
        return size

    @hookimpl
    def load(self, key: uuid.UUID) -> Any:
        return decode_blob(self.codec, bytearray(self._get(self.blobs, key)), source=str(key))

    @hookimpl
    def delete(self, key: uuid.UUID) -> None:
        with LOCK:
            self.blobs.pop(key, None)

    @hookimpl
    def prepare_path(self, location: str) -> str:
        with LOCK:
            LOCATIONS.setdefault(self.prefix + str(location), {})
        return self.prefix + str(location)

    @hookimpl
    def sanitize_path(self, path: str) -> list[uuid.UUID]:
        with LOCK:
            return list(LOCATIONS[path])

    @hookimpl
    def persist(self, dest_path: str, key: uuid.UUID) -> None:
        blob = self._get(self.blobs, key)
        with LOCK:
            LOCATIONS[dest_path][key] = blob

    @hookimpl
    def register(self, src_path: str, key: uuid.UUID) -> None:
        blob = self._get(LOCATIONS[src_path], key)
        with LOCK:
            self.blobs[key] = blob

    @hookimpl
    def delete_persisted(self, path: str, key: uuid.UUID) -> None:
        with LOCK:
            LOCATIONS[path].pop(key, None)

    @hookimpl
    def sync_persisted(self, path: str) -> None:
        """Memory is as durable as it gets."""
'''

CODEC_MODULE = '''
"""A throwaway codec: text, stored ROT13-encoded."""
import codecs
from typing import Any, ClassVar

from file_backed import Codec


class Rot13Codec(Codec):
    name: ClassVar[str] = "rot13"

    def encode(self, obj: Any) -> list[bytes]:
        if not isinstance(obj, str):
            raise TypeError("rot13 stores text")
        return [codecs.encode(obj, "rot13").encode()]

    def decode(self, data: memoryview) -> Any:
        return codecs.decode(bytes(data).decode(), "rot13")
'''


def _project(root: Path, distribution: str, module: str, source: str, group: str, entry: str) -> Path:
    root.mkdir(parents=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["hatchling>=1.21"]
            build-backend = "hatchling.build"

            [project]
            name = "{distribution}"
            version = "0.0.1"
            dependencies = ["file-backed"]

            [project.entry-points."{group}"]
            {entry}

            [tool.hatch.build.targets.wheel]
            only-include = ["{module}.py"]
            """
        ),
        encoding="utf-8",
    )
    return root


def make_environment(root: Path) -> Path:
    """A virtual environment at `root` without pip whose interpreter also sees the test
    environment's packages (a ``.pth`` file adds its site-packages, editable installs
    included); returns its interpreter."""
    venv.create(root, with_pip=False)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "zz_test_environment.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return python


def _pip(python: Path, *arguments: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check", *arguments],
        check=True,
        capture_output=True,
        timeout=600,
    )


def _run(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _projects(projects: Path) -> tuple[Path, Path]:
    backend = _project(
        projects / "backend",
        "fb-throwaway-backend",
        "fb_throwaway_backend",
        BACKEND_MODULE,
        "file_backed.backends",
        'throwaway = "fb_throwaway_backend:DictBackend"',
    )
    codec = _project(
        projects / "codec",
        "fb-throwaway-codec",
        "fb_throwaway_codec",
        CODEC_MODULE,
        "file_backed.codecs",
        'rot13 = "fb_throwaway_codec:Rot13Codec"',
    )
    return backend, codec


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An environment with both throwaway distributions installed; uninstalls them afterwards."""
    environment = make_environment(tmp_path_factory.mktemp("venv"))
    _pip(environment, "install", "--no-deps", *map(str, _projects(tmp_path_factory.mktemp("projects"))))
    yield environment
    _pip(environment, "uninstall", "--yes", "fb-throwaway-backend", "fb-throwaway-codec")


def test_installed_plugins_are_used_by_name_from_python(installed: Path, tmp_path: Path) -> None:
    result = _run(
        installed,
        """
        import file_backed as fb
        with fb.open_store("throwaway", codec="rot13", prefix="p:") as store:
            pool = fb.FBPool(store, max_items=1)
            handles = [pool.insert(f"secret {i}") for i in range(5)]
            store.finished()
            print([h.get() for h in handles])
            tracked = store.track_path("place")
            handles[0].persist(tracked)
            print(sorted(tracked.keys()) == [handles[0].key])
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str([f"secret {i}" for i in range(5)]), "True"]


def test_installed_plugins_are_used_by_name_from_a_toml_file(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "file_backed.toml").write_text(
        '[file_backed]\nbackend = "throwaway"\ncodec = "rot13"\nmax_items = 2\n\n[file_backed.options]\nprefix = "t:"\n'
    )
    result = _run(
        installed,
        """
        import file_backed as fb
        pool = fb.open_pool()
        with pool.store:
            handles = [pool.insert(word) for word in ("alpha", "beta", "gamma", "delta")]
            pool.store.finished()
            words = " ".join(h.get() for h in handles)
            pool.store.finished()
            print(words, pool.stats.stores)  # each word written once: evicted, then read back
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "alpha beta gamma delta 4"


def test_installed_backend_options_are_checked_against_its_factory(installed: Path, tmp_path: Path) -> None:
    result = _run(
        installed,
        """
        import file_backed as fb
        try:
            fb.load_config({"backend": "throwaway", "options": {"prefx": "x"}})
        except fb.ConfigError as error:
            print(error)
        """,
        tmp_path,
    )
    assert "$.options.prefx: backend 'throwaway' has no option 'prefx'. Did you mean 'prefix'?" in result.stdout


def test_installed_plugins_are_listed_with_their_distributions(installed: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [installed, "-m", "file_backed.cli", "plugins", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = {(row["kind"], row["name"]): row["distribution"] for row in json.loads(result.stdout)}
    assert rows["backends", "throwaway"] == "fb-throwaway-backend"
    assert rows["codecs", "rot13"] == "fb-throwaway-codec"


def test_uninstalled_plugins_are_gone(tmp_path: Path) -> None:
    environment = make_environment(tmp_path / "venv")
    _pip(environment, "install", "--no-deps", *map(str, _projects(tmp_path / "projects")))
    _pip(environment, "uninstall", "--yes", "fb-throwaway-backend", "fb-throwaway-codec")
    result = _run(
        environment,
        """
        import file_backed as fb
        print(sorted(set(fb.available_backends()) & {"throwaway"}), sorted(set(fb.available_codecs()) & {"rot13"}))
        try:
            fb.open_store("throwaway")
        except fb.PluginNotFoundError as error:
            print("not found")
        """,
        tmp_path,
    )
    assert result.stdout.splitlines() == ["[] []", "not found"]
