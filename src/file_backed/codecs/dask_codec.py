"""Dask codec: Dask's own serialization (``distributed.protocol``), frames aligned."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from file_backed.codecs.base import Buffer, Codec
from file_backed.codecs.framing import frame, unframe

__all__ = ["DaskCodec"]


class DaskCodec(Codec):
    """Serializes with ``distributed.protocol.serialize`` (the ``dask`` then
    ``pickle`` serializers), so every object that Dask can send between workers
    can be stored, including those with Dask-specific serializers.

    Options
    -------
    compression:
        A name of ``distributed.protocol.compression.compressions`` (``"lz4"``,
        ``"zstd"``, ``False``/None for none), or ``"auto"`` (the default) for
        the value of the Dask setting
        ``distributed.worker.memory.spill-compression``, as Dask's own spilling
        does. Frames that do not compress well are stored as they are.

    Layout: `file_backed.codecs.framing` with the msgpack header as its head
    and Dask's frames as its buffers, so array data decodes aligned and without
    a copy (uncompressed frames are writable views of the read buffer).

    Needs ``distributed`` (``pip install 'file-backed[dask]'``). Never decode
    blobs from a location others can write: the pickle serializer runs code.
    """

    name: ClassVar[str] = "dask"

    def __init__(self, *, compression: str | bool | None = "auto") -> None:
        from distributed.protocol.compression import compressions, get_compression_settings

        if compression == "auto":
            compression = get_compression_settings("distributed.worker.memory.spill-compression")
        if compression is False:
            compression = None
        if compression not in compressions:
            valid = ", ".join(repr(name) for name in compressions)
            raise ValueError(f"unknown compression {compression!r}; choose one of {valid}")
        self.compression: str | None = compressions[compression].name

    def __repr__(self) -> str:
        return f"DaskCodec(compression={self.compression!r})"

    def encode(self, obj: Any) -> Sequence[Buffer]:
        import msgpack
        from distributed.protocol.compression import maybe_compress
        from distributed.protocol.serialize import serialize_and_split

        header, frames = serialize_and_split(obj, on_error="raise")  # type: ignore[no-untyped-call]
        if frames:
            compressions, compressed = zip(
                *(maybe_compress(frame, compression=self.compression) for frame in frames), strict=True
            )
            header["compression"] = compressions
            frames = list(compressed)
        header["count"] = len(frames)
        head = msgpack.dumps(header, use_bin_type=True)
        return frame(head, [memoryview(part).cast("B") for part in frames])

    def decode(self, data: memoryview) -> Any:
        import msgpack
        from distributed.protocol.compression import decompress
        from distributed.protocol.serialize import merge_and_deserialize

        head, frames = unframe(data, "dask")
        try:
            header = msgpack.loads(head, raw=False, use_list=False)
        except (ValueError, msgpack.UnpackException) as error:
            raise ValueError(f"invalid dask payload header: {error}") from error
        if not isinstance(header, dict) or header.get("count") != len(frames):
            raise ValueError("dask payload header does not match its frames")
        return merge_and_deserialize(header, decompress(header, frames))  # type: ignore[no-untyped-call]
