"""`SpillingWorker`: a Dask worker whose data is a `SpillMapping` by default."""

from __future__ import annotations

from typing import Any

import distributed

from file_backed.dask.mapping import SpillMapping

__all__ = ["SpillingWorker"]


class SpillingWorker(distributed.Worker):
    """A ``distributed.Worker`` that spills through file_backed unless given
    ``data=``, configured by the Dask configuration namespace ``file_backed``
    (a YAML file, or ``DASK_FILE_BACKED__...`` environment variables).

    For the command line, where ``data=`` cannot be given::

        DASK_FILE_BACKED__OPTIONS__PATH=/scratch/spill \\
            dask worker tcp://scheduler:8786 --worker-class file_backed.dask.SpillingWorker
    """

    def __init__(self, *args: Any, data: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, data=(SpillMapping, {}) if data is None else data, **kwargs)
