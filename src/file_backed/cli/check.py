"""``file-backed check [CONFIG]``: validate a configuration and try its store."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import click

from file_backed.codecs.base import Codec
from file_backed.config import FileBackedConfig, format_size, load_config, open_pool
from file_backed.errors import BlobNotFoundError
from file_backed.metrics import HookMetrics, find_metrics
from file_backed.opening import make_codec
from file_backed.redaction import redacted

__all__ = ["CheckReport", "check", "probe_value", "run_check"]

R = TypeVar("R")


@attrs.frozen
class CheckReport:
    """What `run_check` did: the configuration, each step's duration, and the
    metrics middleware's snapshot when it was enabled."""

    config: FileBackedConfig
    steps: tuple[tuple[str, float], ...]
    metrics: Mapping[str, HookMetrics] | None


def _encoding(codec: Codec, value: Any) -> bytes:
    return b"".join(bytes(memoryview(buffer).cast("B")) for buffer in codec.encode(value))


def _candidates() -> Iterator[Any]:
    yield {"probe": "file_backed check", "numbers": [1, 2, 3]}
    yield b"file_backed check probe"
    try:
        import numpy as np
    except ImportError:
        return
    yield np.arange(16, dtype=np.int64)


def probe_value(codec: Codec) -> Any:
    """A small value `codec` can encode: a dict, bytes or a numpy array, the first
    that works. Raises `click.ClickException` when none does."""
    for value in _candidates():
        try:
            _encoding(codec, value)
        except (TypeError, ValueError):
            continue
        return value
    raise click.ClickException(f"codec {codec.name!r} encodes none of the probe values (a dict, bytes, an array)")


def run_check(source: str | Path | None) -> CheckReport:
    """Load the configuration, open its store, and write, read back and delete one
    probe item through the backend's hooks, timing each step.

    Raises what the library raises (`ConfigError`, `OSError`, …) and
    `click.ClickException` when the probe comes back different or survives
    its deletion.
    """
    steps: list[tuple[str, float]] = []

    def timed(step: str, action: Callable[[], R]) -> R:
        start = time.perf_counter()
        result = action()
        steps.append((step, time.perf_counter() - start))
        return result

    config = timed("load configuration", lambda: load_config(source))
    codec = make_codec(config.codec, dict(config.codec_options))
    value = probe_value(codec)
    pool = timed("open store", lambda: open_pool(config))
    store = pool.store
    key = uuid.uuid4()
    try:
        timed("write probe", lambda: store.hook.store(key=key, data=value))
        loaded = timed("read probe", lambda: store.hook.load(key=key))
        if _encoding(codec, loaded) != _encoding(codec, value):
            raise click.ClickException(f"the probe came back different: wrote {value!r}, read {loaded!r}")
        timed("delete probe", lambda: store.hook.delete(key=key))
        try:
            store.hook.load(key=key)
        except BlobNotFoundError:
            pass
        else:
            raise click.ClickException("the probe can still be loaded after its deletion")
    finally:
        timed("close store", store.close)
    recorder = find_metrics(store)
    return CheckReport(config, tuple(steps), dict(recorder.snapshot()) if recorder is not None else None)


def _print(report: CheckReport) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    config = report.config
    settings = Table(title="configuration", title_justify="left", title_style="bold", show_header=False)
    settings.add_column("key")
    settings.add_column("value")
    rows = {
        "source": config.source,
        "backend": config.backend,
        "codec": config.codec,
        "max_items": str(config.max_items),
        "max_bytes": format_size(config.max_bytes) if config.max_bytes is not None else "(no limit)",
        "workers": str(config.workers) if config.workers is not None else "(default)",
        "plugins": ", ".join(config.plugins) or "(none)",
        **{f"options.{name}": repr(redacted(value, name)) for name, value in config.options.items()},
        **{f"codec_options.{name}": repr(redacted(value, name)) for name, value in config.codec_options.items()},
    }
    for name, value in rows.items():
        settings.add_row(Text(name), Text(value))
    console.print(settings)
    steps = Table(title="steps", title_justify="left", title_style="bold")
    steps.add_column("step")
    steps.add_column("time", justify="right")
    for step, seconds in report.steps:
        steps.add_row(step, f"{seconds * 1000:.2f} ms")
    console.print(steps)
    if report.metrics is not None:
        hooks = Table(title="metrics (hook calls)", title_justify="left", title_style="bold")
        for column in ("hook", "calls", "errors", "mean", "p50 ≤", "max"):
            hooks.add_column(column, justify="left" if column == "hook" else "right")
        for hook, entry in sorted(report.metrics.items()):
            hooks.add_row(
                hook,
                str(entry.calls),
                str(entry.errors),
                f"{entry.mean_seconds * 1000:.3f} ms",
                f"{entry.quantile(0.5) * 1000:.3f} ms",
                f"{entry.max_seconds * 1000:.3f} ms",
            )
        console.print(hooks)
    console.print(Text("check passed", "bold green"))


@click.command()
@click.argument("config", required=False, type=click.Path(dir_okay=True, path_type=Path))
def check(config: Path | None) -> None:
    """Validate CONFIG, open its store, and write, read and delete a probe item.

    CONFIG is a file_backed.toml, a pyproject.toml with a [tool.file_backed]
    table, or a directory holding one. Without it, the configuration is
    searched from the current directory upward (the defaults apply when none
    is found). Exits with status 1 on any problem.
    """
    _print(run_check(config))
