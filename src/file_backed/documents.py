"""Small JSON documents (manifests, records) stored as blobs through any codec.

The library's own records go through the store's `store` and `load` hooks like
any item, so they work on every backend. The backend encodes them with its
codec, whichever it is: a document is handed over as a JSON-ready mapping
(``pickle``, ``json``, ``msgpack``), else as the UTF-8 bytes of its JSON text
(``bytes``), else as those bytes in a numpy ``uint8`` array (``numpy``).
Reading accepts each of these forms.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from file_backed.errors import CorruptBlobError, EncodeError
from file_backed.store import BackingStore, TrackedPath

__all__ = ["as_document", "read_document", "write_document"]


def _forms(document: Mapping[str, Any]) -> Iterator[object]:
    yield dict(document)
    text = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    yield text
    try:
        import numpy as np
    except ImportError:
        return
    yield np.frombuffer(text, dtype=np.uint8)


def write_document(store: BackingStore, tracked: TrackedPath, key: uuid.UUID, document: Mapping[str, Any]) -> None:
    """Persist `document` at `tracked` under `key` (atomically, as every blob) and
    make it durable. The copy in the temporary area goes once this returns."""
    failures: list[EncodeError] = []
    for form in _forms(document):
        try:
            token, _written = store.store_blob(key, form)
        except EncodeError as error:
            failures.append(error)
            continue
        store.persist_blob(token, tracked)
        store.fsync(tracked)
        return
    raise EncodeError(
        f"the store's codec encodes none of the forms of a document (mapping, JSON bytes, uint8 array): {failures}"
    )


def read_document(store: BackingStore, tracked: TrackedPath, key: uuid.UUID) -> dict[str, Any]:
    """The document persisted at `tracked` under `key`.

    Raises `BlobNotFoundError` when it is not there and `CorruptBlobError` when
    its blob cannot be decoded or holds no document.
    """
    token = store.register_blob(tracked, key)
    if token is None:
        from file_backed.errors import BlobNotFoundError

        raise BlobNotFoundError(f"no blob for key {key} at {tracked.location}")
    value = store.load_blob(token)
    return as_document(value, key)


def as_document(value: object, key: uuid.UUID) -> dict[str, Any]:
    """The document that a decoded blob `value` holds, in any of the forms
    `write_document` stores; `CorruptBlobError` when it holds none."""
    if not isinstance(value, Mapping):
        try:
            raw = bytes(value.tobytes() if hasattr(value, "tobytes") else memoryview(value))  # type: ignore[arg-type]
            value = json.loads(raw)
        except (TypeError, ValueError) as error:
            raise CorruptBlobError(f"blob {key} holds no document ({type(value).__name__}): {error}") from error
    if not isinstance(value, Mapping) or not all(isinstance(name, str) for name in value):
        raise CorruptBlobError(f"blob {key} holds no document ({type(value).__name__})")
    return dict(value)
