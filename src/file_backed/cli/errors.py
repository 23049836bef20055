"""How the command line reports failures: one clear message on stderr and exit
status 1, never a traceback unless ``file-backed --debug`` is given."""

from __future__ import annotations

from typing import Any

import click

from file_backed.errors import FileBackedError

__all__ = ["DEBUG_KEY", "FileBackedGroup"]

#: The `click.Context.meta` key holding the ``--debug`` flag.
DEBUG_KEY = "file_backed.debug"


class FileBackedGroup(click.Group):
    """A command group whose subcommands' exceptions become one message and exit status 1.

    The command list of ``--help`` shows each command's first sentence whole.
    Click's own exceptions (usage errors, `click.ClickException`, aborts and
    exits) keep their usual handling. With ``--debug`` (stored in
    ``ctx.meta[DEBUG_KEY]`` by the group's callback) exceptions propagate
    with their traceback. Failures the library documents (`FileBackedError`,
    `OSError`) print their message; anything else also names its type, as it
    is probably a bug.
    """

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands with the whole first sentence of their help, wrapped
        instead of cut off with "..." at the terminal's width."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            if ctx.meta.get(DEBUG_KEY):
                raise
            from rich.console import Console
            from rich.text import Text

            console = Console(stderr=True, highlight=False, soft_wrap=True)
            message = str(error) or type(error).__name__
            if not isinstance(error, FileBackedError | OSError):
                message = f"{type(error).__name__}: {message} (run file-backed --debug … for the traceback)"
            console.print(Text.assemble(("error: ", "bold red"), message))
            ctx.exit(1)
