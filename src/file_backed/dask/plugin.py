"""`CloseSpillMapping`: the worker plugin that removes a worker's spill area."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from distributed.diagnostics.plugin import WorkerPlugin

if TYPE_CHECKING:
    from distributed import Worker

    from file_backed.dask.mapping import SpillMapping

__all__ = ["CloseSpillMapping"]


class CloseSpillMapping(WorkerPlugin):
    """Closes a `SpillMapping` (its store and area) when its worker closes.

    ``Worker.close()`` never closes ``Worker.data``, but it tears down every
    worker plugin, also when a nanny restarts the worker. The mapping enters
    this plugin into its worker's plugins when it opens its store; it is never
    sent anywhere.
    """

    def __init__(self, mapping: SpillMapping) -> None:
        self.mapping = mapping

    async def teardown(self, worker: Worker) -> None:
        await asyncio.to_thread(self.mapping.close)
