"""Option values checked against the type annotations of the factory that takes them.

Backend factories and codec classes annotate their keyword options; a
configuration file's value is checked against that annotation before the
factory runs, so a mistake is reported under its key (``$.options.path``) with
what was expected. Annotations this module cannot judge (protocols, generics
of user classes, unresolvable names) accept every value: the factory's own
checks apply then.
"""

from __future__ import annotations

import collections.abc
import inspect
import os
import types
import typing
from typing import Any

__all__ = ["declared_types", "type_mismatch"]

_NAMES: dict[Any, str] = {
    str: "text",
    bool: "true or false",
    int: "an integer",
    float: "a number",
    bytes: "bytes",
    type(None): "nothing (omit the key)",
    os.PathLike: "a path",
    collections.abc.Mapping: "a table",
    dict: "a table",
    list: "an array",
    tuple: "an array",
    collections.abc.Sequence: "an array",
}


def declared_types(factory: Any) -> dict[str, Any]:
    """The annotations of `factory`'s parameters (a class's ``__init__``), resolved;
    empty where they cannot be resolved."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations: nothing to check against
        return {}
    hints.pop("return", None)
    return hints


def type_mismatch(value: object, hint: Any) -> str | None:
    """What `hint` expects, when `value` does not match it; None when it matches
    or the annotation cannot be judged."""
    accepted = _accepts(value, hint)
    if accepted is not False:
        return None
    return " or ".join(dict.fromkeys(_describe(hint)))


def _members(hint: Any) -> tuple[Any, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def _accepts(value: object, hint: Any) -> bool | None:
    """True or False when `hint` can be judged, None when it cannot."""
    verdicts = [_accepts_one(value, member) for member in _members(hint)]
    if any(verdicts):
        return True
    if None in verdicts:
        return None
    return False


def _accepts_one(value: object, hint: Any) -> bool | None:
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if typing.get_origin(hint) is typing.Literal:
        return value in typing.get_args(hint)
    origin = typing.get_origin(hint) or hint
    if origin not in _NAMES:
        return None
    if origin is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin)


def _describe(hint: Any) -> list[str]:
    members = [member for member in _members(hint) if member is not type(None)] or [type(None)]
    names: list[str] = []
    for member in members:
        if typing.get_origin(member) is typing.Literal:
            names.extend(repr(choice) for choice in typing.get_args(member))
        else:
            names.append(_NAMES.get(typing.get_origin(member) or member, str(member)))
    return names
