"""Durability helpers for backends that keep blobs on a local filesystem."""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
import sys
from typing import Any

from file_backed.buffers import adopt_mapping, allocate

__all__ = ["MAP_FROM", "read_file", "syncfs"]

#: `read_file(fd, private=True)` maps files of at least this many bytes instead of
#: reading them. Measured on Linux (2 CPUs, files in the page cache, loads
#: through a pool): from 2 MiB a mapped load is 1.7-2.6x faster with one
#: thread and with four; at 1 MiB it is at best even, and four threads
#: loading at once lose up to a third (each unmap interrupts the other CPUs).
MAP_FROM = 2 * 1024 * 1024

_CAN_MAP = os.name == "posix"


def read_file(fd: int, *, private: bool = False) -> memoryview:
    """The whole file open at `fd` as one buffer whose first byte is on an
    `file_backed.buffers.ALIGNMENT` boundary, which decoded values may keep
    referencing (zero-copy codecs). A file that shrank while it was read gives
    the bytes that were there.

    Normally the file is read, with as few system calls as possible, into a
    buffer from `file_backed.buffers.allocate`. With `private` (POSIX), a file
    of at least `MAP_FROM` bytes with no other hard link is mapped
    copy-on-write instead (``MAP_PRIVATE``, `file_backed.buffers.adopt_mapping`):
    nothing is copied, the value shares the page cache's pages until it writes
    to them, and dropping it unmaps them. Pass `private` only for a backend's
    own write-once files that nothing writes in place or truncates while
    values decoded from them live: a write to the file would show through
    the pages a value has not written, and accessing a page past a truncated
    end kills the process (``SIGBUS``). Where the mapping cannot be made (too
    many mappings, a filesystem without ``mmap``) the file is read."""
    status = os.fstat(fd)
    size = status.st_size
    if private and _CAN_MAP and size >= MAP_FROM and status.st_nlink == 1:
        try:
            mapping = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
        except OSError:
            pass
        else:
            return adopt_mapping(mapping)
    buffer = allocate(size)
    filled = 0
    while filled < size:
        count = os.readv(fd, [buffer[filled:]])
        if not count:
            return buffer[:filled]
        filled += count
    return buffer


def syncfs(path: str | os.PathLike[str]) -> bool:
    """Flush every dirty page and inode of the filesystem holding the directory
    `path` (Linux ``syncfs(2)``). Returns False, having done nothing, where the
    call does not exist; raises `OSError` when it fails."""
    call = _libc_syncfs()
    if call is None:
        return False
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if call(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"syncfs failed: {os.strerror(error)}", os.fspath(path))
    finally:
        os.close(fd)
    return True


@functools.cache
def _libc_syncfs() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
