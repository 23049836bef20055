"""Buffers that backends read blobs into: aligned for array data, and reused
across loads of one pool.

A backend's `load` hook calls `allocate(size)` for the buffer it reads a blob
into, and hands (views of) it to the codec, which may keep referencing it
(zero-copy decoding). Every buffer starts on an `ALIGNMENT`-byte boundary, so
the blob layout (`file_backed.blob`) and codec framing that place array data on
such boundaries give aligned arrays after a load.

While a pool loads an item, the buffers allocated on that thread are recorded
for the item. When the pool later drops the item's value and nothing else
references a buffer any more (no value, view or array made from it is alive),
the pool keeps the buffer for a later load of a blob of about the same size.
A reused buffer needs no fresh pages from the operating system, which under a
byte budget would otherwise be faulted in on every load.

A backend may instead map a blob's file copy-on-write (`file_backed.localfs`)
and record the mapping with `adopt_mapping`: the value then shares the page
cache's pages, its memory goes back to the system when it is unmapped, and the
pool never reads another blob into it.
"""

from __future__ import annotations

import array
import ctypes
import mmap
import sys
import threading
from typing import Any

from file_backed.codecs.base import ALIGNMENT

__all__ = [
    "ALIGNMENT",
    "Allocation",
    "LoadBuffers",
    "adopt_mapping",
    "allocate",
    "collecting",
    "copy_of",
    "is_mapping",
    "new_allocation",
    "sole_owner",
]

#: Buffers at least this large are uninitialised numpy memory when numpy is loaded
#: (no zero-filling pass).
_UNINITIALISED_FROM = 64 * 1024

#: One allocation: the object that owns the memory, the offset of its aligned
#: start, and its usable capacity in bytes.
Allocation = tuple[Any, int, int]

_c_char = ctypes.c_char
_ZERO_BYTE = array.array("B", b"\0")


class _Loading(threading.local):
    #: The buffers of the pool's load running on this thread, None outside one
    #: (a class default: `getattr` with a default raises and catches inside).
    current: LoadBuffers | None = None


_loading = _Loading()


def new_allocation(capacity: int) -> Allocation:
    """A fresh buffer of `capacity` usable bytes starting on an aligned address.

    Small buffers are zeroed ``array.array`` objects, whose address
    ``buffer_info`` gives without ctypes (a quarter of the cost here)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and capacity >= _UNINITIALISED_FROM:
        raw: Any = numpy.empty(capacity + ALIGNMENT - 1, dtype=numpy.uint8)
        address = ctypes.addressof(_c_char.from_buffer(raw))  # `__array_interface__` costs 4x as much
    else:
        raw = _ZERO_BYTE * (capacity + ALIGNMENT - 1)
        address = raw.buffer_info()[0]
    return raw, -address % ALIGNMENT, capacity


class LoadBuffers:
    """The buffers of one load: a spare buffer offered by the pool, and the
    buffers handed out (which the loaded value may reference)."""

    __slots__ = ("allocated", "owned", "reused", "spare")

    def __init__(self, spare: Allocation | None) -> None:
        self.spare = spare
        self.owned: list[Allocation] = []
        #: Bytes handed out.
        self.allocated = 0
        #: Whether the spare was used.
        self.reused = False

    def allocate(self, size: int) -> memoryview:
        spare = self.spare
        if spare is not None and size <= spare[2]:
            allocation = spare
            self.spare = None
            self.reused = True
        else:
            allocation = new_allocation(size)
        self.owned.append(allocation)
        self.allocated += size
        raw, offset, _capacity = allocation
        return memoryview(raw)[offset : offset + size]

    def adopt(self, mapping: mmap.mmap) -> memoryview:
        size = len(mapping)
        self.owned.append((mapping, 0, size))
        self.allocated += size
        return memoryview(mapping)


def allocate(size: int) -> memoryview:
    """A writable buffer of exactly `size` bytes whose first byte is on an
    `ALIGNMENT`-byte boundary, for a backend's `load` hook to read a blob into.

    The contents are undefined. The caller may hand views of it to the codec,
    which may keep them. During a pool's load the buffer may be one that an
    earlier load of the same pool used and that nothing references any more.
    """
    load: LoadBuffers | None = _loading.current
    if load is not None:
        return load.allocate(size)
    raw, offset, _capacity = new_allocation(size)
    return memoryview(raw)[offset : offset + size]


def adopt_mapping(mapping: mmap.mmap) -> memoryview:
    """A view of all of `mapping`, a private (copy-on-write) mapping of a blob's
    file that a backend's `load` hook made instead of calling `allocate`. During
    a pool's load it is recorded for the item: the pool counts its memory as
    returned when the value is dropped (by unmapping, without the allocator)
    and never reads another blob into it (`is_mapping`)."""
    load: LoadBuffers | None = _loading.current
    if load is not None:
        return load.adopt(mapping)
    return memoryview(mapping)


def is_mapping(allocation: Allocation) -> bool:
    """Whether `allocation` is a file mapping recorded by `adopt_mapping`."""
    return type(allocation[0]) is mmap.mmap


def copy_of(data: bytes | bytearray | memoryview) -> memoryview:
    """`data` copied into a buffer from `allocate`: for backends that receive a
    blob as bytes (a database row, an object store's response)."""
    view = memoryview(data).cast("B")
    buffer = allocate(view.nbytes)
    buffer[:] = view
    return buffer


class collecting:
    """Context of one load on this thread: `allocate` calls record their buffers
    in `buffers` (and may use its spare). Not reentrant across loads of one
    thread; nested contexts restore the outer one."""

    __slots__ = ("_outer", "buffers")

    def __init__(self, spare: Allocation | None) -> None:
        self.buffers = LoadBuffers(spare)
        self._outer: LoadBuffers | None = None

    def __enter__(self) -> LoadBuffers:
        self._outer = _loading.current
        _loading.current = self.buffers
        return self.buffers

    def __exit__(self, *exc_info: object) -> None:
        _loading.current = self._outer


def _references(holder: Allocation) -> int:
    raw = holder[0]
    return sys.getrefcount(raw)


# The count `_references` sees when `holder` is the only holder of its buffer,
# measured on this interpreter the same way it is checked.
_ONLY_HOLDER = _references((_ZERO_BYTE * 1, 0, 1))


def sole_owner(holder: Allocation) -> bool:
    """Whether nothing but `holder` references its buffer: no value, view or
    array made from it is alive, so it may be written again."""
    return _references(holder) == _ONLY_HOLDER
