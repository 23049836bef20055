"""Runs the workloads, prints one table of figures side by side with ratios,
and writes the JSON report.

Workloads run in a fixed order chosen for fair conditions: the ones that create
and delete the most files (W1, W2, scale) come last, and every scratch
directory is removed only at the end, so no measurement follows a mass delete.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from file_backed.cli.progress import progress_bar

from . import budget, dask_spill, disk_floor, hit_path, memory, persist, pool_workloads, s3_spill, scale, threads
from .common import REPEATS, Context, MiB, Mode, Row, Section, Workload, available_memory, spread

__all__ = ["NAMES", "WORKLOADS", "Report", "render", "run_suite", "write_json"]

WORKLOADS: tuple[Workload, ...] = (
    *hit_path.WORKLOADS,
    *disk_floor.WORKLOADS,
    *persist.WORKLOADS,
    *threads.WORKLOADS,
    *memory.WORKLOADS,
    *budget.WORKLOADS,
    *pool_workloads.WORKLOADS[::-1],  # W2, then W1
    *scale.WORKLOADS,
    *dask_spill.WORKLOADS,
    *s3_spill.WORKLOADS,
)
NAMES = tuple(workload.name for workload in WORKLOADS)


@dataclass
class Report:
    """Everything one run measured, with the conditions it ran under."""

    mode: Mode
    date: str
    machine: dict[str, Any]
    caches: str
    sections: list[Section] = field(default_factory=list)
    seconds: float = 0.0
    profiles: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> list[Row]:
        return [row for section in self.sections for row in section.rows]

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready mapping of the whole report (profiles excluded)."""
        return {
            "suite": "file_backed benchmarks",
            "date": self.date,
            "mode": self.mode,
            "repeats": REPEATS[self.mode],
            "machine": self.machine,
            "page_cache": self.caches,
            "seconds": self.seconds,
            "sections": [
                {
                    "name": section.name,
                    "title": section.title,
                    "sizes": section.sizes,
                    "seconds": section.seconds,
                    "notes": section.notes,
                    "rows": [row.as_json() for row in section.rows],
                }
                for section in self.sections
            ],
        }


def _revision() -> str | None:
    """``git describe --always --dirty`` of the checkout the library runs from,
    or None when it does not run from a git checkout."""
    import file_backed

    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(file_backed.__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _machine() -> dict[str, Any]:
    return {
        "library_revision": _revision(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_available_mib": available_memory() // MiB,
    }


def run_suite(
    mode: Mode,
    only: Sequence[str] = (),
    *,
    profile_dir: Path | None = None,
    console: Console | None = None,
) -> Report:
    """Run the workloads named in `only` (when empty, all but the opt-in ones:
    ``dask``, ``s3``) at the sizes of `mode` and return the report. Raises `ValueError` for an unknown name.

    In ``full`` mode the page cache is dropped before every measured run when
    this process may write ``/proc/sys/vm/drop_caches``; the report says
    whether it was. With `profile_dir`, the library's measured sections are
    profiled (their figures then include the profiler's overhead).
    """
    unknown = sorted(set(only) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    selected = [workload for workload in WORKLOADS if workload.name in only or (not only and not workload.opt_in)]
    ctx = Context(mode, drop_caches=mode == "full", profile_dir=profile_dir)
    report = Report(
        mode=mode,
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        machine=_machine(),
        caches="",
    )
    started = time.perf_counter()
    bar = progress_bar(console or Console(quiet=True), description_width=10)
    try:
        with bar:
            task = bar.add_task("workloads", total=len(selected))
            for workload in selected:
                if console is not None:
                    console.print(Text(f"running {workload.name}: {workload.title}", style="dim"))
                bar.update(task, description=workload.name)
                section_started = time.perf_counter()
                section = workload.run(ctx)
                section.seconds = time.perf_counter() - section_started
                report.sections.append(section)
                bar.advance(task)
            bar.update(task, description="done")
        report.profiles = ctx.profile_summaries()
    finally:
        ctx.close()
    report.seconds = time.perf_counter() - started
    if ctx.caches_dropped:
        report.caches = f"page cache dropped before each measured run ({ctx.caches_dropped} times)"
    elif mode == "full":
        report.caches = "page cache not dropped (not permitted); dirty pages synced before each run"
    else:
        report.caches = "page cache not dropped (only --full drops it); dirty pages synced before each run"
    return report


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "fraction":
        return f"{value:.1%}"
    if unit in ("/s", "MB/s", "ns"):
        return f"{value:,.0f} {unit}".replace(" /s", "/s")
    if unit == "ms":
        return f"{value:.3f} ms" if value < 10 else f"{value:,.1f} ms"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "MiB":
        return f"{value:,.1f} MiB"
    if unit == "GB/s":
        return f"{value:.2f} GB/s"
    return f"{value:g}"


def _ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"


def render(report: Report, console: Console) -> None:
    """Print the report: conditions, one table of every row, then each
    workload's sizes and notes."""
    machine = report.machine
    console.print(
        f"[bold]file_backed benchmarks[/], {report.mode} mode, medians of {REPEATS[report.mode]} repeats, "
        f"{report.date}; library {machine['library_revision'] or 'not from git'}; "
        f"Python {machine['python']}, {machine['cpus']} CPUs, "
        f"{machine['memory_available_mib']} MiB available; {report.seconds:.0f} s"
    )
    table = Table(show_lines=False, header_style="bold")
    for column, justify in (
        ("workload", "left"),
        ("metric", "left"),
        ("file_backed", "right"),
        ("spread", "right"),
        ("compared with", "left"),
        ("value", "right"),
        ("ratio", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for section in report.sections:
        for row in section.rows:
            cells = (
                row.workload,
                row.metric,
                _number(row.value, row.unit),
                f"±{spread(row.runs) / 2:.0%}" if len(row.runs) > 1 else "",
                row.other_name,
                _number(row.other, row.unit),
                _ratio(row.ratio),
            )
            table.add_row(*(Text(cell) for cell in cells))
        table.add_section()
    console.print(table)
    console.print("ratio = file_backed / compared value; spread = half the range of the repeats over their median")
    console.print(f"page cache: {report.caches}")
    for section in report.sections:
        console.print(Text.assemble((section.name, "bold"), f" ({section.seconds:.1f} s): {section.sizes}"))
        for note in section.notes:
            console.print(Text(f"  - {note}"))
        for row in section.rows:
            if row.note:
                console.print(Text(f"  - {row.metric}: {row.note}"))
    for label, summary in report.profiles.items():
        console.print(f"[bold]profile {label}[/] (top functions by internal time)")
        console.print(summary, markup=False, highlight=False)


def write_json(report: Report, path: Path) -> None:
    """Write `report` as JSON to `path`."""
    path.write_text(json.dumps(report.as_json(), indent=2) + "\n")
