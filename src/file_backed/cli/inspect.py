"""``file-backed ls`` and ``file-backed verify``: inspect a persisted location.

A location is a local directory or an fsspec URL in the sharded layout of
fs_hardlink and fsspec: the blob of key ``K`` is ``<location>/<K.hex[:2]>/<K.hex>``
(`file_backed.cli.locations`). Both commands only read: they create nothing,
delete nothing (not even partial files a crash left behind) and never follow a
symbolic link named like a blob; entries that are not blobs are skipped.
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from file_backed.blob import MAX_HEADER_SIZE, decode_blob, read_header, signing_key_bytes, verify_payload
from file_backed.cli.locations import BlobFile, LocalLocation, RemoteLocation, open_location, parse_storage_options
from file_backed.cli.progress import progress_bar
from file_backed.derived_keys import KIND_MANIFEST, kind_of
from file_backed.errors import ConfigError, CorruptBlobError, FileBackedError
from file_backed.saved import Manifest, manifest_of

__all__ = ["ls", "verify"]

_STORAGE_OPTIONS = click.option(
    "--storage-options",
    metavar="JSON",
    default=None,
    callback=parse_storage_options,
    envvar="FILE_BACKED_STORAGE_OPTIONS",
    help="fsspec storage options of a URL location, as a JSON object (default: $FILE_BACKED_STORAGE_OPTIONS).",
)


def check_blob(location: LocalLocation | RemoteLocation, blob: BlobFile, signing_key: bytes | None) -> str | None:
    """Why `blob` is corrupt or unreadable (one line, without its key and file),
    or None when its checksum (and MAC, with `signing_key`) match."""
    source = f"blob {blob.key} ({blob.path})"
    try:
        data = memoryview(location.read(blob))
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


def read_manifest_file(location: LocalLocation | RemoteLocation, blob: BlobFile, codec_name: str) -> Manifest | None:
    """The saved-collection manifest in `blob`, or None when it is none or cannot
    be decoded (a damaged or partial generation, a codec not installed)."""
    if kind_of(blob.key) != KIND_MANIFEST:
        return None
    from file_backed.plugins import get_codec

    try:
        codec = get_codec(codec_name)()
        value = decode_blob(codec, location.read(blob), source=str(blob.path), key=blob.key)
    except (FileBackedError, OSError, TypeError, ValueError):
        return None
    return manifest_of(blob.key, value)


@click.command()
@click.argument("location")
@_STORAGE_OPTIONS
def ls(location: str, storage_options: dict[str, Any] | None) -> None:
    """List the blobs persisted at LOCATION (a directory or an fsspec URL): key, size in bytes, codec;
    then the collections saved there (``FBDict.save``): name, values, generation.

    The codec column reads "(unreadable header)" for a blob whose header is
    damaged; a summary line goes to standard error.
    """
    place = open_location(location, storage_options)
    count = total = 0
    collections: dict[str, Manifest] = {}
    for blob in place.blobs():
        try:
            header = read_header(place.read(blob)[:MAX_HEADER_SIZE], source=str(blob.path))
            codec = header.codec + (" (signed)" if header.signed else "")
            manifest = read_manifest_file(place, blob, header.codec)
        except (CorruptBlobError, OSError):
            codec = "(unreadable header)"
            manifest = None
        if manifest is not None:
            codec += f" (manifest of {manifest.name!r})"
            newest = collections.get(manifest.name)
            if newest is None or newest.generation < manifest.generation:
                collections[manifest.name] = manifest
        click.echo(f"{blob.key}\t{blob.size}\t{codec}")
        count += 1
        total += blob.size
    for name in sorted(collections):
        manifest = collections[name]
        click.echo(f"collection\t{name}\t{len(manifest)} values\tgeneration {manifest.generation}")
    saved = f"; {len(collections)} saved collections" if collections else ""
    click.echo(f"{count} blobs, {total} bytes in {place}{saved}", err=True)


@click.command()
@click.argument("location")
@_STORAGE_OPTIONS
@click.option(
    "--signing-key",
    envvar="FILE_BACKED_SIGNING_KEY",
    default=None,
    help="Also check every blob's MAC with this key (default: $FILE_BACKED_SIGNING_KEY); unsigned blobs fail.",
)
def verify(location: str, storage_options: dict[str, Any] | None, signing_key: str | None) -> None:
    """Check the checksum of every blob persisted at LOCATION (a directory or an fsspec URL).

    Prints ``CORRUPT <key> <file>: <reason>`` for each corrupt or unreadable
    blob, then a summary; the progress bar goes to standard error.
    Exit status 1 when any blob is corrupt or unreadable, or when LOCATION
    holds no blob at all (an empty or mistyped location); 0 otherwise.
    """
    try:
        key = signing_key_bytes(signing_key, option="--signing-key")
    except ConfigError as error:
        raise click.BadParameter(str(error), param_hint="--signing-key") from None
    place = open_location(location, storage_options)
    blobs = place.blobs()
    if not blobs:
        click.echo(f"no blobs at {place}: nothing to verify (is it the location that was persisted to?)", err=True)
        raise SystemExit(1)
    corrupt = 0
    console = Console(stderr=True)
    with progress_bar(console, description_width=9, transient=True) as progress:
        task = progress.add_task("verifying", total=len(blobs))
        for blob in blobs:
            problem = check_blob(place, blob, key)
            if problem is not None:
                corrupt += 1
                click.echo(f"CORRUPT {blob.key} {blob.path}: {problem}")
            progress.advance(task)
    click.echo(f"checked {len(blobs)} blobs in {place}: {corrupt} corrupt")
    if corrupt:
        raise SystemExit(1)
