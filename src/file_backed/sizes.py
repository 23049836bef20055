"""Sizes in bytes, as integers or as text with a unit (``"2 GiB"``)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = ["format_size", "parse_size"]

_UNITS = {
    "": 1,
    "b": 1,
    "byte": 1,
    "bytes": 1,
    **{f"{prefix}b": 1000**power for power, prefix in enumerate("kmgtpe", start=1)},
    **{f"{prefix}ib": 1024**power for power, prefix in enumerate("kmgtpe", start=1)},
}
_SIZE = re.compile(r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*([a-z]*)\s*", re.IGNORECASE)


def parse_size(value: object) -> int:
    """A number of bytes (at least 1) from an int or from text such as ``"2 GiB"``.

    Decimal units (kB, MB, GB, TB, PB, EB) are powers of 1000, binary units
    (KiB, MiB, GiB, TiB, PiB, EiB) powers of 1024; unit letters are case-insensitive.
    Fractions are allowed when they make whole bytes (``"1.5 KiB"`` is 1536).
    Raises `ValueError` (`TypeError` for a value that is neither int nor text).

    >>> parse_size("2 GiB"), parse_size("512 MB"), parse_size(4096)
    (2147483648, 512000000, 4096)
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f'expected a size: an integer or text such as "2 GiB", got {type(value).__name__} {value!r}')
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.fullmatch(value)
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS:
            raise ValueError(f'expected a size such as "512 MB" or "2 GiB", got {value!r}')
        try:
            exact = Decimal(match.group(1)) * _UNITS[unit]
        except InvalidOperation:  # pragma: no cover - the pattern only admits decimals
            raise ValueError(f"expected a size, got {value!r}") from None
        if exact != exact.to_integral_value():
            raise ValueError(f"expected a whole number of bytes, got {value!r} = {exact} bytes")
        size = int(exact)
    if size < 1:
        raise ValueError(f"expected a size of at least 1 byte, got {value!r}")
    return size


def format_size(size: int, *, exact: bool = True) -> str:
    """`size` bytes as text with a binary unit.

    With `exact` (the default) the text reads back exactly with `parse_size`:
    the largest unit that divides `size` (``format_size(2**31) == "2 GiB"``,
    ``format_size(1536) == "1536 B"``). Otherwise, for people: the largest unit
    not above `size`, whole or with three significant digits
    (``format_size(1536, exact=False) == "1.50 KiB"``, ``"123 MiB"``, ``"10 MiB"``, ``"0 B"``).
    """
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    if not exact:
        power = 0
        while power + 1 < len(units) and abs(size) >= 1024 ** (power + 1):
            power += 1
        if size % 1024**power == 0:
            return f"{size // 1024**power} {units[power]}"
        value = size / 1024**power
        digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
        return f"{value:.{digits}f} {units[power]}"
    for power, unit in reversed(list(enumerate(units))):
        if size % 1024**power == 0:
            return f"{size // 1024**power} {unit}"
    raise AssertionError("unreachable: every size is a whole number of bytes")  # pragma: no cover
