"""The fsspec backend owns its temporary area as fs_hardlink does: it claims it,
collects a crashed owner's leftovers, refuses areas it must not delete from,
never follows a symbolic link on the local disk, and signs blobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

import file_backed as fb
from tests.fsspec.conftest import blob_keys

# A child that opens a store on the temporary area argv[1] (storage options as
# JSON in argv[2]), evicts three items to it, reports, and waits to be killed.
_CRASHING_OWNER = textwrap.dedent(
    """
    import json, sys
    import file_backed as fb
    store = fb.open_store("fsspec", url=sys.argv[1], storage_options=json.loads(sys.argv[2]))
    pool = fb.FBPool(store, max_items=1)
    handles = [pool.insert(bytes(1000)) for _ in range(4)]
    store.finished()
    print("evicted", flush=True)
    sys.stdin.read()
    """
)


def crash_an_owner_of(url: str, storage_options: dict[str, Any]) -> None:
    """Run an owner of `url` in a child process and SIGKILL it once it has evicted."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_OWNER, url, json.dumps(storage_options)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "evicted"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)


@pytest.mark.timeout(60)
def test_a_crashed_owners_blobs_are_collected_by_the_next_claim_on_s3(
    bucket: str, s3_options: dict[str, Any], s3: Any
) -> None:
    root = f"{bucket}/temporary"
    crash_an_owner_of(f"s3://{root}", s3_options)
    assert len(blob_keys(s3, root)) == 3
    with fb.open_store("fsspec", url=f"s3://{root}", storage_options=s3_options):
        assert blob_keys(s3, root) == set()


@pytest.mark.timeout(60)
def test_a_crashed_owners_blobs_are_collected_by_the_next_claim_on_the_local_disk(tmp_path: Path) -> None:
    crash_an_owner_of(str(tmp_path), {})
    assert len([p for p in tmp_path.rglob("*") if len(p.name) == 32]) == 3
    with fb.open_store("fsspec", url=str(tmp_path)):
        assert [p for p in tmp_path.rglob("*") if len(p.name) == 32] == []


def test_a_live_owners_area_is_refused_on_s3(bucket: str, s3_options: dict[str, Any]) -> None:
    url = f"s3://{bucket}/temporary"
    with (
        fb.open_store("fsspec", url=url, storage_options=s3_options),
        pytest.raises(fb.ConfigError, match=f"temporary area of process {os.getpid()}"),
    ):
        fb.open_store("fsspec", url=url, storage_options=s3_options)


def test_a_live_owners_area_is_refused_on_the_local_disk(tmp_path: Path) -> None:
    with fb.open_store("fsspec", url=str(tmp_path)), pytest.raises(fb.ConfigError, match="another open store"):
        fb.open_store("fsspec", url=str(tmp_path))


def test_a_closed_store_releases_its_area(bucket: str, s3_options: dict[str, Any], s3: Any) -> None:
    url = f"s3://{bucket}/temporary"
    with fb.open_store("fsspec", url=url, storage_options=s3_options):
        pass
    assert not s3.exists(f"{bucket}/temporary/.file_backed-temporary")
    with fb.open_store("fsspec", url=url, storage_options=s3_options):
        pass


def test_a_persisted_location_is_refused_as_a_temporary_area(bucket: str, s3_options: dict[str, Any], s3: Any) -> None:
    url = f"s3://{bucket}/persisted"
    with fb.open_store("fsspec", storage_options=s3_options) as store:
        fb.FBPool(store, max_items=1).insert(b"kept").persist(store.track_path(url))
    with pytest.raises(fb.ConfigError, match="is a persisted location"):
        fb.open_store("fsspec", url=url, storage_options=s3_options)
    assert len(blob_keys(s3, f"{bucket}/persisted")) == 1


def test_blobs_without_a_marker_are_refused_as_a_temporary_area(
    bucket: str, s3_options: dict[str, Any], s3: Any
) -> None:
    key = uuid.uuid4()
    s3.pipe_file(f"{bucket}/copied/{key.hex[:2]}/{key.hex}", b"written by something else")
    for _ in range(2):
        with pytest.raises(fb.ConfigError, match="holds 1 blob"):
            fb.open_store("fsspec", url=f"s3://{bucket}/copied", storage_options=s3_options)
    assert blob_keys(s3, f"{bucket}/copied") == {key}


def test_a_temporary_area_is_refused_as_a_persisted_location(bucket: str, s3_options: dict[str, Any]) -> None:
    url = f"s3://{bucket}/temporary"
    with (
        fb.open_store("fsspec", url=url, storage_options=s3_options),
        fb.open_store("fsspec", storage_options=s3_options) as other,
        pytest.raises(fb.ConfigError, match="is the temporary area of a store"),
    ):
        other.track_path(url)


def test_an_empty_url_is_refused() -> None:
    with pytest.raises(fb.ConfigError, match="option url"):
        fb.open_store("fsspec", url="")


def test_a_symbolic_link_named_like_a_blob_is_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    with fb.open_store("fsspec") as store:
        pool = fb.FBPool(store, max_items=1)
        handle = pool.insert(b"secret")
        handle.persist(store.track_path(tmp_path / "saved"))
        outside.write_bytes((tmp_path / "saved" / handle.key.hex[:2] / handle.key.hex).read_bytes())
        link = tmp_path / "linked" / handle.key.hex[:2] / handle.key.hex
        store.track_path(tmp_path / "linked")
        link.symlink_to(outside)
        tracked = store.track_path(tmp_path / "linked")
        assert tracked.keys() == set()
        assert pool.register(tracked, handle.key) is None


def test_an_evicted_blob_replaced_by_a_symbolic_link_is_not_loaded(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"not a blob")
    with fb.open_store("fsspec", url=str(tmp_path / "temporary")) as store:
        pool = fb.FBPool(store, max_items=1)
        first = pool.insert(b"first")
        pool.insert(b"second")
        store.finished()
        blob = tmp_path / "temporary" / first.key.hex[:2] / first.key.hex
        blob.unlink()
        blob.symlink_to(outside)
        with pytest.raises(fb.BlobNotFoundError, match="symbolic link"):
            first.get()


@pytest.mark.parametrize("where", ["local", "s3"])
def test_signed_blobs_load_and_unsigned_ones_are_refused(
    where: str, tmp_path: Path, bucket: str, s3_options: dict[str, Any]
) -> None:
    url = str(tmp_path / "saved") if where == "local" else f"s3://{bucket}/saved"
    options = {} if where == "local" else {"storage_options": s3_options}
    signing_key = "a signing key of enough bytes"
    with fb.open_store("fsspec", signing_key=signing_key, **options) as signed:
        pool = fb.FBPool(signed, max_items=1)
        kept = pool.insert(b"signed")
        kept.persist(signed.track_path(url))
        with fb.open_store("fsspec", **options) as unsigned:
            forged = fb.FBPool(unsigned, max_items=1).insert(b"unsigned")
            forged.persist(unsigned.track_path(url))
        tracked = signed.track_path(url)
        reloaded, refused = pool.register(tracked, kept.key), pool.register(tracked, forged.key)
        assert reloaded is not None and refused is not None
        assert reloaded.get() == b"signed"
        with pytest.raises(fb.CorruptBlobError, match="signed"):
            refused.get()
