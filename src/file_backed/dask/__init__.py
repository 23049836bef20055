"""Dask workers spill through file_backed (``pip install 'file-backed[dask]'``).

>>> from distributed import LocalCluster  # doctest: +SKIP
>>> import file_backed.dask
>>> cluster = LocalCluster(memory_limit="4GiB", data=file_backed.dask.data(max_bytes="auto"))  # doctest: +SKIP

`data` returns what a Worker or Nanny accepts as ``data=``: the class
`SpillMapping` and its keyword arguments (picklable, so a nanny can hand it to
its worker process). See docs/dask.md.
"""

from __future__ import annotations

from typing import Any

from file_backed.dask.areas import leftover_areas, sweep
from file_backed.dask.config import resolve
from file_backed.dask.mapping import SpillMapping
from file_backed.dask.worker import SpillingWorker

__all__ = ["SpillMapping", "SpillingWorker", "data", "leftover_areas", "sweep"]


def data(**config: Any) -> tuple[type[SpillMapping], dict[str, Any]]:
    """``(SpillMapping, config)`` for ``Worker(data=...)``, ``Nanny(data=...)`` or
    ``LocalCluster(data=...)``: each worker builds its own `SpillMapping` from
    `config`, the keys of a ``[file_backed]`` table (``backend``, ``options``,
    ``codec``, ``codec_options``, ``max_items``, ``max_bytes``, ``workers``,
    ``plugins``). ``max_bytes="auto"`` (the default) is the worker's memory
    limit times ``distributed.worker.memory.target``.

    Checks `config` now (with the Dask configuration of this process), so a
    wrong key or name raises `file_backed.ConfigError` here rather than in
    every worker.
    """
    resolve(config)
    return SpillMapping, dict(config)
