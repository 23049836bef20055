"""Developer tasks, each creating its own virtual environment.

python3 -m pip install nox && python3 -m nox -s demo    # the main job
python3 -m pip install nox && python3 -m nox -s tests   # the whole test suite
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests"]

ROOT = Path(__file__).parent


def _distributions() -> list[str]:
    """pip arguments installing the core and every bundled plugin and example in editable mode."""
    arguments = ["-e", ".[test]"]
    for folder in ("plugins", "examples"):
        for project in sorted((ROOT / folder).glob("*/pyproject.toml")):
            arguments += ["-e", str(project.parent.relative_to(ROOT))]
    return arguments


@nox.session
def tests(session: nox.Session) -> None:
    """Install everything and run the whole test suite (pass pytest arguments after --)."""
    session.install(*_distributions())
    session.run("pytest", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Install what the demo needs (the core and the default backend, fs_hardlink) and run
    `file-backed demo` (arguments after -- go to it)."""
    session.install("-e", ".", "-e", "plugins/fs_hardlink")
    session.run("file-backed", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Install the library with its benchmark peers and run `file-backed bench`."""
    session.install(*_distributions(), "-e", ".[bench]")
    session.run("file-backed", "bench", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Type-check and lint."""
    session.install(*_distributions(), "-e", ".[dev]")
    session.run("mypy")
    session.run("ruff", "check", "src", "plugins", "tests")
