"""The process that `test_collection_sigkill.py` kills: saves one collection
over and over until it is killed.

Usage: ``python collection_child.py TEMP LOCATION FIRST``

Save number ``n`` (from FIRST on) makes the collection ``run`` hold exactly
`names_of(n)`, each value ``b"<n>:<name>:"`` plus some bytes, and the value of
``keep`` (written once per process). It prints ``ready`` once the store is
open, a ``step`` line before each store, persist, delete and sync the backend
performs (so the parent can kill it at any point of a save), and
``saved <n>`` once save ``n`` returned.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from typing import Any

import file_backed as fb


def names_of(n: int) -> set[str]:
    """The names save `n` holds: some stay, some come and go from one save to the next."""
    return {f"v{i}" for i in range(3 + n % 5) if (i + n) % 3 != 0}


def value_of(n: int, name: str) -> bytes:
    return f"{n}:{name}:".encode() + bytes(n % 7 * 1000)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Steps:
    """Middleware: one ``step`` line before each write, delete and sync."""

    def _step(self) -> Generator[None, Any, Any]:
        say("step")
        return (yield)

    @fb.hookimpl(wrapper=True)
    def store(self, key: Any, data: Any) -> Generator[None, Any, Any]:
        return (yield from self._step())

    @fb.hookimpl(wrapper=True)
    def persist(self, dest_path: Any, key: Any) -> Generator[None, Any, Any]:
        return (yield from self._step())

    @fb.hookimpl(wrapper=True)
    def delete_persisted(self, path: Any, key: Any) -> Generator[None, Any, Any]:
        return (yield from self._step())

    @fb.hookimpl(wrapper=True)
    def sync_persisted(self, path: Any) -> Generator[None, Any, Any]:
        return (yield from self._step())


def main(temp: str, location: str, first: int) -> None:
    with fb.open_store("fs_hardlink", path=temp, codec="bytes", workers=2, plugins=[Steps()]) as store:
        tracked = store.track_path(location)
        d: fb.FBDict[str, bytes] = fb.FBDict(fb.FBPool(store, max_items=4))
        d["keep"] = b"kept"
        say("ready")
        n = first
        while True:
            wanted = names_of(n)
            for name in set(d) - wanted - {"keep"}:
                del d[name]
            for name in wanted:
                d[name] = value_of(n, name)
            d.save(tracked, name="run")
            say(f"saved {n}")
            n += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
