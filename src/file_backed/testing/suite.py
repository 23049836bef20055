"""`BackendTests`: one test per point of the backend hook contract.

The tests call the backend through a `file_backed.BackingStore`'s plugin
manager (``store.hook.<name>(...)``), exactly as the library does, so a
misspelled hookimpl or a missing hook fails here first.

Fixtures a subclass provides
----------------------------
make_backend (required)
    A `BackendFactory`: ``make_backend(codec)`` returns a new backend plugin
    object using `codec`. Two backends made by one factory must share
    persisted locations (a second process would), so what one persists the
    other can register.
location
    A persisted location the backend accepts and that nothing else uses.
    Default: a new local directory path (as text). URL backends override it.
corrupt_blob
    A `BlobCorrupter` changing a byte of a stored blob in the temporary area,
    or None (the default) when the backend does not expose its bytes; the
    corruption test is then skipped.
"""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from file_backed.codecs.base import Buffer, Codec
from file_backed.errors import BlobNotFoundError, CorruptBlobError
from file_backed.plugins import available_codecs, get_backend, get_codec
from file_backed.pool import FBPool
from file_backed.store import BackingStore

__all__ = ["BackendFactory", "BackendTests", "BlobCorrupter", "backend_by_name"]

#: ``factory(codec)`` → a new backend plugin object that encodes with `codec`.
BackendFactory = Callable[[Codec], object]
#: ``corrupt(backend, key)`` changes a byte of `key`'s blob in `backend`'s temporary area.
BlobCorrupter = Callable[[object, uuid.UUID], None]

_THREADS = 8


def backend_by_name(name: str, **options: Any) -> BackendFactory:
    """A `BackendFactory` for the installed backend `name`, called with `options`."""
    factory = get_backend(name)

    def make(codec: Codec) -> object:
        return factory(codec=codec, **options)

    return make


def _samples() -> dict[str, list[Any]]:
    """Values each bundled codec must round-trip, by codec name."""
    samples: dict[str, list[Any]] = {
        "pickle": [{"a": [1, 2.5, None]}, ("tuple", b"bytes", {1, 2}), "", 0],
        "json": [{"a": [1, 2.5, None, "text"]}, [], "é", 7],
        "bytes": [b"", b"\x00\xff" * 1000, bytearray(b"mutable")],
        "msgpack": [{"a": [1, 2.5, None, b"raw"]}, [], "text"],
    }
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is optional
        return samples
    samples["numpy"] = [np.arange(12, dtype=np.int32).reshape(3, 4), np.zeros(0), np.asfortranarray(np.eye(3))]
    samples["pickle"].append(np.arange(1000, dtype=np.float64))
    return samples


def _equal(left: Any, right: Any) -> bool:
    """Equality that also compares arrays (element-wise, with dtype and shape)."""
    if hasattr(left, "dtype") and hasattr(right, "dtype"):
        return bool(left.dtype == right.dtype and left.shape == right.shape and (left == right).all())
    if isinstance(left, bytes | bytearray) and isinstance(right, bytes | bytearray):
        return bytes(left) == bytes(right)
    return bool(left == right)


class _EncodingFailed(Exception):
    """Raised by `_FailingCodec.encode`."""


class _FailingCodec(Codec):
    """A codec whose encoding always fails, to check that a failed store leaves nothing."""

    name: ClassVar[str] = "failing"

    def encode(self, obj: Any) -> Sequence[Buffer]:
        raise _EncodingFailed(f"cannot encode {obj!r}")

    def decode(self, data: memoryview) -> Any:
        raise ValueError("the failing codec never wrote anything")


def _pickle() -> Codec:
    return get_codec("pickle")()


class BackendTests:
    """The conformance suite; subclass it and provide the ``make_backend`` fixture.

    The class name does not start with ``Test``, so pytest collects only the
    subclasses.
    """

    # -- fixtures a subclass may override ---------------------------------------------------

    @pytest.fixture
    def make_backend(self) -> BackendFactory:
        """Override: a factory of backend plugin objects (see the module docstring)."""
        pytest.fail(f"{type(self).__name__} must override the make_backend fixture")

    @pytest.fixture
    def location(self, tmp_path: Path) -> object:
        """Override for backends whose persisted locations are not local directories."""
        return str(tmp_path / "persisted")

    @pytest.fixture
    def corrupt_blob(self) -> BlobCorrupter | None:
        """Override where the backend's blob bytes can be reached by a test."""
        return None

    # -- fixtures of the suite ----------------------------------------------------------------

    @pytest.fixture
    def open_backend(self, make_backend: BackendFactory) -> Iterator[Callable[[Codec], BackingStore]]:
        """Opens stores on new backends and closes them after the test."""
        stores: list[BackingStore] = []

        def open_(codec: Codec) -> BackingStore:
            store = BackingStore(make_backend(codec), workers=2)
            stores.append(store)
            return store

        yield open_
        for store in reversed(stores):
            store.close()

    @pytest.fixture
    def store(self, open_backend: Callable[[Codec], BackingStore]) -> BackingStore:
        """A store on a new backend using the pickle codec."""
        return open_backend(_pickle())

    @pytest.fixture
    def other_store(self, open_backend: Callable[[Codec], BackingStore]) -> BackingStore:
        """A second, independent store on a new backend of the same kind."""
        return open_backend(_pickle())

    @pytest.fixture
    def path(self, store: BackingStore, location: object) -> Any:
        """`location` prepared by `store`'s backend."""
        return store.hook.prepare_path(location=location)

    @pytest.fixture
    def other_path(self, other_store: BackingStore, location: object) -> Any:
        """`location` prepared by `other_store`'s backend."""
        return other_store.hook.prepare_path(location=location)

    # -- store and load -------------------------------------------------------------------------

    def test_load_returns_what_store_stored(self, store: BackingStore) -> None:
        key = uuid.uuid4()
        store.hook.store(key=key, data={"answer": [4, 2], "text": "é"})
        assert store.hook.load(key=key) == {"answer": [4, 2], "text": "é"}

    def test_store_returns_bytes_written_or_none(self, store: BackingStore) -> None:
        written = store.hook.store(key=uuid.uuid4(), data=b"x" * 1000)
        assert written is None or (isinstance(written, int) and written >= 1000)

    @pytest.mark.parametrize("codec_name", ["pickle", "json", "bytes", "numpy", "msgpack"])
    def test_every_installed_codec_round_trips(
        self, open_backend: Callable[[Codec], BackingStore], codec_name: str
    ) -> None:
        if codec_name not in available_codecs():
            pytest.skip(f"codec {codec_name!r} is not installed")
        store = open_backend(get_codec(codec_name)())
        for value in _samples()[codec_name]:
            key = uuid.uuid4()
            store.hook.store(key=key, data=value)
            assert _equal(store.hook.load(key=key), value)

    @settings(  # each subclass runs it; every example uses new keys
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
    )
    @given(
        value=st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
            lambda children: st.lists(children) | st.dictionaries(st.text(), children),
            max_leaves=20,
        )
    )
    def test_any_picklable_value_round_trips(self, store: BackingStore, value: Any) -> None:
        key = uuid.uuid4()
        store.hook.store(key=key, data=value)
        assert store.hook.load(key=key) == value

    def test_stored_blob_does_not_change_when_the_value_does(self, store: BackingStore) -> None:
        value = [1, 2, 3]
        key = uuid.uuid4()
        store.hook.store(key=key, data=value)
        value.append(4)
        assert store.hook.load(key=key) == [1, 2, 3]

    def test_load_of_unknown_key_raises_blob_not_found(self, store: BackingStore) -> None:
        with pytest.raises(BlobNotFoundError):
            store.hook.load(key=uuid.uuid4())

    # -- atomic store -------------------------------------------------------------------------------

    def test_failed_encoding_propagates_and_leaves_no_blob(self, open_backend: Callable[[Codec], BackingStore]) -> None:
        store = open_backend(_FailingCodec())
        key = uuid.uuid4()
        with pytest.raises(_EncodingFailed):
            store.hook.store(key=key, data="anything")
        with pytest.raises(BlobNotFoundError):
            store.hook.load(key=key)

    def test_concurrent_reader_sees_no_blob_or_the_whole_blob(self, store: BackingStore) -> None:
        key = uuid.uuid4()
        value = bytes(range(256)) * 16_384  # 4 MiB: long enough to be read mid-write if not atomic
        written = threading.Event()
        seen: list[str] = []

        def read_until_written() -> None:
            while True:
                done = written.is_set()
                try:
                    loaded = store.hook.load(key=key)
                except BlobNotFoundError:
                    seen.append("absent")
                else:
                    assert loaded == value, "a load during the store returned a partial or wrong value"
                    seen.append("whole")
                    return
                if done:
                    raise AssertionError("the blob never became visible after store returned")

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            reader = pool.submit(read_until_written)
            store.hook.store(key=key, data=value)
            written.set()
            reader.result(timeout=60)
        assert seen[-1] == "whole"

    # -- delete -----------------------------------------------------------------------------------------

    def test_delete_removes_the_blob(self, store: BackingStore) -> None:
        key = uuid.uuid4()
        store.hook.store(key=key, data="gone soon")
        store.hook.delete(key=key)
        with pytest.raises(BlobNotFoundError):
            store.hook.load(key=key)

    def test_delete_of_a_deleted_blob_is_not_an_error(self, store: BackingStore) -> None:
        key = uuid.uuid4()
        store.hook.store(key=key, data="twice")
        store.hook.delete(key=key)
        store.hook.delete(key=key)

    def test_delete_of_an_unknown_key_is_not_an_error(self, store: BackingStore) -> None:
        store.hook.delete(key=uuid.uuid4())

    def test_delete_leaves_other_blobs(self, store: BackingStore) -> None:
        kept, dropped = uuid.uuid4(), uuid.uuid4()
        store.hook.store(key=kept, data="kept")
        store.hook.store(key=dropped, data="dropped")
        store.hook.delete(key=dropped)
        assert store.hook.load(key=kept) == "kept"

    # -- persisted locations -------------------------------------------------------------------------------

    def test_a_new_location_lists_no_keys(self, path: Any, store: BackingStore) -> None:
        assert list(store.hook.sanitize_path(path=path)) == []

    def test_prepare_path_twice_gives_the_same_listing(self, store: BackingStore, location: object, path: Any) -> None:
        key = uuid.uuid4()
        store.hook.store(key=key, data="persisted")
        store.hook.persist(dest_path=path, key=key)
        again = store.hook.prepare_path(location=location)
        assert set(store.hook.sanitize_path(path=again)) == {key}

    def test_persist_lists_the_key_at_the_location(self, store: BackingStore, path: Any) -> None:
        keys = [uuid.uuid4() for _ in range(20)]
        for key in keys:
            store.hook.store(key=key, data=str(key))
            store.hook.persist(dest_path=path, key=key)
        listed = list(store.hook.sanitize_path(path=path))
        assert all(isinstance(key, uuid.UUID) for key in listed)
        assert sorted(listed) == sorted(keys)

    def test_persist_twice_is_idempotent(self, store: BackingStore, path: Any) -> None:
        key = uuid.uuid4()
        store.hook.store(key=key, data="once")
        store.hook.persist(dest_path=path, key=key)
        store.hook.persist(dest_path=path, key=key)
        assert list(store.hook.sanitize_path(path=path)) == [key]

    def test_persist_of_unknown_key_raises_blob_not_found(self, store: BackingStore, path: Any) -> None:
        with pytest.raises(BlobNotFoundError):
            store.hook.persist(dest_path=path, key=uuid.uuid4())

    def test_persisted_blob_survives_delete_from_the_temporary_area(
        self, store: BackingStore, other_store: BackingStore, path: Any, other_path: Any
    ) -> None:
        key = uuid.uuid4()
        store.hook.store(key=key, data={"survives": True})
        store.hook.persist(dest_path=path, key=key)
        store.hook.delete(key=key)
        other_store.hook.register(src_path=other_path, key=key)
        assert other_store.hook.load(key=key) == {"survives": True}

    def test_register_makes_a_persisted_blob_loadable_by_another_backend(
        self, store: BackingStore, other_store: BackingStore, path: Any, other_path: Any
    ) -> None:
        key = uuid.uuid4()
        store.hook.store(key=key, data=["shared", 1])
        store.hook.persist(dest_path=path, key=key)
        assert key in set(other_store.hook.sanitize_path(path=other_path))
        other_store.hook.register(src_path=other_path, key=key)
        assert other_store.hook.load(key=key) == ["shared", 1]

    def test_register_of_unknown_key_raises_blob_not_found(self, store: BackingStore, path: Any) -> None:
        with pytest.raises(BlobNotFoundError):
            store.hook.register(src_path=path, key=uuid.uuid4())

    def test_delete_of_a_registered_blob_keeps_the_persisted_copy(
        self, store: BackingStore, other_store: BackingStore, path: Any, other_path: Any
    ) -> None:
        key = uuid.uuid4()
        store.hook.store(key=key, data="keep me")
        store.hook.persist(dest_path=path, key=key)
        other_store.hook.register(src_path=other_path, key=key)
        other_store.hook.delete(key=key)
        assert list(store.hook.sanitize_path(path=path)) == [key]
        store.hook.delete(key=key)
        other_store.hook.register(src_path=other_path, key=key)
        assert other_store.hook.load(key=key) == "keep me"

    def test_delete_persisted_removes_only_the_persisted_copy(self, store: BackingStore, path: Any) -> None:
        key = uuid.uuid4()
        store.hook.store(key=key, data="still here")
        store.hook.persist(dest_path=path, key=key)
        store.hook.delete_persisted(path=path, key=key)
        assert list(store.hook.sanitize_path(path=path)) == []
        assert store.hook.load(key=key) == "still here"

    def test_delete_persisted_keeps_a_blob_registered_from_there(
        self, store: BackingStore, other_store: BackingStore, path: Any, other_path: Any
    ) -> None:
        key = uuid.uuid4()
        store.hook.store(key=key, data="registered")
        store.hook.persist(dest_path=path, key=key)
        other_store.hook.register(src_path=other_path, key=key)
        store.hook.delete_persisted(path=path, key=key)
        assert other_store.hook.load(key=key) == "registered"

    def test_delete_persisted_of_an_absent_key_is_not_an_error(self, store: BackingStore, path: Any) -> None:
        store.hook.delete_persisted(path=path, key=uuid.uuid4())

    def test_sync_persisted_after_persist_and_delete_succeeds(self, store: BackingStore, path: Any) -> None:
        kept, deleted = uuid.uuid4(), uuid.uuid4()
        for key in (kept, deleted):
            store.hook.store(key=key, data=str(key))
            store.hook.persist(dest_path=path, key=key)
        store.hook.delete_persisted(path=path, key=deleted)
        store.hook.sync_persisted(path=path)
        assert list(store.hook.sanitize_path(path=path)) == [kept]

    # -- corruption -------------------------------------------------------------------------------------------

    def test_changed_bytes_raise_corrupt_blob_error(
        self, store: BackingStore, corrupt_blob: BlobCorrupter | None
    ) -> None:
        if corrupt_blob is None:
            pytest.skip("this backend's subclass provides no corrupt_blob fixture")
        key = uuid.uuid4()
        store.hook.store(key=key, data=list(range(100)))
        corrupt_blob(store.backend, key)
        with pytest.raises(CorruptBlobError):
            store.hook.load(key=key)

    # -- concurrency ---------------------------------------------------------------------------------------------

    def test_threads_store_load_and_delete_different_keys(self, store: BackingStore) -> None:
        def work(thread: int) -> None:
            keys = [uuid.uuid4() for _ in range(25)]
            for index, key in enumerate(keys):
                store.hook.store(key=key, data=(thread, index))
            for index, key in enumerate(keys):
                assert store.hook.load(key=key) == (thread, index)
                store.hook.delete(key=key)
            for key in keys:
                with pytest.raises(BlobNotFoundError):
                    store.hook.load(key=key)

        with concurrent.futures.ThreadPoolExecutor(_THREADS) as pool:
            for future in [pool.submit(work, thread) for thread in range(_THREADS)]:
                future.result(timeout=120)

    def test_threads_persist_to_one_location(self, store: BackingStore, path: Any) -> None:
        keys = [uuid.uuid4() for _ in range(_THREADS * 10)]

        def work(key: uuid.UUID) -> None:
            store.hook.store(key=key, data=key.hex)
            store.hook.persist(dest_path=path, key=key)

        with concurrent.futures.ThreadPoolExecutor(_THREADS) as pool:
            for future in [pool.submit(work, key) for key in keys]:
                future.result(timeout=120)
        assert sorted(store.hook.sanitize_path(path=path)) == sorted(keys)

    # -- through the library -----------------------------------------------------------------------------------------

    def test_pool_evicts_loads_persists_and_registers(
        self, store: BackingStore, other_store: BackingStore, location: object
    ) -> None:
        pool: FBPool[list[int]] = FBPool(store, max_items=2)
        handles = [pool.insert([index] * 10) for index in range(10)]
        assert [handle.get() for handle in handles] == [[index] * 10 for index in range(10)]
        tracked = store.track_path(location)
        for handle in handles:
            handle.persist(tracked)
        store.fsync(tracked)
        store.finished()
        other_pool: FBPool[list[int]] = FBPool(other_store, max_items=2)
        other_tracked = other_store.track_path(location)
        registered = [other_pool.register(other_tracked, handle.key) for handle in handles]
        assert [handle.get() for handle in registered if handle is not None] == [[i] * 10 for i in range(10)]
