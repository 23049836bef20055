"""The backend conformance suite, shipped for backend authors.

Two ways to run it against a backend:

* ``pytest --fb-backend NAME`` (options with ``--fb-option KEY=VALUE``) runs
  the suite against the installed backend ``NAME``; the ``pytest11`` entry
  point of this distribution adds the option.
* Subclass `BackendTests` in a test module and override its ``make_backend``
  fixture (and ``location`` / ``corrupt_blob`` where they apply), the way
  fsspec's ``fsspec.tests.abstract`` classes are used::

      import pytest
      from file_backed.testing import BackendTests, backend_by_name

      class TestMyBackend(BackendTests):
          @pytest.fixture
          def make_backend(self, tmp_path):
              return backend_by_name("mine", root=str(tmp_path / "temporary"))

Every test checks one point of the hook contract in API.md (see
`file_backed.hookspecs`). The suite needs pytest and hypothesis; it is
imported on first use, so the pytest plugin costs nothing otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

pytest.register_assert_rewrite("file_backed.testing.suite")

if TYPE_CHECKING:
    from file_backed.testing.suite import BackendFactory, BackendTests, BlobCorrupter, backend_by_name

__all__ = ["BackendFactory", "BackendTests", "BlobCorrupter", "backend_by_name"]


def __getattr__(name: str) -> Any:
    """Import the suite (and hypothesis) on first use, not when pytest loads the plugin."""
    if name in __all__:
        from file_backed.testing import suite

        return getattr(suite, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
