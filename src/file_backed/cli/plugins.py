"""``file-backed plugins``: the installed backends, codecs and middleware."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import attrs
import click

from file_backed.errors import PluginNotFoundError, PluginNotInstalledError
from file_backed.plugins import (
    BACKENDS_GROUP,
    CODECS_GROUP,
    PLUGINS_GROUP,
    PluginInfo,
    installed,
    load_entry_point,
    refresh,
)

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["PluginRow", "plugin_rows", "plugins"]

_SECTIONS = (("backends", BACKENDS_GROUP), ("codecs", CODECS_GROUP), ("middleware", PLUGINS_GROUP))


@attrs.frozen
class PluginRow:
    """One installed plugin as the command shows it."""

    kind: str
    name: str
    distribution: str | None
    version: str | None
    target: str
    #: None when the entry point loads and meets its contract, else why it does not.
    error: str | None
    #: When an optional dependency is missing (not an error): the command that installs it.
    not_installed: str | None = None


def _row(kind: str, info: PluginInfo) -> PluginRow:
    problem = missing = None
    try:
        load_entry_point(info, others=[])
    except PluginNotInstalledError as error:
        missing = error.hint
    except PluginNotFoundError as error:
        problem = error.detail
    return PluginRow(kind, info.name, info.distribution, info.version, info.value, problem, missing)


def plugin_rows() -> list[PluginRow]:
    """Every installed plugin, loaded to check it, by kind then name."""
    refresh()
    return [_row(kind, info) for kind, group in _SECTIONS for info in sorted(installed(group).values(), key=_by_name)]


def _by_name(info: PluginInfo) -> str:
    return info.name


def _status(row: PluginRow) -> Text:
    from rich.text import Text

    if row.error is not None:
        return Text(f"broken: {row.error}", "red")
    if row.not_installed is not None:
        return Text(f"not installed — {row.not_installed}", "yellow")
    return Text("ok", "green")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of tables.")
def plugins(as_json: bool) -> None:
    """List installed backends, codecs and middleware with their distributions.

    An optional plugin whose dependency is missing (the numpy codec without
    numpy) is listed as not installed, with the command that installs it.
    Exits with status 1 when an entry point fails to load or breaks its contract.
    """
    rows = plugin_rows()
    if as_json:
        click.echo(json.dumps([attrs.asdict(row) for row in rows], indent=2))
    else:
        from rich import box
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        console = Console(highlight=False)
        for kind, _group in _SECTIONS:
            table = Table(title=kind, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD)
            table.add_column("name", no_wrap=True)
            table.add_column("distribution", overflow="fold")
            table.add_column("entry point", overflow="fold", style="dim")
            table.add_column("status", overflow="fold", ratio=1, min_width=20)
            for row in rows:
                if row.kind == kind:
                    origin = f"{row.distribution or '?'} {row.version or '?'}"
                    table.add_row(Text(row.name), Text(origin), Text(row.target), _status(row))
            if not table.row_count:
                table.add_row("(none installed)", "", "", "")
            console.print(table)
    if any(row.error is not None for row in rows):
        raise click.exceptions.Exit(1)
