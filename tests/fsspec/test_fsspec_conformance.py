"""The conformance suite (`file_backed.testing`) against the fsspec backend with its
temporary area and persisted locations on the loopback S3 server and on
``memory://`` (``file://`` runs in tests/test_conformance.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import pytest

import file_backed as fb
from file_backed.testing import BackendFactory, BackendTests, BlobCorrupter


def _flip_last_byte(fs: Any, path: str) -> None:
    blob = bytearray(fs.cat_file(path))
    blob[-1] ^= 0xFF
    fs.pipe_file(path, bytes(blob))


def _corrupter(fs: Any) -> BlobCorrupter:
    def corrupt(backend: object, key: uuid.UUID) -> None:
        _flip_last_byte(fs, backend.root.blob(key))  # type: ignore[attr-defined]

    return corrupt


class TestFsspecOnS3(BackendTests):
    @pytest.fixture
    def make_backend(self, bucket: str, s3_options: dict[str, Any]) -> BackendFactory:
        counter = iter(range(1_000))
        factory = fb.available_backends()["fsspec"]
        return lambda codec: factory(
            codec=codec, url=f"s3://{bucket}/temporary-{next(counter)}", storage_options=s3_options
        )

    @pytest.fixture
    def location(self, bucket: str) -> object:
        return f"s3://{bucket}/persisted"

    @pytest.fixture
    def corrupt_blob(self, s3: Any) -> BlobCorrupter:
        return _corrupter(s3)


class TestFsspecOnMemory(BackendTests):
    @pytest.fixture
    def base(self) -> Iterator[str]:
        base = f"memory://fb-{uuid.uuid4().hex[:12]}"
        yield base
        memory = fsspec.filesystem("memory")
        if memory.exists(base):
            memory.rm(base, recursive=True)

    @pytest.fixture
    def make_backend(self, base: str) -> BackendFactory:
        counter = iter(range(1_000))
        factory = fb.available_backends()["fsspec"]
        return lambda codec: factory(codec=codec, url=f"{base}/temporary-{next(counter)}")

    @pytest.fixture
    def location(self, base: str) -> object:
        return f"{base}/persisted"

    @pytest.fixture
    def corrupt_blob(self) -> BlobCorrupter:
        return _corrupter(fsspec.filesystem("memory"))
