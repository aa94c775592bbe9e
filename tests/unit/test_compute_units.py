"""Compute's pure parts: site addresses, metering shares, task-stream sums, quota periods, APEL records."""

from __future__ import annotations

import resource
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from twinengine.compute.addresses import check_address
from twinengine.compute.apel import FIELDS, HEADER, apel_message, apel_summaries
from twinengine.compute.dask_usage import task_stream_core_seconds
from twinengine.compute.metering import charge, current_meter, start_meter
from twinengine.compute.models import UsageRecord
from twinengine.compute.quotas import period_start
from twinengine.errors import ValidationFailed


@pytest.mark.parametrize(("kind", "address"), [
    ("dask", "tcp://127.0.0.1:8786"), ("dask", "tls://scheduler.example.org:8786"),
    ("engine", "https://engine.example.org"), ("engine", "http://10.0.0.5:8000"), ("local", None), ("slurm", None)])
def test_addresses_a_site_may_use(kind: str, address: str | None) -> None:
    assert check_address(kind, address) == address


@pytest.mark.parametrize(("kind", "address", "says"), [
    ("engine", "http://169.254.169.254/latest", "link-local"),
    ("engine", "http://[fe80::1]/", "link-local"),
    ("engine", "http://[::ffff:169.254.169.254]/", "link-local"),
    ("engine", "http://metadata.google.internal/", "metadata"),
    ("engine", "file:///etc/passwd", "http or https"),
    ("dask", "http://127.0.0.1:8786", "tcp or tls"),
    ("engine", "http://admin@10.0.0.5/", "names a user"),
    ("engine", "http://10.0.0.5:99999/", "port"),
    ("engine", "http://bad host/", "space"),
    ("engine", None, "needs an address"),
    ("slurm", "tcp://127.0.0.1:1", "has no address"),
])
def test_addresses_refused_name_the_field(kind: str, address: str | None, says: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_address(kind, address)
    assert refused.value.problems[0].loc == "address" and says in refused.value.message


def _burn(seconds: float) -> None:
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        sum(range(1000))


def test_app_code_called_from_dask_threads_is_charged_to_the_run_computing() -> None:
    """Dask's local scheduler runs a run's tasks on threads of its pool: what a task charges (app code or a
    UDF in a sandboxed worker) goes to the run's meter, not nowhere, and not to another run's."""
    import dask

    from twinengine.compute.metering import charge_worker
    from twinengine.workflows.executors import LocalExecutor

    meter = start_meter()
    tasks = [dask.delayed(charge_worker)(0.5) for _ in range(4)]
    LocalExecutor(workers=2).compute(*tasks)
    idle: dict[str, Any] = {}

    def another_execution() -> None:  # a run on another thread, computing nothing that charges
        theirs = start_meter()
        LocalExecutor(workers=2).compute(dask.delayed(sum)([1, 2]))
        idle["reading"] = theirs.stop()

    thread = threading.Thread(target=another_execution)
    thread.start()
    thread.join()
    reading = meter.stop()
    assert reading.remote_core_seconds == pytest.approx(2.0) and "worker-cpu" in reading.sources
    assert idle["reading"].remote_core_seconds == 0


def test_meters_share_the_process_cpu_and_keep_charges() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF)
    first = start_meter()
    assert current_meter() is first
    other: dict[str, Any] = {}

    def second_execution() -> None:
        meter = start_meter()
        _burn(0.05)
        charge(2.5, "dask-task-stream")
        other["reading"] = meter.stop()

    thread = threading.Thread(target=second_execution)
    thread.start()
    thread.join()
    _burn(0.05)
    reading = first.stop()
    after = resource.getrusage(resource.RUSAGE_SELF)
    spent = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert current_meter() is None and first.stop() is reading  # stopping twice reads the same
    theirs = other["reading"]
    assert theirs.remote_core_seconds == 2.5 and theirs.sources == ("dask-task-stream", "rusage")
    assert reading.remote_core_seconds == 0 and reading.sources == ("rusage",)
    assert reading.local_cpu_seconds > 0 and theirs.local_cpu_seconds > 0
    assert reading.local_cpu_seconds + theirs.local_cpu_seconds <= spent + 1e-6  # nothing counted twice
    assert reading.wall_seconds > theirs.wall_seconds and reading.peak_memory_bytes > 0


def test_task_stream_sums_compute_intervals_of_the_graph_keys() -> None:
    records = [
        {"key": "a", "startstops": ({"action": "compute", "start": 1.0, "stop": 3.5},
                                    {"action": "transfer", "start": 0.0, "stop": 9.0})},
        {"key": "('b', 0)", "startstops": [("compute", 10.0, 11.0)]},
        {"key": "other", "startstops": [{"action": "compute", "start": 0.0, "stop": 100.0}]},
    ]
    assert task_stream_core_seconds(records, {"a", "('b', 0)"}) == pytest.approx(3.5)
    assert task_stream_core_seconds(records) == pytest.approx(103.5)


def test_quota_periods_start_in_utc() -> None:
    now = datetime(2026, 11, 25, 19, 5, 3, tzinfo=UTC)  # a Wednesday
    assert period_start("day", now) == datetime(2026, 11, 25, tzinfo=UTC)
    assert period_start("week", now) == datetime(2026, 11, 23, tzinfo=UTC)
    assert period_start("month", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert period_start("year", now) == datetime(2026, 1, 1, tzinfo=UTC)
    assert period_start("total", now) is None


def _record(identity: str, finished: datetime, core: float, groups: list[str] | None = None) -> UsageRecord:
    return UsageRecord(run_id="r", kind="run", status="finished", identity=identity, groups=groups or [],
                       site="hpc", started_at=finished, finished_at=finished, wall_seconds=10.0, core_seconds=core,
                       remote_core_seconds=0.0, cores=1, peak_memory_bytes=0, bytes_read=0, bytes_written=0,
                       source="rusage")


def test_apel_summaries_group_by_site_month_user_and_vo() -> None:
    rows = [_record("uma", datetime(2026, 11, 2, tzinfo=UTC), 100.4, ["hydro"]),
            _record("uma", datetime(2026, 11, 20, tzinfo=UTC), 50.3, ["hydro"]),
            _record("uma", datetime(2026, 12, 1, tzinfo=UTC), 7.0, ["hydro"]),
            _record("ola", datetime(2026, 11, 3, tzinfo=UTC), 1.0)]
    summaries = apel_summaries(rows, site_kinds={"hpc": "slurm"}, host="engine.example.org")
    assert len(summaries) == 3
    november = next(s for s in summaries if s["GlobalUserName"] == "uma" and s["Month"] == 11)
    assert (november["CpuDuration"], november["WallDuration"], november["NumberOfJobs"]) == (151, 20, 2)
    assert november["VO"] == "hydro" and november["Infrastructure"] == "twinengine:slurm"
    assert november["EarliestEndTime"] == int(datetime(2026, 11, 2, tzinfo=UTC).timestamp())
    assert next(s for s in summaries if s["GlobalUserName"] == "ola")["VO"] == "none"
    text = apel_message(summaries)
    assert text.startswith(HEADER + "\n") and text.count("%%") == 3
    assert all(f"\n{name}: " in text for name in FIELDS)


def test_a_site_gone_since_placement_leaves_the_run_on_the_engine_executor() -> None:
    from types import SimpleNamespace

    from twinengine.compute.site_executors import executor_for

    class Gone:
        def get(self, site: str) -> Any:
            raise ValidationFailed.one("options.site", f"the run's site {site!r} no longer exists")

    class There:
        def get(self, site: str) -> Any:
            return f"executor of {site}"

    meter = start_meter()
    assert executor_for(SimpleNamespace(executor="own", services={"sites": Gone()}), {"site": "hpc"}) == "own"
    assert meter.site == "local"
    assert executor_for(SimpleNamespace(executor="own", services={"sites": There()}), {"site": "hpc"}) == \
        "executor of hpc"
    assert meter.site == "hpc"
    meter.stop()
