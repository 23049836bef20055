"""The ``sqlite`` backend: every blob is a row of an SQLite database file.

An example of a third-party backend (the embedded-database analogue of the
Rust crate's redb store). The temporary area is one database file, and every
persisted location is another database file; both hold one table::

    CREATE TABLE blobs (key BLOB PRIMARY KEY, data BLOB NOT NULL)

where ``key`` is the 16 bytes of the `uuid.UUID` and ``data`` a blob in the
checksummed format of `file_backed.blob`. SQLite transactions make `store`,
`persist` and `register` atomic: persist and register copy one row from one
database to the other (``ATTACH`` + ``INSERT … SELECT``) inside a transaction.

Every hook opens its own connection, so the backend is safe to call from any
number of threads; the databases use write-ahead logging, and writers wait for
each other up to `BUSY_TIMEOUT` seconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from file_backed import BlobNotFoundError, Codec, hookimpl
from file_backed.blob import decode_blob, encode_blob
from file_backed.buffers import copy_of

__all__ = ["BUSY_TIMEOUT", "SqliteBackend"]

#: Seconds a connection waits for another writer before failing.
BUSY_TIMEOUT = 60.0

_SCHEMA = "CREATE TABLE IF NOT EXISTS blobs (key BLOB PRIMARY KEY, data BLOB NOT NULL)"


@contextlib.contextmanager
def _connect(database: Path, *, durable: bool) -> Iterator[sqlite3.Connection]:
    """A connection in autocommit mode (transactions are explicit), closed on exit.

    `durable` connections commit with ``synchronous=FULL``: a committed
    transaction survives a power loss. Others use ``NORMAL``, which in WAL mode
    never corrupts the database but may lose the last commits on power loss.
    """
    connection = sqlite3.connect(database, timeout=BUSY_TIMEOUT, isolation_level=None)
    try:
        connection.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        yield connection
    finally:
        connection.close()


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back when the block raises."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _create(database: Path) -> Path:
    """Create `database` (and its directory) with the blobs table, in WAL mode."""
    database = database.expanduser().absolute()
    if database.is_dir():
        raise IsADirectoryError(f"an sqlite location is a database file, not a directory: {database}")
    database.parent.mkdir(parents=True, exist_ok=True)
    with _connect(database, durable=True) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(_SCHEMA)
    return database


class SqliteBackend:
    """Backend plugin keeping blobs in SQLite databases.

    Options
    -------
    database:
        The database file of the temporary area. Default: a file in a new
        temporary directory, removed by `shutdown` (when the store closes). A
        given file is created if needed and never removed.

    Persisted locations are database files (`str` or `os.PathLike`), created
    with their directory when missing.
    """

    def __init__(self, *, codec: Codec, database: str | os.PathLike[str] | None = None) -> None:
        self.codec = codec
        self._owned_directory: Path | None = None
        if database is None:
            self._owned_directory = Path(tempfile.mkdtemp(prefix="file_backed-sqlite-"))
            database = self._owned_directory / "temporary.sqlite"
        self.database = _create(Path(database))

    def __repr__(self) -> str:
        return f"SqliteBackend({str(self.database)!r}, codec={self.codec.name!r})"

    # -- temporary area ---------------------------------------------------------------------------

    @hookimpl
    def store(self, key: uuid.UUID, data: Any) -> int:
        buffers, size = encode_blob(self.codec, data, key=key)
        blob = b"".join(buffers)
        with _connect(self.database, durable=False) as connection, _transaction(connection):
            connection.execute("INSERT INTO blobs (key, data) VALUES (?, ?)", (key.bytes, blob))
        return size

    @hookimpl
    def load(self, key: uuid.UUID) -> Any:
        with _connect(self.database, durable=False) as connection:
            row = connection.execute("SELECT data FROM blobs WHERE key = ?", (key.bytes,)).fetchone()
        if row is None:
            raise BlobNotFoundError(f"no blob for key {key} in {self.database}")
        return decode_blob(self.codec, copy_of(row[0]), source=f"blob {key} ({self.database})", key=key)

    @hookimpl
    def delete(self, key: uuid.UUID) -> None:
        with _connect(self.database, durable=False) as connection:
            connection.execute("DELETE FROM blobs WHERE key = ?", (key.bytes,))

    # -- persisted locations ------------------------------------------------------------------------

    @hookimpl
    def prepare_path(self, location: object) -> Path:
        if not isinstance(location, str | os.PathLike):
            raise TypeError(f"an sqlite location is a database file path, not {type(location).__name__}")
        return _create(Path(os.fspath(location)))

    @hookimpl
    def sanitize_path(self, path: Path) -> list[uuid.UUID]:
        """Every key in the location's table. SQLite itself rolls back what a crash
        left half-written when the database is next opened; rows whose key is not
        16 bytes are not this library's and are left alone."""
        with _connect(path, durable=True) as connection:
            rows = connection.execute("SELECT key FROM blobs WHERE length(key) = 16").fetchall()
        return [uuid.UUID(bytes=bytes(row[0])) for row in rows]

    @hookimpl
    def persist(self, dest_path: Path, key: uuid.UUID) -> None:
        self._copy(self.database, dest_path, key, durable=True)

    @hookimpl
    def register(self, src_path: Path, key: uuid.UUID) -> None:
        self._copy(src_path, self.database, key, durable=False)

    @hookimpl
    def delete_persisted(self, path: Path, key: uuid.UUID) -> None:
        with _connect(path, durable=True) as connection:
            connection.execute("DELETE FROM blobs WHERE key = ?", (key.bytes,))

    @hookimpl
    def sync_persisted(self, path: Path) -> None:
        """Nothing to do: every write to a persisted location commits with
        ``synchronous=FULL``, so it is durable when `persist` or
        `delete_persisted` returns."""

    @hookimpl
    def shutdown(self) -> None:
        if self._owned_directory is not None:
            shutil.rmtree(self._owned_directory, ignore_errors=True)
            self._owned_directory = None

    # -- helpers --------------------------------------------------------------------------------------

    @staticmethod
    def _copy(source: Path, target: Path, key: uuid.UUID, *, durable: bool) -> None:
        """Copy the row of `key` from the database `source` into `target` in one
        transaction of `target`; a row already there is kept (blobs of one key are
        equal). Raises `BlobNotFoundError` when `source` has no row for `key`."""
        with _connect(target, durable=durable) as connection:
            connection.execute("ATTACH DATABASE ? AS source", (str(source),))
            with _transaction(connection):
                found = connection.execute("SELECT 1 FROM source.blobs WHERE key = ?", (key.bytes,)).fetchone()
                if found is None:
                    raise BlobNotFoundError(f"no blob for key {key} in {source}")
                connection.execute(
                    "INSERT OR IGNORE INTO main.blobs (key, data) SELECT key, data FROM source.blobs WHERE key = ?",
                    (key.bytes,),
                )
