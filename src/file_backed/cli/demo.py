"""``file-backed demo``: the main job on the embedded default backend.

Several times more data than the pool's memory budget flows through a pool on
fs_hardlink in a temporary directory: every item is inserted, then read back in
a skewed random order and checked; a tenth is persisted, and a fresh store
registers and checks them, as after a restart.
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from pathlib import Path

import click
import xxhash
from rich.console import Console
from rich.table import Table

import file_backed as fb
from file_backed.cli.progress import progress_bar
from file_backed.sizes import format_size
from file_backed.stats_table import stats_rows

__all__ = ["demo"]

MiB = 1 << 20


def _digest(value: bytes | bytearray) -> int:
    return xxhash.xxh3_64_intdigest(value)


@click.command()
@click.option(
    "--items", default=400, type=click.IntRange(min=1), show_default=True, help="Items flowing through the pool."
)
@click.option(
    "--item-kib", default=256, type=click.IntRange(min=1), show_default=True, help="Size of each item in KiB."
)
@click.option(
    "--pool-items", default=40, type=click.IntRange(min=1), show_default=True, help="Items the pool keeps in memory."
)
@click.option(
    "--reads", default=2000, type=click.IntRange(min=0), show_default=True, help="Random reads after the inserts."
)
@click.option("--seed", default=0, show_default=True, help="Seed of the read order.")
@click.option("--fsync/--no-fsync", default=True, show_default=True, help="fs_hardlink's fsync option.")
def demo(items: int, item_kib: int, pool_items: int, reads: int, seed: int, fsync: bool) -> None:
    """More data than the memory budget flows through a pool on fs_hardlink."""
    console = Console()
    size = item_kib * 1024
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="file_backed-demo-") as scratch:
        persisted = Path(scratch) / "persisted"
        started = time.perf_counter()
        with fb.open_store("fs_hardlink", fsync=fsync) as store:
            console.print(
                f"[bold]file_backed demo[/]: {items} items of {item_kib} KiB "
                f"({_size(items * size)}) through a pool of {pool_items} items "
                f"({_size(pool_items * size)}) on fs_hardlink at {store.backend.root}"  # type: ignore[attr-defined]
            )
            pool: fb.FBPool[bytearray] = fb.FBPool(store, max_items=pool_items)
            handles: list[fb.Fb[bytearray]] = []
            digests: list[int] = []
            with progress_bar(console) as progress:
                task = progress.add_task("inserting", total=items)
                for _ in range(items):
                    value = bytearray(rng.randbytes(size))
                    digests.append(_digest(value))
                    handles.append(pool.insert(value))
                    progress.advance(task)
                task = progress.add_task("reading (skewed)", total=reads)
                weights = [1 / (rank + 1) ** 1.2 for rank in range(items)]
                order = rng.sample(range(items), items)
                for index in rng.choices(order, weights=weights, k=reads):
                    with handles[index].load() as value:
                        if _digest(value) != digests[index]:
                            raise click.ClickException(f"item {index} came back changed")
                    progress.advance(task)
                tracked = store.track_path(persisted)
                chosen = rng.sample(range(items), max(1, items // 10))
                task = progress.add_task("persisting", total=len(chosen))
                keys = {}
                for index in chosen:
                    keys[handles[index].persist(tracked)] = digests[index]
                    progress.advance(task)
                store.fsync(tracked)
            stats = pool.stats
            del handles, value
            store.finished()
        elapsed = time.perf_counter() - started
        restored = _restore(persisted, keys)
    _summary(console, items, size, pool_items, reads, stats, elapsed, restored, len(keys))
    if not fsync:
        console.print("[yellow]fsync off[/]: persisted items survive a crash of the process, not of the machine")


def _size(size: int) -> str:
    return format_size(size, exact=False)


def _restore(persisted: Path, keys: dict[uuid.UUID, int]) -> int:
    """Register every persisted key in a fresh store and count those that match."""
    with fb.open_store("fs_hardlink") as store:
        tracked = store.track_path(persisted)
        pool: fb.FBPool[bytearray] = fb.FBPool(store, max_items=8)
        good = 0
        for key, digest in keys.items():
            handle = pool.register(tracked, key)
            if handle is not None and _digest(handle.get()) == digest:
                good += 1
        return good


def _summary(
    console: Console,
    items: int,
    size: int,
    pool_items: int,
    reads: int,
    stats: fb.PoolStats,
    elapsed: float,
    restored: int,
    persisted: int,
) -> None:
    table = Table(title="summary", show_header=False)
    table.add_column(justify="right", style="bold")
    table.add_column()
    table.add_row("items", f"{items} x {size // 1024} KiB = {_size(items * size)}")
    table.add_row("memory budget", f"{pool_items} items = {_size(pool_items * size)}")
    table.add_row("reads", f"{reads}, every one checked")
    for label, value in stats_rows(stats):
        table.add_row(label, value)
    table.add_row("persisted, restored", f"{persisted}, {restored} registered in a new store and checked")
    table.add_row(
        "time",
        f"{elapsed:.2f} s ({(stats.bytes_stored + stats.bytes_loaded) / MiB / elapsed:.0f} MiB/s through the store)",
    )
    console.print(table)
    if restored != persisted:
        raise click.ClickException(f"only {restored} of {persisted} persisted items came back intact")
