"""Spill areas: the directory or URL prefix of one worker below a configured base.

An area is named ``dask-<host>-<pid>-<random>`` after the process that owns it,
so the areas that a killed worker left behind can be told from those of live
workers: on the same host, an area whose process is gone is a leftover.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import socket
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["Area", "leftover_areas", "new_area_name", "sweep"]

logger = logging.getLogger("file_backed")

_PREFIX = "dask-"
_NAME = re.compile(r"^dask-(?P<host>[A-Za-z0-9_.]+)-(?P<pid>[0-9]+)-(?P<token>[0-9a-f]{8})$")


def _host() -> str:
    """This host's name, reduced to characters safe in paths and object keys."""
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def new_area_name() -> str:
    """A fresh area name for the calling process on this host."""
    return f"{_PREFIX}{_host()}-{os.getpid()}-{secrets.token_hex(4)}"


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


@attrs.frozen
class Area:
    """A location (local path or fsspec URL) and the fsspec options to reach it."""

    location: str
    storage_options: Mapping[str, Any] = attrs.field(factory=dict)

    def child(self, name: str) -> Area:
        return Area(f"{self.location.rstrip('/')}/{name}", self.storage_options)

    def _filesystem(self) -> tuple[Any, str]:
        import fsspec

        options = dict(self.storage_options)
        protocol = fsspec.core.split_protocol(self.location)[0] or "file"
        if options and all(isinstance(value, Mapping) for value in options.values()) and protocol in options:
            options = dict(options[protocol])  # keyed by protocol, as the fsspec backend accepts
        fs, root = fsspec.url_to_fs(self.location, **options)
        return fs, root.rstrip("/")

    def remove(self) -> None:
        """Remove the area and everything in it; nothing when it does not exist."""
        fs, root = self._filesystem()
        fs.invalidate_cache()
        with contextlib.suppress(FileNotFoundError):
            fs.rm(root, recursive=True)

    def names(self) -> list[str]:
        """The names of the entries directly below the area (none when it does not exist)."""
        fs, root = self._filesystem()
        fs.invalidate_cache()
        try:
            entries = fs.ls(root, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries]


def leftover_areas(base: Area, *, all_hosts: bool = False) -> list[Area]:
    """The worker areas below `base` whose process is gone: on this host, those
    whose process id is not running. With `all_hosts`, also every area of
    other hosts (only safe when no worker on another host uses `base` now)."""
    here = _host()
    found = []
    for name in base.names():
        match = _NAME.match(name)
        if match is None:
            continue
        if match["host"] == here:
            if not _process_alive(int(match["pid"])):
                found.append(base.child(name))
        elif all_hosts:
            found.append(base.child(name))
    return found


def sweep(
    location: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None, *, all_hosts: bool = False
) -> list[str]:
    """Remove the worker areas that killed workers left below `location` (see
    `leftover_areas`) and return their locations. Never touches the area of a
    live worker on this host; with `all_hosts`, removes the areas of other
    hosts too, so run it so only when no worker on another host uses `location`."""
    removed = []
    for area in leftover_areas(Area(os.fspath(location), dict(storage_options or {})), all_hosts=all_hosts):
        try:
            area.remove()
        except OSError as error:
            logger.warning("could not remove the leftover spill area %s: %r", area.location, error)
        else:
            removed.append(area.location)
    return removed
