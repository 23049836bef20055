"""The ``file-backed`` command line. Each command lives in its own module."""

from __future__ import annotations

import click

from file_backed.cli.bench import bench
from file_backed.cli.check import check
from file_backed.cli.demo import demo
from file_backed.cli.errors import DEBUG_KEY, FileBackedGroup
from file_backed.cli.inspect import ls, verify
from file_backed.cli.plugins import plugins

__all__ = ["main"]


@click.group(cls=FileBackedGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="file-backed", prog_name="file-backed", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show the traceback of an error instead of one message.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """file_backed: large objects in an in-memory pool backed by a pluggable store."""
    ctx.meta[DEBUG_KEY] = debug


main.add_command(demo)
main.add_command(ls)
main.add_command(verify)
main.add_command(plugins)
main.add_command(check)
main.add_command(bench)
