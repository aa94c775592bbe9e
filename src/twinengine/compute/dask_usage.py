"""Core-seconds from Dask's own record of a computation: the scheduler's task stream, filtered to the keys
of the graph being computed (other runs' tasks on the same cluster are theirs), charged to the execution
computing on this thread. Each task occupies one worker thread while it computes, so the sum of its
``compute`` intervals is the core-seconds it took."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from twinengine.compute.metering import charge, current_meter

__all__ = ["SOURCE", "graph_keys", "task_stream_core_seconds", "task_stream_usage"]

SOURCE = "dask-task-stream"
RPC_TIMEOUT = 10.0  # seconds a request to the scheduler about the task stream may take

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


@contextmanager
def task_stream_usage(client: Any, values: tuple[Any, ...]) -> Iterator[None]:
    """While the body computes ``values`` on ``client``'s cluster, record the task stream; then charge the
    graph's compute time to the current execution (nothing is recorded when no execution is metered)."""
    if current_meter() is None:
        yield
        return
    from distributed import get_task_stream

    try:
        keys: set[str] | None = graph_keys(values)
    except Exception:  # an older Dask without expressions: every task of the window counts
        keys = None
    # Dask's context manager asks the scheduler on entry and exit with no time limit: a scheduler that
    # stopped answering would hold the run for good, so both requests are bounded, and none is sent after
    # a failed computation (its record is not charged: the work is lost with the site).
    stream = get_task_stream(client=client)
    try:
        client.sync(stream.__aenter__, callback_timeout=RPC_TIMEOUT)
    except Exception as exc:  # the run's fate is the computation's to decide (a lost site, say), not its record's
        log.warning("the scheduler's task stream could not be started (%s); nothing charged from it", exc)
        yield
        return
    yield
    try:
        client.sync(stream.__aexit__, None, None, None, callback_timeout=RPC_TIMEOUT)
    except Exception as exc:  # the result is in; only its record is missing
        log.warning("the scheduler's task stream could not be read (%s); nothing charged from it", exc)
        return
    charge(task_stream_core_seconds(list(stream.data), keys), SOURCE)
