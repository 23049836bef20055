"""S3 transfers of the ``fsspec`` backend without whole-blob copies.

On an ``s3fs.S3FileSystem`` the backend loads a blob with exactly one request,
a GET whose body is read straight into a buffer from
`file_backed.buffers.allocate` (``fs.cat_file`` would first send a HEAD for the
size, then join the body's pieces into one ``bytes`` that the backend copies
again into an aligned buffer). It stores a blob with one PUT whose body reads
the blob's buffers in order (`BuffersReader`), where ``fs.pipe_file`` needs
the buffers joined into one ``bytes`` first. A PUT is atomic: the object
appears whole when it completes, or not at all.

Other filesystems use fsspec's generic calls (see `file_backed_fsspec`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from file_backed.buffers import allocate
from file_backed.codecs.base import Buffer

__all__ = ["MAX_PUT", "BuffersReader", "get_object", "is_s3", "put_object"]

#: The largest object a single PUT may create (S3's limit); larger blobs go
#: through ``pipe_file`` as a multipart upload.
MAX_PUT = 5 * 2**30


def is_s3(fs: Any) -> bool:
    """Whether `fs` is an s3fs filesystem (without importing s3fs)."""
    return any(cls.__module__.startswith("s3fs.") and cls.__name__ == "S3FileSystem" for cls in type(fs).__mro__)


class BuffersReader(io.RawIOBase):
    """A seekable, read-only file over a sequence of buffers, read in order
    without joining them (the body of a PUT: botocore reads it once for the
    checksum, seeks back, and the HTTP client streams it)."""

    def __init__(self, buffers: Sequence[Buffer]) -> None:
        self._views = [memoryview(buffer).cast("B") for buffer in buffers]
        self._views = [view for view in self._views if view.nbytes]
        self._starts: list[int] = []
        total = 0
        for view in self._views:
            self._starts.append(total)
            total += view.nbytes
        self._size = total
        self._position = 0
        self._index = 0

    def __len__(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        self._index = 0
        while self._index + 1 < len(self._views) and self._starts[self._index + 1] <= self._position:
            self._index += 1
        return self._position

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        done = 0
        while done < target.nbytes and self._position < self._size:
            view = self._views[self._index]
            start = self._position - self._starts[self._index]
            count = min(view.nbytes - start, target.nbytes - done)
            target[done : done + count] = view[start : start + count]
            done += count
            self._position += count
            if start + count == view.nbytes and self._index + 1 < len(self._views):
                self._index += 1
        return done


def put_object(fs: Any, path: str, buffers: Sequence[Buffer], size: int) -> None:
    """Write `buffers` (`size` bytes in all) as the object `path` in one PUT.

    botocore rewinds the body before each of its retries. s3fs's own retries
    (after botocore's, for throttling and broken connections) resend the body
    from where it stopped, so they fail rather than write a wrong object: the
    eviction fails and the pool keeps the value in memory.
    """
    from fsspec.asyn import sync

    bucket, key, _version = fs.split_path(path)
    body = BuffersReader(buffers)
    sync(fs.loop, fs._call_s3, "put_object", Bucket=bucket, Key=key, Body=body, ContentLength=size)
    fs.invalidate_cache(path)


def get_object(fs: Any, path: str) -> memoryview:
    """The object `path`, read with one GET into a buffer from `allocate`.

    The buffer is allocated on the calling thread (where a pool's load may
    offer a spare one); the body is read on fsspec's event loop. Raises
    `FileNotFoundError` for a missing object and `OSError` for a body shorter
    than its announced length.
    """
    from fsspec.asyn import sync

    bucket, key, version = fs.split_path(path)
    extra = {"VersionId": version} if version else {}
    response = sync(fs.loop, fs._call_s3, "get_object", Bucket=bucket, Key=key, **extra)
    body = response["Body"]
    try:
        buffer = allocate(int(response["ContentLength"]))
        sync(fs.loop, _read_into, body, buffer)
    finally:
        body.close()
    return buffer


async def _read_into(body: Any, buffer: memoryview) -> None:
    """Fill `buffer` from the response `body`: aiohttp's pieces as they arrive
    (one copy each), else the body's own ``readinto``."""
    size = buffer.nbytes
    done = 0
    content = getattr(getattr(body, "raw_stream", None), "content", None)
    if content is not None and hasattr(content, "iter_any"):
        async for piece in content.iter_any():
            count = len(piece)
            if done + count > size:
                raise OSError(f"the object is longer than its announced {size} bytes")
            buffer[done : done + count] = piece
            done += count
    else:
        while done < size:
            count = await body.readinto(buffer[done:])
            if not count:
                break
            done += count
    if done != size:
        raise OSError(f"the object ended after {done} of its {size} bytes")
