"""The ``file-backed`` command line. Each command lives in its own module."""

from __future__ import annotations

import click

from file_backed.cli.demo import demo
from file_backed.cli.inspect import ls, verify

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """file_backed: large objects in an in-memory pool backed by a pluggable store."""


main.add_command(demo)
main.add_command(ls)
main.add_command(verify)
