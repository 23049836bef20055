"""What every workload shares: modes and repeats, result rows and targets,
scratch directories, timing, page-cache reporting, optional peers, profiling.

Every workload module exposes ``NAME`` (the ``--only`` name), ``TITLE`` and
``run(ctx: Context) -> Section``. A `Section` holds `Row` objects, each one
figure of the library side by side with one comparison figure (a peer or the
raw-disk floor) measured in the same run, and the sizes the run used.
"""

from __future__ import annotations

import contextlib
import cProfile
import gc
import importlib
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

__all__ = [
    "REPEATS",
    "Context",
    "KiB",
    "MiB",
    "Mode",
    "Row",
    "Section",
    "Target",
    "Workload",
    "available_memory",
    "median",
    "optional_peer",
    "page_cache_note",
    "spread",
    "timed",
]

KiB = 1 << 10
MiB = 1 << 20

#: ``smoke``: tiny sizes that only prove the suite runs (figures meaningless);
#: ``quick``: the default, under a minute; ``full``: the documented sizes.
Mode = Literal["smoke", "quick", "full"]
REPEATS: dict[str, int] = {"smoke": 1, "quick": 3, "full": 5}


@dataclass(frozen=True)
class Target:
    """A target for one row (docs/benchmarks.md).

    `on` is ``"ratio"`` (the library's figure divided by the comparison figure)
    or ``"value"`` (the library's figure itself, in the row's unit); `op` is
    ``"<="`` or ``">="``. `text` states it.
    """

    on: Literal["ratio", "value"]
    op: Literal["<=", ">="]
    bound: float
    text: str

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        """Whether the target is met; None when the figure it needs is missing."""
        figure = ratio if self.on == "ratio" else value
        if figure is None:
            return None
        return figure <= self.bound if self.op == "<=" else figure >= self.bound


@dataclass(frozen=True)
class Row:
    """One figure of the library and, optionally, one comparison figure.

    `runs` and `other_runs` are every repeat's figure in `unit`; `value` and
    `other` are their medians, and `ratio` is ``value / other``. `indicative`
    marks a target checked at reduced (quick-mode) sizes.
    """

    workload: str
    metric: str
    unit: str
    runs: tuple[float, ...]
    other_name: str = ""
    other_runs: tuple[float, ...] = ()
    target: Target | None = None
    indicative: bool = False
    note: str = ""

    @property
    def value(self) -> float | None:
        return median(self.runs) if self.runs else None

    @property
    def other(self) -> float | None:
        return median(self.other_runs) if self.other_runs else None

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.other is None or self.other == 0:
            return None
        return self.value / self.other

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.value, self.ratio)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready mapping of every field plus `ratio` and `met`."""
        return {
            "workload": self.workload,
            "metric": self.metric,
            "unit": self.unit,
            "value": self.value,
            "runs": list(self.runs),
            "other_name": self.other_name or None,
            "other": self.other,
            "other_runs": list(self.other_runs),
            "ratio": self.ratio,
            "target": None if self.target is None else self.target.text,
            "met": self.met,
            "indicative": self.indicative,
            "note": self.note or None,
        }


@dataclass(frozen=True)
class Workload:
    """A named workload: `run` measures it and returns its `Section`. An
    `opt_in` workload runs only when named (``--only``): it needs optional
    packages or servers and takes minutes."""

    name: str
    title: str
    run: Callable[[Context], Section]
    opt_in: bool = False


@dataclass
class Section:
    """The result of one workload: its rows, the sizes it ran with and notes
    (page cache, skipped peers, reduced sizes)."""

    name: str
    title: str
    sizes: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Context:
    """Run-wide settings and resources handed to every workload.

    Scratch directories are fresh per call of `scratch` and are all removed by
    `close`, at the end of the suite, after the calls registered with `defer`
    (closing stores), so mass deletes never slow down the file creation of a
    later measurement (ext4 does that for ~30 s). With
    `profile_dir`, `profile` collects cProfile statistics of the library's
    measured sections, written and summarised by `close`.
    """

    def __init__(self, mode: Mode, *, drop_caches: bool, profile_dir: Path | None = None, seed: int = 1) -> None:
        self.mode: Mode = mode
        self.repeats = REPEATS[mode]
        self.seed = seed
        self.drop_caches = drop_caches
        self.caches_dropped = 0
        self.profile_dir = profile_dir
        self._profiles: dict[str, cProfile.Profile] = {}
        self._deferred: list[tuple[Callable[[], object], tuple[object, ...]]] = []
        self._root = Path(tempfile.mkdtemp(prefix="file_backed-bench-", dir=os.environ.get("FILE_BACKED_BENCH_DIR")))
        self._count = 0

    def scratch(self, label: str) -> Path:
        """A new empty directory under `root`."""
        self._count += 1
        path = self._root / f"{self._count:04d}-{label}"
        path.mkdir()
        return path

    def settle(self, *, drop: bool = True) -> None:
        """Between two measured runs: collect garbage and freeze what survives
        (``gc.freeze``: what earlier runs keep alive until the end of the suite,
        such as the deferred stores' handles, is no longer walked by the next
        run's collections, as in a fresh process), write dirty pages back
        (``sync``) so one run's writeback does not land on the next, and when
        `drop` and `drop_caches` (``--full``) also drop the page cache (when
        permitted; counted in `caches_dropped`)."""
        gc.collect()
        gc.freeze()
        os.sync()
        if drop and self.drop_caches:
            try:
                with open("/proc/sys/vm/drop_caches", "w") as control:
                    control.write("1\n")
            except OSError:
                self.drop_caches = False
            else:
                self.caches_dropped += 1

    @contextlib.contextmanager
    def profile(self, label: str) -> Iterator[None]:
        """Profile the enclosed library code under `label` when profiling is on."""
        if self.profile_dir is None:
            yield
            return
        profiler = self._profiles.setdefault(label, cProfile.Profile())
        profiler.enable()
        try:
            yield
        finally:
            profiler.disable()

    def profile_summaries(self, top: int = 15) -> dict[str, str]:
        """Write every collected profile to ``<profile_dir>/<label>.pstats`` and
        return, per label, the `top` functions by internal time as text."""
        summaries: dict[str, str] = {}
        if self.profile_dir is None:
            return summaries
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        for label, profiler in self._profiles.items():
            profiler.dump_stats(self.profile_dir / f"{label}.pstats")
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
            summaries[label] = text.getvalue()
        return summaries

    def defer(self, fn: Callable[[], object], *keep: object) -> None:
        """Call ``fn()`` at the end of the suite, keeping `keep` alive until then.

        Stores are closed this way with their handles alive: closing deletes
        the blobs of live handles, and a mass delete must not precede a
        measurement."""
        self._deferred.append((fn, keep))

    def close(self) -> None:
        """Run the deferred calls, return frozen objects to the collector, then
        remove every scratch directory."""
        deferred, self._deferred = self._deferred, []
        try:
            for fn, _ in deferred:
                fn()
        finally:
            gc.unfreeze()
            shutil.rmtree(self._root, ignore_errors=True)


def timed(fn: Callable[..., object], *args: Any) -> float:
    """Seconds taken by ``fn(*args)`` (garbage collection is left enabled)."""
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def median(values: list[float] | tuple[float, ...]) -> float:
    """The median of non-empty `values`."""
    return statistics.median(values)


def spread(values: list[float] | tuple[float, ...]) -> float:
    """``(max - min) / median`` of `values`: the relative spread of the repeats."""
    middle = statistics.median(values)
    return (max(values) - min(values)) / middle if middle else 0.0


def run_child(code: str, argument: object, *, what: str, timeout: float) -> dict[str, Any]:
    """Run the Python source `code` in a fresh interpreter with `argument` as JSON
    in ``sys.argv[1]``; returns the JSON object its last line of output prints.
    Raises `RuntimeError` naming `what`, with the end of its stderr, when it fails."""
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(argument)], capture_output=True, text=True, check=False, timeout=timeout
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-4000:]}")
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def optional_peer(name: str) -> ModuleType | None:
    """The peer module `name`, or None when it is not installed (peers are the
    ``bench`` extra, not runtime dependencies)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def available_memory() -> int:
    """``MemAvailable`` from /proc/meminfo in bytes (0 where unknown)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * KiB
    except OSError:
        pass
    return 0


def page_cache_note(ctx: Context, data_bytes: int) -> str:
    """Say whether reads of `data_bytes` written during a run were served from
    the page cache: they were when the data fits in available memory, since
    every blob is read back while its written pages are still cached."""
    available = available_memory()
    fits = available and data_bytes < available // 2
    dropped = (
        "; the page cache was dropped before each run, so every run starts cold"
        if ctx.drop_caches
        else "; caches not dropped, dirty pages synced before each run"
    )
    if fits:
        return (
            f"reads served from the page cache: {data_bytes / MiB:.0f} MiB written per run, "
            f"{available / MiB:.0f} MiB available{dropped}"
        )
    return (
        f"reads partly from disk: {data_bytes / MiB:.0f} MiB written per run, "
        f"only {available / MiB:.0f} MiB available{dropped}"
    )
