"""The conformance suite against the backend named by ``--fb-backend`` (collected
only when that option is given; see `file_backed.testing.plugin`)."""

from __future__ import annotations

import pytest

from file_backed.testing.suite import BackendFactory, BackendTests, backend_by_name

__all__ = ["TestNamedBackend"]


def _options(pairs: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise pytest.UsageError(f"--fb-option expects KEY=VALUE, got {pair!r}")
        options[key] = value
    return options


class TestNamedBackend(BackendTests):
    """`BackendTests` against ``--fb-backend NAME`` with the ``--fb-option`` options."""

    @pytest.fixture
    def make_backend(self, request: pytest.FixtureRequest) -> BackendFactory:
        name = request.config.getoption("fb_backend")
        if not name:
            pytest.skip("pass --fb-backend NAME to run the conformance suite against a backend")
        return backend_by_name(str(name), **_options(request.config.getoption("fb_option")))
