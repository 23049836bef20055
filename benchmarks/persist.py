"""Persist: a large item persisted by hard link against ``shutil.copyfile``.

The item is written to the temporary area first (untimed); each repeat
persists it into a new tracked location (tracking is untimed) and copies its
blob file with ``shutil.copyfile``, in alternating order.

Two variants: ``fsync=False``, the link alone against a plain copy; and the
default ``fsync=True``, where persisting fsyncs the blob before linking and
``store.fsync(tracked)`` makes the name durable, against a copy followed by an
fsync of the file and of its directory. The durable variant writes a new item
per repeat, right before persisting or copying it, so its pages are dirty and
the persist's fsync has the whole item to flush.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import file_backed as fb

from .common import Context, MiB, Row, Section, Target, Workload

__all__ = ["WORKLOADS"]


@dataclass(frozen=True)
class PersistSizes:
    """Item size and repeats of the durable (fsync) variant."""

    item_bytes: int
    durable_repeats: int


SIZES = {
    "smoke": PersistSizes(1 * MiB, 1),
    "quick": PersistSizes(64 * MiB, 1),
    "full": PersistSizes(512 * MiB, 3),
}


def _blob_file(store: fb.BackingStore, key: uuid.UUID) -> Path:
    """The temporary-area file of `key` (the documented fs_hardlink layout)."""
    root: Path = store.backend.root  # type: ignore[attr-defined]
    return root / key.hex[:2] / key.hex


def _fsync(path: Path, *, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_only(ctx: Context, data: np.ndarray) -> tuple[list[float], list[float]]:
    """Seconds per persist (fsync=False) and per copy, one of each per repeat."""
    persists: list[float] = []
    copies: list[float] = []
    with fb.open_store("fs_hardlink", path=ctx.scratch("persist-temp"), fsync=False) as store:
        pool: fb.FBPool[np.ndarray] = fb.FBPool(store, max_items=2)
        handle = pool.insert(data)
        handle.write_now()
        source = _blob_file(store, handle.key)
        for repeat in range(ctx.repeats):
            for kind in ("link", "copy") if repeat % 2 == 0 else ("copy", "link"):
                ctx.settle()
                if kind == "link":
                    tracked = store.track_path(ctx.scratch("persist-link"))
                    with ctx.profile("persist"):
                        started = time.perf_counter()
                        handle.persist(tracked)
                        persists.append(time.perf_counter() - started)
                else:
                    target = ctx.scratch("persist-copy") / "copy"
                    started = time.perf_counter()
                    shutil.copyfile(source, target)
                    copies.append(time.perf_counter() - started)
        del handle
    return persists, copies


def _durable(ctx: Context, data: np.ndarray, repeats: int) -> tuple[list[float], list[float]]:
    """Seconds per durable persist (fsync=True, then store.fsync) and per copy+fsync."""
    persists: list[float] = []
    copies: list[float] = []
    with fb.open_store("fs_hardlink", path=ctx.scratch("durable-temp"), fsync=True) as store:
        pool: fb.FBPool[np.ndarray] = fb.FBPool(store, max_items=2)
        for repeat in range(repeats):
            for kind in ("link", "copy") if repeat % 2 == 0 else ("copy", "link"):
                ctx.settle()
                handle = pool.insert(data)
                handle.write_now()  # its pages are dirty, as after any recent write
                if kind == "link":
                    tracked = store.track_path(ctx.scratch("durable-link"))
                    started = time.perf_counter()
                    handle.persist(tracked)
                    store.fsync(tracked)
                    persists.append(time.perf_counter() - started)
                else:
                    target_dir = ctx.scratch("durable-copy")
                    started = time.perf_counter()
                    shutil.copyfile(_blob_file(store, handle.key), target_dir / "copy")
                    _fsync(target_dir / "copy")
                    _fsync(target_dir, directory=True)
                    copies.append(time.perf_counter() - started)
                del handle
    return persists, copies


def run(ctx: Context) -> Section:
    """Persist by hard link against copying, without and with fsync."""
    sizes = SIZES[ctx.mode]
    size = f"{sizes.item_bytes // MiB} MiB"
    note = "" if sizes.item_bytes == 512 * MiB else f" (the full run's item is 512 MiB; {ctx.mode} mode uses {size})"
    section = Section(
        "persist",
        TITLE,
        f"one item of {size}{note}; {ctx.repeats} repeats without fsync, {sizes.durable_repeats} with",
    )
    data = np.random.default_rng(ctx.seed).integers(0, 256, sizes.item_bytes, dtype=np.uint8)
    persists, copies = _link_only(ctx, data)
    section.rows.append(
        Row(
            workload="persist",
            metric=f"persist {size}, fsync=False",
            unit="ms",
            runs=tuple(t * 1e3 for t in persists),
            other_name="shutil.copyfile",
            other_runs=tuple(t * 1e3 for t in copies),
            target=Target("ratio", "<=", 0.01, "<= 0.01x copy (100x faster)"),
            indicative=sizes.item_bytes != 512 * MiB,
        )
    )
    section.rows.append(
        Row(
            workload="persist",
            metric=f"persist {size}, fsync=False",
            unit="ms",
            runs=tuple(t * 1e3 for t in persists),
            target=Target("value", "<=", 1.0, "<= 1 ms"),
        )
    )
    durable, durable_copies = _durable(ctx, data, sizes.durable_repeats)
    section.rows.append(
        Row(
            workload="persist",
            metric=f"persist {size}, fsync=True + store.fsync",
            unit="ms",
            runs=tuple(t * 1e3 for t in durable),
            other_name="copyfile + fsync",
            other_runs=tuple(t * 1e3 for t in durable_copies),
            note="the default, durable persist: fsync of the blob and syncfs of the location",
        )
    )
    section.notes.append("copies read the blob from the page cache (it was just written)")
    return section


TITLE = "Persist: hard link vs shutil.copyfile"
WORKLOADS = (Workload("persist", TITLE, run),)
