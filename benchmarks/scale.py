"""Scale: ``track_path`` over many persisted keys, and the cost of importing
the library.

``track_path``: a location holding N persisted blobs (100 000 in ``--full``;
fewer in quick mode, extrapolated linearly to 100 000 against the target) is
tracked by a fresh store each repeat; the raw floor is listing the same 256
shard directories with ``os.scandir``. The blob files are written directly in
the documented layout (one small blob's bytes under N random key names),
untimed; tracking only reads names. Repeats after the first find the
directory entries in the kernel's dentry cache, as a restart usually does.

``import file_backed``: timed inside fresh interpreters (``python -c``), one
warm-up run first, also recording whether fsspec, numpy or rich were imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import file_backed as fb

from .common import Context, Row, Section, Target, Workload

__all__ = ["WORKLOADS"]

FULL_KEYS = 100_000
HEAVY = ("fsspec", "numpy", "rich")


@dataclass(frozen=True)
class ScaleSizes:
    """Persisted keys and import timings."""

    keys: int
    imports: int


SIZES = {
    "smoke": ScaleSizes(300, 1),
    "quick": ScaleSizes(10_000, 5),
    "full": ScaleSizes(FULL_KEYS, 10),
}

#: Prints the seconds ``import file_backed`` took and which heavy modules it imported.
IMPORT_CHILD = (
    "import sys, time, json\n"
    "started = time.perf_counter()\n"
    "import file_backed\n"
    "seconds = time.perf_counter() - started\n"
    f"print(json.dumps({{'seconds': seconds, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
)


def _populate(ctx: Context, keys: int) -> Path:
    """A tracked-ready location holding `keys` blobs under random key names."""
    location = ctx.scratch("scale-persisted")
    with fb.open_store("fs_hardlink", path=ctx.scratch("scale-temp"), fsync=False) as store:
        tracked = store.track_path(location)  # creates the shard directories
        pool: fb.FBPool[bytes] = fb.FBPool(store, max_items=2)
        handle = pool.insert(b"a small persisted item")
        key = handle.persist(tracked)
        blob = (location / key.hex[:2] / key.hex).read_bytes()
    for _ in range(keys - 1):
        name = uuid.uuid4().hex
        with open(location / name[:2] / name, "wb") as file:
            file.write(blob)
    return location


def _listing(location: Path) -> int:
    """Entries in the 256 shard directories, listed with ``os.scandir``."""
    count = 0
    for shard in range(256):
        with os.scandir(location / f"{shard:02x}") as entries:
            count += sum(1 for _ in entries)
    return count


def _track(ctx: Context, location: Path, expected: int) -> float:
    with fb.open_store("fs_hardlink", path=ctx.scratch("scale-track"), fsync=False) as store:
        with ctx.profile("track_path"):
            started = time.perf_counter()
            tracked = store.track_path(location)
            seconds = time.perf_counter() - started
        if len(tracked) != expected:
            raise RuntimeError(f"track_path found {len(tracked)} keys, expected {expected}")
    return seconds


def _import_once() -> tuple[float, list[str]]:
    done = subprocess.run([sys.executable, "-c", IMPORT_CHILD], capture_output=True, text=True, check=True, timeout=120)
    figures = json.loads(done.stdout)
    return float(figures["seconds"]), list(figures["heavy"])


def run(ctx: Context) -> Section:
    """track_path seconds and import milliseconds."""
    sizes = SIZES[ctx.mode]
    reduced = "" if sizes.keys == FULL_KEYS else f" (the full run's is {FULL_KEYS}; extrapolated linearly)"
    section = Section(
        "scale",
        TITLE,
        f"track_path over {sizes.keys} persisted keys{reduced}, {ctx.repeats} repeats; "
        f"{sizes.imports} fresh interpreters importing file_backed",
    )
    location = _populate(ctx, sizes.keys)
    tracks: list[float] = []
    listings: list[float] = []
    for repeat in range(ctx.repeats):
        for kind in ("track", "list") if repeat % 2 == 0 else ("list", "track"):
            if kind == "track":
                tracks.append(_track(ctx, location, sizes.keys))
            else:
                started = time.perf_counter()
                _listing(location)
                listings.append(time.perf_counter() - started)
    scale = FULL_KEYS / sizes.keys
    section.rows.append(
        Row(
            workload="scale",
            metric=f"track_path, {sizes.keys} keys",
            unit="s",
            runs=tuple(tracks),
            other_name="os.scandir of the shards",
            other_runs=tuple(listings),
        )
    )
    section.rows.append(
        Row(
            workload="scale",
            metric=f"track_path per {FULL_KEYS} keys",
            unit="s",
            runs=tuple(t * scale for t in tracks),
            target=Target("value", "<=", 1.0, "<= 1 s"),
            indicative=scale != 1,
            note="" if scale == 1 else f"measured on {sizes.keys} keys, scaled x{scale:g}",
        )
    )
    _import_once()  # warm-up: bytecode caches and the OS file cache
    imports = [_import_once() for _ in range(sizes.imports)]
    milliseconds = [seconds * 1e3 for seconds, _ in imports]
    heavy = sorted({name for _, names in imports for name in names})
    section.rows.append(
        Row(
            workload="scale",
            metric="import file_backed",
            unit="ms",
            runs=tuple(milliseconds),
            target=Target("value", "<=", 150.0, "<= 150 ms"),
        )
    )
    section.rows.append(
        Row(
            workload="scale",
            metric="heavy modules imported (fsspec, numpy, rich)",
            unit="",
            runs=(float(len(heavy)),),
            target=Target("value", "<=", 0.0, "none of them"),
            note=", ".join(heavy) if heavy else "none",
        )
    )
    return section


TITLE = "Scale: track_path over many persisted keys; import time"
WORKLOADS = (Workload("scale", TITLE, run),)
