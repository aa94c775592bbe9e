"""A run's usage record never decides its fate: a scheduler that does not answer the request that starts
recording its task stream (a site dying under load) leaves the computation to go on (and fail as a lost
site, where it is one), with nothing charged from the stream."""

from __future__ import annotations

from typing import Any

from twinengine.compute.dask_usage import task_stream_usage
from twinengine.compute.metering import start_meter


class _Unanswering:
    """A Dask client whose scheduler does not answer in time."""

    def sync(self, *_args: Any, **_kwargs: Any) -> Any:
        raise TimeoutError("timed out after 10 s.")


def test_a_task_stream_that_cannot_start_does_not_fail_the_run() -> None:
    meter = start_meter()
    ran = []
    with task_stream_usage(_Unanswering(), ()):
        ran.append(True)  # the computation itself
    reading = meter.stop()
    assert ran == [True]
    assert reading.remote_core_seconds == 0.0 and "dask-task-stream" not in reading.sources
