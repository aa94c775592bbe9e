"""Core-seconds from Dask's own record of a computation: the scheduler's task stream, filtered to the keys
of the graph being computed (other runs' tasks on the same cluster are theirs), charged to the execution
computing on this thread. Each task occupies one worker thread while it computes, so the sum of its
``compute`` intervals is the core-seconds it took.

The stream is read while the computation runs (every ``POLL_SECONDS``, from where the last read ended) and
once more at its end, each read charging what it found: an attempt lost with its site keeps what the site
computed for it up to the last read (its ``lost`` usage record), as the scheduler's record dies with it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from twinengine.compute.metering import charge, current_meter

__all__ = ["SOURCE", "graph_keys", "task_stream_core_seconds", "task_stream_usage"]

SOURCE = "dask-task-stream"
RPC_TIMEOUT = 10.0  # seconds a request to the scheduler about the task stream may take
POLL_SECONDS = 2.0  # how often the stream is read while a computation runs

log = logging.getLogger("twinengine.compute")


def graph_keys(values: tuple[Any, ...]) -> set[str]:
    """Every key of the graph of ``values`` (Dask collections), as the task stream names them."""
    from dask.base import collections_to_expr

    expr: Any = collections_to_expr(list(values))
    return {str(k) for k in expr.__dask_graph__()}


def task_stream_core_seconds(records: list[dict[str, Any]], keys: set[str] | None = None) -> float:
    """The sum of the ``compute`` intervals of the records (of ``keys`` only, when given)."""
    total = 0.0
    for record in records:
        if keys is not None and str(record.get("key")) not in keys:
            continue
        for span in record.get("startstops", ()):
            action = span.get("action") if isinstance(span, dict) else span[0]
            if action == "compute":
                start, stop = (span["start"], span["stop"]) if isinstance(span, dict) else (span[1], span[2])
                total += max(0.0, float(stop) - float(start))
    return total


class _Stream:
    """The task stream of one computation, read from a cursor (the scheduler's count of the records it
    appended), so each read takes only what was appended since the last."""

    def __init__(self, client: Any, keys: set[str] | None) -> None:
        self.client, self.keys = client, keys
        self.cursor = int(client.sync(client.scheduler.get_task_stream_index, callback_timeout=RPC_TIMEOUT))
        self.read_at = time.monotonic()
        self.failed = False

    def read(self) -> None:
        """Charge what the graph's tasks computed since the last read."""
        records = list(self.client.sync(self.client.scheduler.get_task_stream, start_index=self.cursor,
                                        callback_timeout=RPC_TIMEOUT))
        self.cursor += len(records)
        self.read_at = time.monotonic()
        charge(task_stream_core_seconds(records, self.keys), SOURCE)

    def poll(self) -> None:
        """``read`` when the last one is ``POLL_SECONDS`` old; a failed read is logged and not tried again
        before the end (the run's fate is the computation's to decide, not its record's)."""
        if self.failed or time.monotonic() - self.read_at < POLL_SECONDS:
            return
        try:
            self.read()
        except Exception as exc:
            self.failed = True
            log.warning("the scheduler's task stream could not be read (%s); what it computed since is not "
                        "charged unless it is read at the end", exc)


@contextmanager
def task_stream_usage(client: Any, values: tuple[Any, ...]) -> Iterator[Callable[[], None]]:
    """While the body computes ``values`` on ``client``'s cluster, read the task stream (the body calls the
    callable it is given now and then: every ``POLL_SECONDS`` it reads), and at the end; each read charges the
    graph's compute time to the current execution (nothing is read when no execution is metered). A failed
    computation is not read at its end: its site may be gone, or frozen, and what the reads before it found
    stays charged."""
    if current_meter() is None:
        yield _nothing
        return
    try:
        keys: set[str] | None = graph_keys(values)
    except Exception:  # an older Dask without expressions: every task of the window counts
        keys = None
    # Dask's context manager asks the scheduler on entry and exit with no time limit: a scheduler that
    # stopped answering would hold the run for good, so every request is bounded.
    try:
        stream = _Stream(client, keys)
    except Exception as exc:  # the run's fate is the computation's to decide (a lost site, say), not its record's
        log.warning("the scheduler's task stream could not be started (%s); nothing charged from it", exc)
        yield _nothing
        return
    yield stream.poll
    try:
        stream.read()
    except Exception as exc:  # the result is in; only the last part of its record is missing
        log.warning("the scheduler's task stream could not be read (%s); its last part is not charged", exc)


def _nothing() -> None:
    return None
