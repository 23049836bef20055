"""SIGKILL at random moments never loses a synced key and never leaves a partial
blob under a final name."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import file_backed as fb
from file_backed.blob import decode_blob
from file_backed.codecs.bytes_codec import BytesCodec

CHILD = Path(__file__).with_name("crash_child.py")
KILLS = 30
STALL_EVERY = 5  # every 5th child is killed in the middle of writing a blob
STEPS_PER_ROUND = 4  # lines the child prints per round after "ready"


def journaled(journal: Path) -> dict[uuid.UUID, str]:
    """Complete journal lines: key -> digest of the value synced under it."""
    entries: dict[uuid.UUID, str] = {}
    if not journal.exists():
        return entries
    for line in journal.read_text().splitlines(keepends=True):
        if line.endswith("\n"):
            key, digest = line.split()
            entries[uuid.UUID(hex=key)] = digest
    return entries


def final_names_are_whole(directory: Path) -> tuple[int, int]:
    """Decode every file under a final blob name in `directory` (must succeed);
    returns (whole blobs, temporary files left by the kill)."""
    codec = BytesCodec()
    whole = partial = 0
    for shard in directory.iterdir():
        if not shard.is_dir():
            continue
        for path in shard.iterdir():
            if path.name.endswith(".tmp"):
                partial += 1
                continue
            decode_blob(codec, bytearray(path.read_bytes()), source=str(path), key=uuid.UUID(hex=path.name))
            whole += 1
    return whole, partial


@pytest.mark.timeout(150)
def test_sigkill_loop_keeps_every_synced_key(tmp_path: Path) -> None:
    temp, location, journal = tmp_path / "temp", tmp_path / "persisted", tmp_path / "journal"
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    partial_seen = 0
    for round_ in range(KILLS):
        stall = round_ % STALL_EVERY == STALL_EVERY - 1
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(temp), str(location), str(journal), str(rng.getrandbits(32))]
            + (["stall"] if stall else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdin is not None
        try:
            assert child.stdout.readline() == "ready\n", f"round {round_}: the child failed to start"
            if stall:
                while (line := child.stdout.readline()) != "stalled\n":
                    assert line, f"round {round_}: the child died before it stalled"
            else:
                for _ in range(rng.randrange(STEPS_PER_ROUND * 4)):
                    assert child.stdout.readline(), f"round {round_}: the child died before it was killed"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
            child.stdin.close()
        assert child.returncode == -signal.SIGKILL, f"round {round_}: the child exited on its own"
        for directory in (location, temp):
            _, partial = final_names_are_whole(directory)
            partial_seen += partial

    assert partial_seen >= KILLS // STALL_EVERY, "the kills mid-write left no partial file to clean up"
    expected = journaled(journal)
    assert len(expected) >= KILLS // 2, "too few keys were journaled to prove anything"
    with fb.open_store("fs_hardlink", path=temp, codec="bytes") as store:
        assert not list(temp.glob("*/*.tmp")), "opening the crashed temporary area left partial files behind"
        pool: fb.FBPool[bytearray] = fb.FBPool(store, max_items=4)
        tracked = store.track_path(location)
        assert not list(location.glob("*/*.tmp")), "track_path left partial files behind"
        for key, digest in expected.items():
            assert key in tracked, f"synced key {key} was lost"
            handle = pool.register(tracked, key)
            assert handle is not None
            assert hashlib.blake2b(handle.get(), digest_size=16).hexdigest() == digest, f"key {key} changed"
    verify = subprocess.run(
        [sys.executable, "-c", "from file_backed.cli import main; main()", "verify", str(location)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    print(f"{KILLS} kills, {len(expected)} journaled keys checked, {partial_seen} partial files seen and cleaned")
