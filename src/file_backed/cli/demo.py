"""``file-backed demo``: the main job (filled in below)."""

from __future__ import annotations

import click

__all__ = ["demo"]


@click.command()
def demo() -> None:
    """More data than the memory budget flows through a pool on the default backend."""
