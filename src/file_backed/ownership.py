"""Which directories (or prefixes) a store may delete blobs from.

A file-like backend marks its locations so that no store ever takes blobs it
did not write for its own leftovers:

* A temporary area holds `TEMPORARY_MARKER`, written when a store first claims
  it and held (locked, or recorded with its owner) while the store is open.
  When a store claims an area whose marker is no longer held, the previous
  owner is gone (it crashed) and the blobs there are its leftovers: nothing
  but that area's stores ever wrote there.
* A persisted location holds `PERSISTED_MARKER`, written when it is first
  tracked.
* An area is refused as a temporary area when it holds `PERSISTED_MARKER`, or
  when it holds blobs but no `TEMPORARY_MARKER` (blobs something else wrote);
  a location holding `TEMPORARY_MARKER` is refused as a persisted location.
  Both checks read the markers, so they hold across processes.

`claim_local` implements the claim with an advisory lock on a local file;
`OwnerRecord` is what an area without locks (an object store) records about
its owner, so that a later claim can tell a live owner from a crashed one.
"""

from __future__ import annotations

import functools
import json
import os
import socket
from pathlib import Path

import attrs

from file_backed.errors import ConfigError

__all__ = [
    "MARKERS",
    "PERSISTED_MARKER",
    "TEMPORARY_MARKER",
    "OwnerRecord",
    "claim_local",
    "foreign_blobs_error",
    "persisted_area_error",
    "temporary_area_error",
]

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

#: The marker of a temporary area.
TEMPORARY_MARKER = ".file_backed-temporary"
#: The marker of a persisted location.
PERSISTED_MARKER = ".file_backed-persisted"
#: Both markers: entries of a location that are neither blobs nor foreign.
MARKERS = frozenset({TEMPORARY_MARKER, PERSISTED_MARKER})

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def temporary_area_error(where: str) -> ConfigError:
    """The error for tracking the temporary area `where` as a persisted location."""
    return ConfigError(
        f"{where} is the temporary area of a store (it holds {TEMPORARY_MARKER}); "
        "a persisted location must be another directory"
    )


def persisted_area_error(where: str, option: str) -> ConfigError:
    """The error for claiming the persisted location `where` as a temporary area."""
    return ConfigError(
        f"{option}: {where} is a persisted location (it holds {PERSISTED_MARKER}); "
        "a temporary area must be a directory of its own, and its blobs would be deleted as leftovers"
    )


def foreign_blobs_error(where: str, option: str, count: int) -> ConfigError:
    """The error for claiming `where` as a temporary area while it holds `count`
    blobs that no store wrote as temporary blobs there."""
    return ConfigError(
        f"{option}: {where} holds {count} blob(s) but was never a temporary area; "
        "a store deletes what it finds in its temporary area, so it refuses one holding blobs it did not write. "
        "Track it as a persisted location instead, or give the store an empty directory"
    )


def claim_local(root: Path, option: str) -> tuple[int, bool]:
    """Create or open the temporary-area marker in the local directory `root` and
    lock it for this process's store. Returns the locked descriptor (closing it
    releases the claim) and whether the marker existed (an earlier store used
    the area; it has crashed or closed). Raises `ConfigError` when another open
    store holds the claim."""
    marker = root / TEMPORARY_MARKER
    flags = os.O_RDWR | _O_CLOEXEC | _O_NOFOLLOW
    try:
        fd = os.open(marker, flags | os.O_CREAT | os.O_EXCL, 0o644)
        existed = False
    except FileExistsError:
        fd = os.open(marker, flags)
        existed = True
    if fcntl is None:  # no advisory locks on this platform: nothing to collect safely
        return fd, False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"{option}: {root} is the temporary area of another open store; give each store its own directory"
        ) from None
    return fd, existed


@attrs.frozen
class OwnerRecord:
    """The process that claimed a temporary area without locks: its host, boot,
    process id and process start time (which together tell a live owner from a
    crashed one whose pid was reused)."""

    host: str
    boot: str
    pid: int
    started: str

    @classmethod
    def of_this_process(cls) -> OwnerRecord:
        pid = os.getpid()
        return cls(host=socket.gethostname(), boot=_boot_id(), pid=pid, started=_start_time(pid))

    def to_bytes(self) -> bytes:
        return json.dumps(attrs.asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> OwnerRecord | None:
        """The record in `data`, or None when it is not one (an older or foreign marker)."""
        try:
            fields = json.loads(data)
            return cls(
                host=str(fields["host"]),
                boot=str(fields["boot"]),
                pid=int(fields["pid"]),
                started=str(fields["started"]),
            )
        except (ValueError, TypeError, KeyError):
            return None

    def is_here(self) -> bool:
        """Whether the owner ran on this machine since its last boot."""
        return self.host == socket.gethostname() and self.boot == _boot_id()

    def is_alive(self) -> bool:
        """Whether the owner process still runs. Only meaningful when `is_here`."""
        if not self.is_here():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _start_time(self.pid) == self.started

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}"


@functools.cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The start time of process `pid` in clock ticks since boot (Linux), or ""."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]
