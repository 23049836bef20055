"""Durability helpers for backends that keep blobs on a local filesystem."""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from typing import Any

from file_backed.buffers import allocate

__all__ = ["read_file", "syncfs"]


def read_file(fd: int) -> memoryview:
    """The whole file open at `fd`, read with as few system calls as possible into
    one aligned buffer from `file_backed.buffers.allocate` that decoded values
    may keep referencing (zero-copy codecs). A file that shrank while it was
    read gives the bytes that were there."""
    buffer = allocate(os.fstat(fd).st_size)
    size = buffer.nbytes
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
