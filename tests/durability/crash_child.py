"""The process that `test_sigkill.py` kills: inserts, persists, syncs and journals
in a loop until it is killed.

Usage: ``python crash_child.py TEMP LOCATION JOURNAL SEED [stall]``

It prints ``ready`` once the store is open and the location tracked, then one
line per step of each round (``inserted``, ``persisted``, ``synced``,
``journaled KEY``) so the parent can kill it at a random step. A journal line
``<key hex> <blake2b hex of the value>`` is appended, and fsynced, only after
`store.fsync` returned for that key: the journal lists exactly what must
survive the kill.

With ``stall``, the child's first write of a blob larger than 64 KiB writes
half of its bytes, prints ``stalled`` and waits on its standard input forever:
the parent kills it with a partial temporary file on disk.
"""

from __future__ import annotations

import collections
import hashlib
import os
import random
import sys
from collections.abc import Sequence

import file_backed as fb
from file_backed.codecs.base import Buffer

_SIZES = (0, 1, 100, 4096, 65_537, 300_000, 1 << 20, 6 << 20)


def digest(value: bytes | bytearray) -> str:
    """The fingerprint the journal records for a value."""
    return hashlib.blake2b(value, digest_size=16).hexdigest()


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def stall_in_big_writes() -> None:
    """Make the first large `os.writev` write half its bytes, then hang."""
    writev = os.writev

    def half_then_hang(fd: int, buffers: Sequence[Buffer]) -> int:
        views = [memoryview(buffer).cast("B") for buffer in buffers]
        total = sum(view.nbytes for view in views)
        if total <= 65_536:
            return writev(fd, buffers)
        os.write(fd, b"".join(views)[: total // 2])
        say("stalled")
        sys.stdin.readline()
        raise SystemExit("the parent was meant to kill this process")

    os.writev = half_then_hang


def main(temp: str, location: str, journal: str, seed: int) -> None:
    rng = random.Random(seed)
    with fb.open_store("fs_hardlink", path=temp, codec="bytes", workers=2) as store:
        pool: fb.FBPool[bytearray] = fb.FBPool(store, max_items=4)
        tracked = store.track_path(location)
        journal_fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        live: collections.deque[fb.Fb[bytearray]] = collections.deque(maxlen=8)
        say("ready")
        while True:
            if live and rng.random() < 0.3:
                handle = rng.choice(live)
                with handle.load_mut() as value:
                    value.extend(rng.randbytes(rng.choice(_SIZES)))
            else:
                handle = pool.insert(bytearray(rng.randbytes(rng.choice(_SIZES))))
                live.append(handle)
            say("inserted")
            key = handle.persist(tracked)
            say("persisted")
            store.fsync(tracked)
            say("synced")
            line = f"{key.hex} {digest(handle.get())}\n".encode()
            os.write(journal_fd, line)
            os.fsync(journal_fd)
            say(f"journaled {key.hex}")


if __name__ == "__main__":
    if sys.argv[5:] == ["stall"]:
        stall_in_big_writes()
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
