"""The progress bars of the command line: description, bar, count, and the time
remaining while running, the time taken once finished."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["progress_bar"]


def progress_bar(
    console: Console,
    *,
    description_width: int = 22,
    transient: bool = False,
    get_time: Callable[[], float] | None = None,
) -> Progress:
    """A `rich.progress.Progress` whose finished tasks show their elapsed time
    (`get_time` is the clock, default `time.monotonic`)."""
    return Progress(
        TextColumn(f"{{task.description:<{description_width}}}"),
        BarColumn(bar_width=None if console.width < 80 else 30),
        MofNCompleteColumn(),
        TimeRemainingColumn(elapsed_when_finished=True),
        console=console,
        transient=transient,
        get_time=get_time,
    )
