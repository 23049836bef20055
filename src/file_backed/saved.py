"""Saved collections: named sets of persisted blobs, replaced crash-atomically.

A saved collection at a persisted location is a *manifest*: a document blob
(see `file_backed.documents`) listing the collection's names and the keys of
their blobs, under a key derived from the collection's name and a generation
number (`file_backed.derived_keys`). Nothing but the existing hooks is used,
so every backend supports it.

A save of collection ``N`` whose newest generation at the location is ``g``:

1. writes a *pending record* ``N/g+1`` listing the blobs it is about to add,
   and makes it durable;
2. persists every value and makes that durable;
3. writes the manifest ``N/g+1`` and makes it durable — the commit point;
4. deletes, and makes durable, the blobs only the older generations or the
   pending records of ``N`` referenced (never one another collection at the
   location references), then the older manifests and the pending records.

A reader takes the newest manifest that decodes. Killed before step 3 ends,
the location still holds generation ``g`` whole; killed after, ``g+1``. The
next save of ``N`` finishes the cleanup a killed one left: blobs listed by a
pending record without its manifest, and older generations.

Notes on concurrency: saves to one location are serialised within a process;
two processes must not save to the same location at the same time.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from file_backed.derived_keys import (
    KIND_MANIFEST,
    KIND_PENDING,
    MAX_GENERATION,
    collection_key,
    name_id,
    parse_collection_key,
)
from file_backed.documents import as_document, read_document, write_document
from file_backed.errors import BlobNotFoundError, CorruptBlobError, FileBackedError
from file_backed.handle import Fb
from file_backed.store import BackingStore, TrackedPath

__all__ = [
    "CollectionNotFoundError",
    "Manifest",
    "manifest_of",
    "read_manifest",
    "save_collection",
    "saved_collections",
]

_MANIFEST_FORMAT = "file_backed.collection/1"
_PENDING_FORMAT = "file_backed.pending/1"


class CollectionNotFoundError(FileBackedError, KeyError):
    """No saved collection of that name is at the location."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@attrs.frozen
class Manifest:
    """One generation of a saved collection: its names and their blobs' keys, in order."""

    name: str
    generation: int
    names: tuple[str, ...]
    keys: tuple[uuid.UUID, ...]
    key: uuid.UUID  # the manifest's own key

    def __len__(self) -> int:
        return len(self.names)


@attrs.frozen
class _Record:
    """A pending record: the blobs a save was about to add."""

    name: str
    generation: int
    keys: tuple[uuid.UUID, ...]
    key: uuid.UUID


def check_name(name: object) -> str:
    """`name` if it is a valid collection name (a non-empty `str`), else raise."""
    if not isinstance(name, str):
        raise TypeError(f"a saved collection's name is a str, not {type(name).__name__}: {name!r}")
    if not name:
        raise ValueError("a saved collection's name must not be empty")
    return name


# -- reading ---------------------------------------------------------------------------------------


def _parse(key: uuid.UUID, document: dict[str, Any]) -> Manifest | _Record:
    try:
        fmt, name, generation = document["format"], document["name"], document["generation"]
        keys = tuple(uuid.UUID(hex=text) for text in document["blobs"])
        if fmt == _MANIFEST_FORMAT:
            names = tuple(document["names"])
            if len(names) != len(keys) or not all(isinstance(each, str) for each in names):
                raise ValueError("names and blobs do not match")
            return Manifest(name, generation, names, keys, key)
        if fmt == _PENDING_FORMAT:
            return _Record(name, generation, keys, key)
        raise ValueError(f"unknown format {fmt!r}")
    except (KeyError, TypeError, ValueError) as error:
        raise CorruptBlobError(f"blob {key} is not a collection document: {error}") from error


def manifest_of(key: uuid.UUID, value: object) -> Manifest | None:
    """The manifest that the decoded blob `value` of `key` is, or None when it is
    not one (another blob, a pending record, a document its key does not match)."""
    if parse_collection_key(key) is None:
        return None
    try:
        parsed = _parse(key, as_document(value, key))
    except CorruptBlobError:
        return None
    return parsed if isinstance(parsed, Manifest) and _matches(key, parsed) else None


def _matches(key: uuid.UUID, parsed: Manifest | _Record) -> bool:
    described = parse_collection_key(key)
    return described is not None and described[2] == parsed.generation and name_id(parsed.name) == described[1]


def _read(store: BackingStore, tracked: TrackedPath, key: uuid.UUID) -> Manifest | _Record | None:
    """The document under `key`, or None when it is gone or does not decode
    (an incomplete or damaged generation: never the one a reader takes)."""
    try:
        parsed = _parse(key, read_document(store, tracked, key))
    except (BlobNotFoundError, CorruptBlobError):
        return None
    return parsed if _matches(key, parsed) else None  # else not the document its key promises


def _keys_of(tracked: TrackedPath, name: str | None = None) -> list[tuple[int, int, uuid.UUID]]:
    """``(generation, kind, key)`` of the collection documents at `tracked` (of `name` only, if given)."""
    wanted = name_id(name) if name is not None else None
    found = []
    for key in tracked:
        described = parse_collection_key(key)
        if described is not None and (wanted is None or described[1] == wanted):
            found.append((described[2], described[0], key))
    return sorted(found)


def read_manifest(store: BackingStore, tracked: TrackedPath, name: str) -> Manifest:
    """The newest complete generation of collection `name` at `tracked`.

    Raises `CollectionNotFoundError` when there is none."""
    check_name(name)
    for _generation, kind, key in reversed(_keys_of(tracked, name)):
        if kind == KIND_MANIFEST:
            document = _read(store, tracked, key)
            if isinstance(document, Manifest) and document.name == name:
                return document
    raise CollectionNotFoundError(f"no saved collection named {name!r} at {tracked.location}")


def saved_collections(store: BackingStore, tracked: TrackedPath) -> list[Manifest]:
    """The newest complete generation of every collection saved at `tracked`, by name."""
    newest: dict[str, Manifest] = {}
    for _generation, kind, key in reversed(_keys_of(tracked)):
        if kind == KIND_MANIFEST:
            document = _read(store, tracked, key)
            if isinstance(document, Manifest) and document.name not in newest:
                newest[document.name] = document
    return [newest[name] for name in sorted(newest)]


# -- saving ----------------------------------------------------------------------------------------

_location_locks: collections.defaultdict[tuple[int, str], threading.Lock] = collections.defaultdict(threading.Lock)
_location_locks_lock = threading.Lock()


def _location_lock(store: BackingStore, tracked: TrackedPath) -> threading.Lock:
    location = tracked.location
    text = os.fspath(location) if isinstance(location, str | os.PathLike) else repr(location)
    with _location_locks_lock:
        return _location_locks[(id(store), str(text))]


#: A value to save: a handle, or the key of a blob already persisted at the location.
Value = Fb[Any] | uuid.UUID


def save_collection(
    store: BackingStore,
    tracked: TrackedPath,
    name: str,
    entries: Sequence[tuple[str, Value]],
    *,
    max_parallel: int = 8,
) -> Manifest:
    """Make `entries` (name, value) the new generation of collection `name` at
    `tracked`, crash-atomically (see the module's documentation). A value given
    as a key must be persisted at `tracked` already. Returns the new manifest."""
    check_name(name)
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
    names = [entry_name for entry_name, _value in entries]
    for entry_name in names:
        if not isinstance(entry_name, str):
            raise TypeError(f"the names of a saved collection are str; {entry_name!r} is a {type(entry_name).__name__}")
    handles = [value for _name, value in entries if isinstance(value, Fb)]
    for handle in handles:
        if handle.pool.store is not store:
            raise ValueError(f"{handle!r} belongs to another store")
    for _name, value in entries:
        if not isinstance(value, Fb) and value not in tracked:
            raise BlobNotFoundError(f"no blob for key {value} at {tracked.location} (the value of {_name!r})")
    with _location_lock(store, tracked):
        mine = [(generation, kind, key) for generation, kind, key in _keys_of(tracked, name)]
        generation = (mine[-1][0] if mine else 0) + 1
        if generation > MAX_GENERATION:
            raise OverflowError(f"collection {name!r} has reached its last generation ({MAX_GENERATION})")
        adding = sorted({handle.key for handle in handles if handle.key not in tracked})
        if adding:
            write_document(
                store,
                tracked,
                collection_key(KIND_PENDING, name, generation),
                {"format": _PENDING_FORMAT, "name": name, "generation": generation, "blobs": [k.hex for k in adding]},
            )
        persisted = _persist_all(handles, tracked, max_parallel)
        keys = [persisted[id(value)] if isinstance(value, Fb) else value for _name, value in entries]
        manifest_key = collection_key(KIND_MANIFEST, name, generation)
        write_document(
            store,
            tracked,
            manifest_key,
            {
                "format": _MANIFEST_FORMAT,
                "name": name,
                "generation": generation,
                "names": names,
                "blobs": [key.hex for key in keys],
            },
        )
        manifest = Manifest(name, generation, tuple(names), tuple(keys), manifest_key)
        _clean_up(store, tracked, manifest, [key for _generation, _kind, key in mine])
    return manifest


def _persist_all(handles: Sequence[Fb[Any]], tracked: TrackedPath, max_parallel: int) -> dict[int, uuid.UUID]:
    """Persist `handles` at `tracked` and make that durable; their keys by `id`."""
    unique = list({id(handle): handle for handle in handles}.values())
    if max_parallel == 1 or len(unique) <= 1:
        keys = [handle.persist(tracked) for handle in unique]
    else:
        with concurrent.futures.ThreadPoolExecutor(max_parallel, thread_name_prefix="file_backed-save") as executor:
            keys = list(executor.map(lambda handle: handle.persist(tracked), unique))
    if unique:
        tracked._store.fsync(tracked)
    return {id(handle): key for handle, key in zip(unique, keys, strict=True)}


def _clean_up(store: BackingStore, tracked: TrackedPath, manifest: Manifest, older: Iterable[uuid.UUID]) -> None:
    """Delete what only the superseded documents `older` of the collection of
    `manifest` referenced, then those documents, durably."""
    older = list(older)
    pending_key = collection_key(KIND_PENDING, manifest.name, manifest.generation)
    documents = [*older, pending_key] if pending_key in tracked else older
    if not documents:
        return
    candidates: set[uuid.UUID] = set()
    for key in documents:
        document = _read(store, tracked, key)
        if document is not None and document.name == manifest.name:
            candidates.update(document.keys)
    candidates.difference_update(manifest.keys)
    if candidates:
        own = set(documents) | {manifest.key}
        for _generation, _kind, key in _keys_of(tracked):
            if key not in own and candidates:
                other = _read(store, tracked, key)
                if other is not None:
                    candidates.difference_update(other.keys)
    for key in candidates:
        store.delete_persisted(tracked, key)
    if candidates:
        store.fsync(tracked)
    for key in documents:
        store.delete_persisted(tracked, key)
    store.fsync(tracked)
