"""Dask's batched streams made quick: each sends after STREAM_INTERVAL_S instead of Dask's 2-10 ms windows."""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

# Dask batches each stream's messages and, after one send, waits out an interval before the next: 10 ms from a
# client to its scheduler, 5 ms from the scheduler to a worker, 2 ms back. Grading tasks are few and large
# (one message each way, hundreds of ms of work), so there is little to batch, and a job's sequential round
# trip waited in those windows (the rest of its ~10 ms is Dask's own CPU per task: docs/operator/dask.md's
# "Overhead" and benchmarks/RESULTS.md have the figures). 1 ms everywhere.
STREAM_INTERVAL_S = 0.001


def quicker(stream: Any) -> None:
    """STREAM_INTERVAL_S on one of Dask's batched streams (BatchedSend.interval, in seconds; a stream without
    one, as a later Dask might have, is left as it is)."""
    interval = getattr(stream, "interval", None)
    if isinstance(interval, int | float) and interval > STREAM_INTERVAL_S:
        stream.interval = STREAM_INTERVAL_S


class QuickStreams(SchedulerPlugin):
    """On the scheduler: its streams to each worker (made just before add_worker is called) and to each client
    (made just after add_client, so set on the loop's next turn) send after STREAM_INTERVAL_S."""

    def add_worker(self, scheduler: Any = None, worker: str | None = None) -> None:
        quicker(scheduler.stream_comms.get(worker) if scheduler is not None else None)

    def add_client(self, scheduler: Any = None, client: str | None = None) -> None:
        if scheduler is not None:
            scheduler.loop.add_callback(lambda: quicker(scheduler.client_comms.get(client)))
