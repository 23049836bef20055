"""The pytest plugin (entry point group ``pytest11``): ``--fb-backend NAME`` runs the
conformance suite against the installed backend ``NAME``.

Loaded by every pytest run where file_backed is installed, so it does nothing
but add the options and, when ``--fb-backend`` is given, the suite's module
`file_backed.testing.named` to the paths pytest collects.
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
    if config.getoption("fb_backend"):
        named = str(Path(__file__).with_name("named.py"))
        if named not in config.args:
            config.args.append(named)
