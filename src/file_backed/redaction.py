"""Secrets in configuration values are never shown: `redacted` replaces them.

An option is secret when its name (at any depth of nested tables, such as
``storage_options``) names a credential: ``signing_key``, ``key``,
``secret``, ``password``, ``token``, or a name ending in one of those
(``aws_secret_access_key``, ``session_token``, ``account_key``). The CLI and
`FileBackedConfig`'s repr show such values as `REDACTED`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret_name", "redacted"]

#: What a secret value is shown as.
REDACTED = "<redacted>"

_SECRET_NAME = re.compile(
    r"(?:^|_)(?:key|secret|secret_key|password|passwd|token|credentials?|sas|signing_key|private_key)$",
    re.IGNORECASE,
)


def is_secret_name(name: object) -> bool:
    """Whether an option called `name` holds a credential."""
    return isinstance(name, str) and _SECRET_NAME.search(name.replace("-", "_")) is not None


def redacted(value: Any, name: object = None) -> Any:
    """`value` with every secret replaced by `REDACTED`: all of it when `name`
    is secret, else the secret entries of nested mappings and sequences."""
    if value is not None and is_secret_name(name):
        return REDACTED
    if isinstance(value, Mapping):
        return {key: redacted(item, key) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redacted(item) for item in value)
    return value
