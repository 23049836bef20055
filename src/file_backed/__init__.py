"""file_backed: large objects in an in-memory LRU pool backed by a pluggable store.

>>> import file_backed as fb
>>> with fb.open_store("memory") as store:
...     pool = fb.FBPool(store, max_items=2)
...     handle = pool.insert({"answer": 42})
...     with handle.load() as value:
...         value["answer"]
42
"""

from typing import TYPE_CHECKING, Any

from file_backed.codecs.base import Codec
from file_backed.errors import (
    BackgroundTaskError,
    BlobNotFoundError,
    ConfigError,
    CorruptBlobError,
    EncodeError,
    FileBackedError,
    GuardConflictError,
    PluginNotFoundError,
    PluginNotInstalledError,
    StoreClosedError,
    StoreForkedError,
    StoreWriteError,
    UnhashableArgumentError,
)
from file_backed.handle import Fb, ReadGuard, WriteGuard
from file_backed.hookspecs import hookimpl, hookspec
from file_backed.mapping import FBDict
from file_backed.memoize import MemoInfo, Memoized, memoize
from file_backed.opening import open_store
from file_backed.plugins import available_backends, available_codecs, available_plugins
from file_backed.pool import FBPool, PoolStats
from file_backed.save import asave, save
from file_backed.saved import CollectionNotFoundError
from file_backed.store import BackingStore, TrackedPath

__all__ = [
    "BackgroundTaskError",
    "BackingStore",
    "BlobNotFoundError",
    "Codec",
    "CollectionNotFoundError",
    "ConfigError",
    "CorruptBlobError",
    "EncodeError",
    "FBDict",
    "FBPool",
    "Fb",
    "FileBackedConfig",
    "FileBackedError",
    "GuardConflictError",
    "MemoInfo",
    "Memoized",
    "PluginNotFoundError",
    "PluginNotInstalledError",
    "PoolStats",
    "ReadGuard",
    "StoreClosedError",
    "StoreForkedError",
    "StoreWriteError",
    "TrackedPath",
    "UnhashableArgumentError",
    "WriteGuard",
    "asave",
    "available_backends",
    "available_codecs",
    "available_plugins",
    "hookimpl",
    "hookspec",
    "load_config",
    "memoize",
    "open_pool",
    "open_store",
    "save",
]

if TYPE_CHECKING:
    from file_backed.config import FileBackedConfig, load_config, open_pool

_LAZY = {"FileBackedConfig", "load_config", "open_pool"}


def __getattr__(name: str) -> Any:
    """Configuration (cattrs) is imported on first use, keeping ``import file_backed`` light."""
    if name in _LAZY:
        from file_backed import config

        return getattr(config, name)
    raise AttributeError(f"module 'file_backed' has no attribute {name!r}")
