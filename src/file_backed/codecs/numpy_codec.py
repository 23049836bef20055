"""NumPy codec: one array in ``.npy`` format, data written and read without a copy."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from file_backed.codecs.base import Buffer, Codec

__all__ = ["NumpyCodec"]


class NumpyCodec(Codec):
    """Stores one `numpy.ndarray` (not of object dtype) as a ``.npy`` file.

    The array's data is handed to the backend as a buffer (no copy for
    contiguous arrays) and decoded as a writable view of the read buffer.
    """

    name: ClassVar[str] = "numpy"

    def encode(self, obj: Any) -> Sequence[Buffer]:
        if not isinstance(obj, np.ndarray):
            raise TypeError(f"the numpy codec stores numpy.ndarray, not {type(obj).__name__}")
        if obj.dtype.hasobject:
            raise TypeError("the numpy codec does not store arrays of object dtype; use the pickle codec")
        fortran = obj.flags.f_contiguous and not obj.flags.c_contiguous
        array = obj if fortran or obj.flags.c_contiguous else np.ascontiguousarray(obj)
        header = io.BytesIO()
        np.lib.format.write_array_header_2_0(
            header, {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": fortran, "shape": array.shape}
        )
        data = memoryview(array.reshape(-1, order="F" if fortran else "C")).cast("B") if array.size else b""  # type: ignore[arg-type]
        return [header.getvalue(), data]  # the header starts with the .npy magic

    def decode(self, data: memoryview) -> Any:
        stream = io.BytesIO(data)
        try:
            version = np.lib.format.read_magic(stream)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(stream)
        except (ValueError, SyntaxError) as error:
            raise ValueError(f"invalid .npy payload: {error}") from error
        count = int(np.prod(shape, dtype=np.int64))
        if stream.tell() + count * dtype.itemsize != data.nbytes:
            raise ValueError(".npy payload length does not match its header")
        flat = np.frombuffer(data, dtype=dtype, count=count, offset=stream.tell())
        return flat.reshape(shape, order="F" if fortran else "C")
