"""The pytest plugin (entry point group ``pytest11``): ``--fb-backend NAME`` runs the
conformance suite against the installed backend ``NAME``.

Loaded by every pytest run where file_backed is installed, so it does nothing
but add the options and, when ``--fb-backend`` is given, check that the backend
is installed (a usage error listing the installed backends otherwise) and add
the suite's module `file_backed.testing.named` to the paths pytest collects.
Without explicit test paths on the command line, the suite is all that runs,
wherever pytest is started; with them, it runs beside them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["pytest_addoption", "pytest_configure"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("file_backed", "file_backed backend conformance suite")
    group.addoption(
        "--fb-backend",
        metavar="NAME",
        default=None,
        help="run the file_backed conformance suite against the installed backend NAME",
    )
    group.addoption(
        "--fb-option",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="an option for the backend factory of --fb-backend (repeatable; VALUE is text)",
    )


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("fb_backend")
    if not name:
        return
    _check_backend(str(name))
    named = str(Path(__file__).with_name("named.py"))
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        config.args[:] = [named]  # not the current directory's or testpaths' tests
    elif named not in config.args:
        config.args.append(named)


def _check_backend(name: str) -> None:
    """Raise `pytest.UsageError` unless `name` is an installed backend that loads."""
    from file_backed.errors import PluginNotFoundError
    from file_backed.plugins import get_backend, refresh

    refresh()
    try:
        get_backend(name)
    except PluginNotFoundError as error:
        raise pytest.UsageError(f"--fb-backend {name}: {error}") from None
