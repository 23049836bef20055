"""Flipped bits, truncation and extension: every load raises `CorruptBlobError`
or returns the original value, never anything else."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import file_backed as fb
from file_backed.blob import MAX_HEADER_SIZE, decode_blob, encode_blob, read_header
from file_backed.opening import make_codec

from .conftest import blob_file

pytestmark = pytest.mark.timeout(90)

KEY = uuid.UUID(bytes=b"k" * 16)
VALUES: dict[str, Any] = {
    "pickle": {"name": "pickle", "numbers": list(range(50)), "array": np.arange(64, dtype=np.int32)},
    "json": {"name": "json", "numbers": list(range(50)), "nested": {"a": [1.5, None, "x"]}},
    "msgpack": {"name": "msgpack", "numbers": list(range(50)), "blob": b"\x00\x01" * 40},
    "bytes": bytes(range(256)) * 2,
    "numpy": np.arange(200, dtype=np.float64).reshape(20, 10),
}


def same(left: Any, right: Any) -> bool:
    """Deep equality that compares numpy arrays by dtype, shape and contents."""
    if isinstance(left, np.ndarray) or isinstance(right, np.ndarray):
        return (
            isinstance(left, np.ndarray)
            and isinstance(right, np.ndarray)
            and left.dtype == right.dtype
            and left.shape == right.shape
            and bool(np.array_equal(left, right))
        )
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, bytes | bytearray | memoryview) and isinstance(right, bytes | bytearray | memoryview):
        return bytes(left) == bytes(right)
    return type(left) is type(right) and bool(left == right)


def damage(blob: bytes, rng: random.Random) -> tuple[bytearray, str]:
    """A damaged copy of `blob` and what was done: bit flips in the header or the
    payload, a truncation, or appended bytes."""
    data = bytearray(blob)
    header_size = read_header(blob[:MAX_HEADER_SIZE], source="original").size
    kind = rng.choices(["header", "payload", "truncate", "extend"], weights=[4, 4, 1, 1])[0]
    if kind == "truncate":
        return data[: rng.randrange(len(data))], kind
    if kind == "extend":
        return data + rng.randbytes(rng.randint(1, 16)), kind
    low, high = (0, header_size) if kind == "header" else (header_size, len(data))
    for _ in range(rng.randint(1, 3)):
        position = rng.randrange(low, high)
        data[position] ^= 1 << rng.randrange(8)
    return data, kind


def expect_original_or_corrupt(load: Callable[[], Any], original: Any, what: str) -> bool:
    """True when `load` raised `CorruptBlobError`, False when it returned the
    original; anything else fails the test."""
    try:
        loaded = load()
    except fb.CorruptBlobError:
        return True
    except Exception as error:  # noqa: BLE001 - the point of the test
        pytest.fail(f"{what}: raised {type(error).__name__} instead of CorruptBlobError: {error}")
    assert same(loaded, original), f"{what}: returned a wrong object {loaded!r}"
    return False


@pytest.mark.parametrize("signed", [False, True], ids=["checksummed", "signed"])
@pytest.mark.parametrize("codec_name", sorted(VALUES))
def test_damaged_blobs_never_decode_wrong(codec_name: str, signed: bool) -> None:
    """400 damaged copies per codec and mode, decoded in memory."""
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    codec = make_codec(codec_name)
    signing_key = b"s" * 32 if signed else None
    original = VALUES[codec_name]
    buffers, _ = encode_blob(codec, original, signing_key=signing_key, key=KEY)
    blob = b"".join(bytes(memoryview(buffer).cast("B")) for buffer in buffers)
    detected = 0
    trials = 400
    for trial in range(trials):
        data, kind = damage(blob, rng)
        detected += expect_original_or_corrupt(
            lambda data=data: decode_blob(codec, data, source="trial", signing_key=signing_key, key=KEY),
            original,
            f"seed {seed} trial {trial} ({kind})",
        )
    assert detected >= trials * 0.9, f"seed {seed}: only {detected} of {trials} damaged blobs were detected"


def test_damaged_persisted_blobs_through_the_store(tmp_path: Path) -> None:
    """300 damaged persisted blobs, registered into a fresh store and loaded."""
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    location = tmp_path / "persisted"
    original = VALUES["pickle"]
    with fb.open_store("fs_hardlink", path=tmp_path / "area") as store:
        tracked = store.track_path(location)
        key = fb.FBPool(store, max_items=2).insert(original).persist(tracked)
        store.fsync(tracked)
    blob = blob_file(location, key).read_bytes()
    trials: dict[uuid.UUID, str] = {}
    for _ in range(300):
        damaged_key = uuid.uuid4()
        data, kind = damage(blob, rng)
        blob_file(location, damaged_key).write_bytes(data)
        trials[damaged_key] = kind
    detected = 0
    with fb.open_store("fs_hardlink", path=tmp_path / "fresh") as store:
        pool: fb.FBPool[Any] = fb.FBPool(store, max_items=2)
        tracked = store.track_path(location)
        for damaged_key, kind in trials.items():
            handle = pool.register(tracked, damaged_key)
            assert handle is not None
            detected += expect_original_or_corrupt(handle.get, original, f"seed {seed} key {damaged_key} ({kind})")
        with pool.register(tracked, key).load() as value:  # type: ignore[union-attr]
            assert same(value, original), "the undamaged blob must still load"
    assert detected >= 270, f"seed {seed}: only {detected} of 300 damaged blobs were detected"


def test_signed_blob_moved_under_another_key_is_rejected(tmp_path: Path) -> None:
    """A signed blob copied to another key's name fails its MAC (the key is bound)."""
    location = tmp_path / "persisted"
    secret = "correct horse battery staple"
    with fb.open_store("fs_hardlink", path=tmp_path / "area", signing_key=secret) as store:
        tracked = store.track_path(location)
        key = fb.FBPool(store, max_items=2).insert({"pay": 1}).persist(tracked)
    other = uuid.uuid4()
    blob_file(location, other).write_bytes(blob_file(location, key).read_bytes())
    with fb.open_store("fs_hardlink", path=tmp_path / "fresh", signing_key=secret) as store:
        pool: fb.FBPool[Any] = fb.FBPool(store, max_items=2)
        tracked = store.track_path(location)
        assert pool.register(tracked, key).get() == {"pay": 1}  # type: ignore[union-attr]
        with pytest.raises(fb.CorruptBlobError, match="signature mismatch"):
            pool.register(tracked, other).get()  # type: ignore[union-attr]
