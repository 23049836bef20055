"""``file-backed ls`` and ``file-backed verify``: inspect a persisted location.

A location is a local directory of the fs_hardlink layout: the blob of key
``K`` is ``<dir>/<K.hex[:2]>/<K.hex>``. Both commands only read: they create
nothing, delete nothing (not even partial files a crash left behind) and never
follow a symbolic link named like a blob; entries that are not blobs are
skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import click
from rich.console import Console

from file_backed.blob import MAX_HEADER_SIZE, read_header, signing_key_bytes, verify_payload
from file_backed.cli.progress import progress_bar
from file_backed.errors import ConfigError, CorruptBlobError
from file_backed.layout import key_of_blob_name

__all__ = ["ls", "verify"]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

_LOCATION = click.Path(exists=True, file_okay=False, dir_okay=True, path_type=Path)


@attrs.frozen
class BlobFile:
    """A file of a location named like a blob."""

    key: uuid.UUID
    path: Path
    size: int


def blob_files(location: Path) -> Iterator[BlobFile]:
    """The regular files of `location` named like blobs, sorted by key.

    Symbolic links, files in the wrong shard, temporary files and foreign
    entries are skipped.
    """
    found: list[BlobFile] = []
    for shard in sorted(os.listdir(location)):
        shard_path = location / shard
        if len(shard) != 2 or not shard_path.is_dir() or shard_path.is_symlink():
            continue
        with os.scandir(shard_path) as entries:
            for entry in entries:
                key = key_of_blob_name(shard, entry.name)
                if key is not None and entry.is_file(follow_symlinks=False):
                    size = entry.stat(follow_symlinks=False).st_size
                    found.append(BlobFile(key, Path(entry.path), size))
    yield from sorted(found, key=lambda blob: blob.key.hex)


def _read(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
    with open(fd, "rb") as file:
        return file.read()


def check_blob(blob: BlobFile, signing_key: bytes | None) -> str | None:
    """Why `blob` is corrupt or unreadable (one line, without its key and file),
    or None when its checksum (and MAC, with `signing_key`) match."""
    source = f"blob {blob.key} ({blob.path})"
    try:
        data = memoryview(_read(blob.path))
        header = read_header(data[:MAX_HEADER_SIZE], source=source)
        payload = data[header.size :]
        if payload.nbytes > header.payload_length:
            raise CorruptBlobError(f"{source}: {payload.nbytes - header.payload_length} unexpected bytes after it")
        verify_payload(header, payload, source=source, key=blob.key, signing_key=signing_key)
    except CorruptBlobError as error:
        return str(error).removeprefix(f"{source}: ")
    except OSError as error:
        return f"unreadable: {error}"
    return None


@click.command()
@click.argument("location", type=_LOCATION)
def ls(location: Path) -> None:
    """List the blobs persisted at LOCATION: key, size in bytes, codec.

    The codec column reads "(unreadable header)" for a blob whose header is
    damaged; a summary line goes to standard error.
    """
    count = total = 0
    for blob in blob_files(location):
        try:
            header = read_header(_read(blob.path)[:MAX_HEADER_SIZE], source=str(blob.path))
            codec = header.codec + (" (signed)" if header.signed else "")
        except (CorruptBlobError, OSError):
            codec = "(unreadable header)"
        click.echo(f"{blob.key}\t{blob.size}\t{codec}")
        count += 1
        total += blob.size
    click.echo(f"{count} blobs, {total} bytes in {location}", err=True)


@click.command()
@click.argument("location", type=_LOCATION)
@click.option(
    "--signing-key",
    envvar="FILE_BACKED_SIGNING_KEY",
    default=None,
    help="Also check every blob's MAC with this key (default: $FILE_BACKED_SIGNING_KEY); unsigned blobs fail.",
)
def verify(location: Path, signing_key: str | None) -> None:
    """Check the checksum of every blob persisted at LOCATION.

    Prints ``CORRUPT <key> <file>: <reason>`` for each corrupt or unreadable
    blob, then a summary; the progress bar goes to standard error.
    Exit status 1 when any blob is corrupt or unreadable, 0 otherwise.
    """
    try:
        key = signing_key_bytes(signing_key, option="--signing-key")
    except ConfigError as error:
        raise click.BadParameter(str(error), param_hint="--signing-key") from None
    blobs = list(blob_files(location.absolute()))
    corrupt = 0
    console = Console(stderr=True)
    with progress_bar(console, description_width=9, transient=True) as progress:
        task = progress.add_task("verifying", total=len(blobs))
        for blob in blobs:
            problem = check_blob(blob, key)
            if problem is not None:
                corrupt += 1
                click.echo(f"CORRUPT {blob.key} {blob.path}: {problem}")
            progress.advance(task)
    click.echo(f"checked {len(blobs)} blobs in {location}: {corrupt} corrupt")
    if corrupt:
        raise SystemExit(1)
