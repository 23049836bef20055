"""dask: one Dask workload spilled by Dask's default ``SpillBuffer`` and by
``file_backed.dask``, side by side.

Each system runs in a child process of its own, which starts a fresh
``LocalCluster`` of two worker processes (each under a nanny, with a memory
limit, Dask's default thresholds and a local directory in the run's scratch
directory, so both spill to the same disk) and runs:

1. a random array several times the workers' memory, persisted (most of it
   spills);
2. two passes of the array reductions ``x.sum()``, ``x.mean(axis=0)``,
   ``x.max(axis=1)`` and the transpose-sum ``(x + x.T).sum(axis=0)``: every
   pass reads every chunk back, so reloads and the writes that follow them
   count.

The systems alternate within each repeat (the order rotates). Figures per
run: wall time from the persist to the last result (cluster start-up and
shutdown excluded); bytes written and read by spilling, as each worker's
``data.cumulative_metrics`` reports them (``disk-write`` / ``disk-read``
bytes: the pickled frames for ``SpillBuffer``, the blobs for file_backed), summed
over the workers; bytes the worker processes wrote to storage
(``/proc/self/io``: ``write_bytes - cancelled_write_bytes``, so a file deleted
before its pages were written back does not count); the peak resident set of
the workers (``VmHWM``, reset with ``/proc/self/clear_refs`` just before the
workload; the larger of the two workers); and a digest of every result, which
must be the same for both systems and every repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

from .common import Context, MiB, Row, Section, Target, Workload, optional_peer, run_child

__all__ = ["WORKLOADS"]


@dataclass(frozen=True)
class DaskSizes:
    """The array's side, its chunks' side and each worker's memory limit."""

    side: int
    chunk: int
    memory_limit: int
    workers: int = 2
    threads: int = 2

    @property
    def array_bytes(self) -> int:
        return self.side * self.side * 8

    def describe(self) -> str:
        return (
            f"{self.side} x {self.side} float64 ({self.array_bytes / MiB:,.0f} MiB, "
            f"{self.array_bytes / (self.workers * self.memory_limit):.1f}x the memory limits) in "
            f"{self.chunk} x {self.chunk} chunks; {self.workers} worker processes x {self.threads} threads, "
            f"memory limit {self.memory_limit // MiB} MiB each (Dask's default thresholds); "
            "persist, then two passes of sum, mean(axis=0), max(axis=1), (x + x.T).sum(axis=0)"
        )


SIZES = {
    "smoke": DaskSizes(3000, 1000, 400 * MiB),
    "quick": DaskSizes(12000, 1000, 400 * MiB),
    "full": DaskSizes(16000, 1000, 400 * MiB),
}
SYSTEMS = ("file_backed", "Dask default")

#: One system in a child: prints its figures as one JSON object on the last line.
CHILD = r"""
import hashlib, json, logging, sys, time
import dask
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster, wait

system, side, chunk, memory_limit, workers, threads, directory = json.loads(sys.argv[1])
logging.getLogger("distributed").setLevel(logging.ERROR)


def reset_peak():
    with open("/proc/self/clear_refs", "w") as control:
        control.write("5")


def status(field):
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def storage_writes():
    fields = {}
    with open("/proc/self/io") as lines:
        for line in lines:
            name, value = line.split(":")
            fields[name] = int(value)
    return fields["write_bytes"] - fields["cancelled_write_bytes"]


def spill_metrics(dask_worker):
    metrics = dask_worker.data.cumulative_metrics
    return {
        "type": type(dask_worker.data).__name__,
        "written": metrics["disk-write", "bytes"],
        "read": metrics["disk-read", "bytes"],
        "writes": metrics["disk-write", "count"],
    }


kwargs = {}
if system == "file_backed":
    import file_backed.dask

    kwargs["data"] = file_backed.dask.data()
with LocalCluster(
    n_workers=workers, threads_per_worker=threads, processes=True, memory_limit=memory_limit,
    dashboard_address=None, local_directory=directory, **kwargs,
) as cluster, Client(cluster) as client:
    client.run(reset_peak)
    io_before = client.run(storage_writes)
    digest = hashlib.sha256()
    started = time.perf_counter()
    x = da.random.RandomState(42).random((side, side), chunks=(chunk, chunk)).persist()
    wait(x)
    for _ in range(2):
        results = dask.compute(x.sum(), x.mean(axis=0), x.max(axis=1))
        results += ((x + x.T).sum(axis=0).compute(),)
        for result in results:
            digest.update(np.ascontiguousarray(result).tobytes())
    wall = time.perf_counter() - started
    io_after = client.run(storage_writes)
    peaks = client.run(status, "VmHWM")
    metrics = list(client.run(spill_metrics).values())
    restarts = len(cluster.workers) - workers
print(json.dumps({
    "wall": wall,
    "written": sum(m["written"] for m in metrics),
    "read": sum(m["read"] for m in metrics),
    "writes": sum(m["writes"] for m in metrics),
    "types": sorted({m["type"] for m in metrics}),
    "storage": sum(io_after[w] - io_before.get(w, 0) for w in io_after),
    "peak": max(peaks.values()),
    "digest": digest.hexdigest(),
}), flush=True)
"""


def _child(argument: list[object]) -> dict[str, object]:
    return run_child(CHILD, argument, what="a dask benchmark child", timeout=1800)


def run(ctx: Context) -> Section:
    """Wall time, spill bytes, storage writes and peak worker RSS of both systems."""
    sizes = SIZES[ctx.mode]
    section = Section("dask", TITLE, sizes.describe() + "; each system in a fresh LocalCluster, order rotating")
    if optional_peer("distributed") is None:
        section.notes.append("skipped: distributed is not installed (pip install 'file-backed[dask]')")
        return section
    figures: dict[str, list[dict[str, object]]] = {name: [] for name in SYSTEMS}
    for repeat in range(ctx.repeats):
        for offset in range(len(SYSTEMS)):
            name = SYSTEMS[(repeat + offset) % len(SYSTEMS)]
            ctx.settle()
            argument: list[object] = [
                name,
                sizes.side,
                sizes.chunk,
                sizes.memory_limit,
                sizes.workers,
                sizes.threads,
                str(ctx.scratch("dask")),
            ]
            figures[name].append(_child(argument))

    def runs(name: str, field: str, scale: float = 1.0) -> tuple[float, ...]:
        return tuple(float(run[field]) / scale for run in figures[name])  # type: ignore[arg-type]

    ours, theirs = figures["file_backed"], figures["Dask default"]
    indicative = ctx.mode != "full"
    peer = "Dask SpillBuffer"
    section.rows += [
        Row(
            "dask",
            "wall time",
            "s",
            runs("file_backed", "wall"),
            peer,
            runs("Dask default", "wall"),
            Target("ratio", "<=", 1.0, "<= 1.0x Dask"),
            indicative,
        ),
        Row(
            "dask",
            "spill bytes written",
            "MiB",
            runs("file_backed", "written", MiB),
            peer,
            runs("Dask default", "written", MiB),
            Target("ratio", "<=", 0.5, "<= 0.5x Dask"),
            indicative,
            note="disk-write bytes of the workers' data.cumulative_metrics, summed over the workers",
        ),
        Row(
            "dask",
            "spill bytes read",
            "MiB",
            runs("file_backed", "read", MiB),
            peer,
            runs("Dask default", "read", MiB),
        ),
        Row(
            "dask",
            "storage writes",
            "MiB",
            runs("file_backed", "storage", MiB),
            peer,
            runs("Dask default", "storage", MiB),
            note="/proc/self/io write_bytes - cancelled_write_bytes of the worker processes during the workload",
        ),
        Row(
            "dask",
            "peak worker RSS",
            "MiB",
            runs("file_backed", "peak", MiB),
            peer,
            runs("Dask default", "peak", MiB),
            Target("ratio", "<=", 1.05, "<= 1.05x Dask"),
            indicative,
            note="VmHWM of the larger worker process, reset just before the workload",
        ),
    ]
    digests = {str(run["digest"]) for run in ours + theirs}
    section.rows.append(
        Row(
            "dask",
            "results identical",
            "",
            tuple(float(len(digests) == 1) for _ in ours),
            peer,
            target=Target("value", ">=", 1.0, "identical"),
            note="1 = every repeat of both systems gave the same digest of all results",
        )
    )
    types = sorted({kind for run in ours for kind in run["types"]})  # type: ignore[attr-defined]
    section.notes.append(f"the workers' data: file_backed runs {', '.join(types)}; Dask runs SpillBuffer")
    return section


TITLE = "dask: a LocalCluster workload spilled by Dask's SpillBuffer and by file_backed.dask"
WORKLOADS = (Workload("dask", TITLE, run, opt_in=True),)
