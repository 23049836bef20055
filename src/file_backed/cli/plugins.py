"""``file-backed plugins``: the installed backends, codecs and middleware."""

from __future__ import annotations

import json

import attrs
import click

from file_backed.plugins import BACKENDS_GROUP, CODECS_GROUP, PLUGINS_GROUP, PluginInfo, installed, refresh

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
    #: None when the entry point loads, else why it does not.
    error: str | None


def _row(kind: str, info: PluginInfo) -> PluginRow:
    try:
        info.entry_point.load()
    except Exception as error:  # noqa: BLE001 - a broken plugin is reported, not fatal
        problem: str | None = f"{type(error).__name__}: {error}"
    else:
        problem = None
    return PluginRow(kind, info.name, info.distribution, info.version, info.value, problem)


def plugin_rows() -> list[PluginRow]:
    """Every installed plugin, loaded to check it, by kind then name."""
    refresh()
    return [_row(kind, info) for kind, group in _SECTIONS for info in sorted(installed(group).values(), key=_by_name)]


def _by_name(info: PluginInfo) -> str:
    return info.name


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of tables.")
def plugins(as_json: bool) -> None:
    """List installed backends, codecs and middleware with their distributions.

    Exits with status 1 when an entry point fails to load.
    """
    rows = plugin_rows()
    if as_json:
        click.echo(json.dumps([attrs.asdict(row) for row in rows], indent=2))
    else:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        console = Console(highlight=False)
        for kind, _group in _SECTIONS:
            table = Table(title=kind, title_justify="left", title_style="bold")
            for column in ("name", "distribution", "version", "entry point", "status"):
                table.add_column(column, overflow="fold")
            for row in rows:
                if row.kind == kind:
                    status = Text("ok", "green") if row.error is None else Text(f"broken: {row.error}", "red")
                    cells = (row.name, row.distribution or "?", row.version or "?", row.target)
                    table.add_row(*(Text(cell) for cell in cells), status)
            if not table.row_count:
                table.add_row("(none installed)", "", "", "", "")
            console.print(table)
    if any(row.error is not None for row in rows):
        raise click.exceptions.Exit(1)
