"""Persisted locations as ``file-backed ls`` and ``verify`` read them: a local
directory or an fsspec URL (``s3://bucket/prefix``, ``memory://name``,
``file:///…``), both in the sharded layout of `file_backed.layout`.

Reading only: nothing is created or deleted, symbolic links named like blobs
are not followed (local directories), and entries that are not blobs are skipped.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import click

from file_backed.layout import key_of_blob_name

__all__ = ["BlobFile", "LocalLocation", "RemoteLocation", "is_url", "open_location", "parse_storage_options"]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


@attrs.frozen
class BlobFile:
    """A file of a location named like a blob: its key, where it is (a local path
    or a URL path) and its size in bytes."""

    key: uuid.UUID
    path: str
    size: int


@attrs.frozen
class LocalLocation:
    """A local directory."""

    directory: Path

    def __str__(self) -> str:
        return str(self.directory)

    def blobs(self) -> list[BlobFile]:
        """The regular files named like blobs, sorted by key; symbolic links,
        files in the wrong shard, temporary files and foreign entries are skipped."""
        found: list[BlobFile] = []
        for shard in sorted(os.listdir(self.directory)):
            shard_path = self.directory / shard
            if len(shard) != 2 or not shard_path.is_dir() or shard_path.is_symlink():
                continue
            with os.scandir(shard_path) as entries:
                for entry in entries:
                    key = key_of_blob_name(shard, entry.name)
                    if key is not None and entry.is_file(follow_symlinks=False):
                        found.append(BlobFile(key, entry.path, entry.stat(follow_symlinks=False).st_size))
        return sorted(found, key=lambda blob: blob.key.hex)

    def read(self, blob: BlobFile) -> bytes:
        """The bytes of `blob` (never through a symbolic link)."""
        fd = os.open(blob.path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
        with open(fd, "rb") as file:
            return file.read()


@attrs.frozen
class RemoteLocation:
    """A location on an fsspec filesystem."""

    url: str
    filesystem: Any = attrs.field(repr=False)
    root: str

    def __str__(self) -> str:
        return self.url

    def blobs(self) -> list[BlobFile]:
        """The files named like blobs in their shard, sorted by key (one recursive listing)."""
        found: list[BlobFile] = []
        prefix = self.root.rstrip("/") + "/"
        for path, info in self.filesystem.find(self.root, detail=True).items():
            shard, _, name = path.removeprefix(prefix).partition("/")
            key = key_of_blob_name(shard, name)
            if key is not None and info.get("type", "file") == "file":
                found.append(BlobFile(key, path, int(info.get("size") or 0)))
        return sorted(found, key=lambda blob: blob.key.hex)

    def read(self, blob: BlobFile) -> bytes:
        """The bytes of `blob`."""
        data: bytes = self.filesystem.cat_file(blob.path)
        return data


def parse_storage_options(_ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, Any] | None:
    """A click callback: the JSON object of fsspec storage options given as `value`
    (``'{"anon": true}'``), or None; a usage error when it is not a JSON object."""
    if value is None:
        return None
    try:
        options = json.loads(value)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON: {error}", param=param) from None
    if not isinstance(options, dict):
        raise click.BadParameter(f'expected a JSON object such as {{"anon": true}}, got {value}', param=param)
    return options


def is_url(text: str) -> bool:
    """Whether `text` names a location by URL (``protocol://…``) rather than a local path."""
    protocol, separator, _ = text.partition("://")
    return bool(separator) and protocol.replace("+", "").replace("-", "").isalnum()


def open_location(
    text: str, storage_options: Mapping[str, Any] | None = None, *, param_hint: str = "LOCATION"
) -> LocalLocation | RemoteLocation:
    """The location `text` names. Raises `click.BadParameter` (a usage error)
    when it does not exist, is not a directory, or names an unknown protocol."""
    if not is_url(text) or text.startswith("file://"):
        directory = Path(text.removeprefix("file://")).expanduser()
        if not directory.exists():
            raise click.BadParameter(f"{text}: no such directory", param_hint=param_hint)
        if not directory.is_dir():
            raise click.BadParameter(f"{text}: not a directory", param_hint=param_hint)
        return LocalLocation(directory.absolute())
    import fsspec.core

    try:
        filesystem, root = fsspec.core.url_to_fs(text, **(storage_options or {}))
    except (ValueError, ImportError) as error:
        raise click.BadParameter(f"{text}: {error}", param_hint=param_hint) from None
    if not filesystem.exists(root):
        raise click.BadParameter(f"{text}: nothing is there", param_hint=param_hint)
    if not filesystem.isdir(root):
        raise click.BadParameter(f"{text}: not a directory", param_hint=param_hint)
    return RemoteLocation(text, filesystem, root)
