"""A calibration's model runs are usage: each attempt (one put back in the queue by a stopping engine too)
leaves one record of kind ``calibration`` (the engine's share and the CPU the engine read for its sandboxed workers),
shown to its owner only; a used-up quota refuses a new calibration with 429, and one crossed mid-way ends it
as ``QuotaExceeded`` with its runs kept."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from calibration_data import HYMOD, catchment
from helpers import Engine
from twinengine.compute.models import UsageRecord
from twinengine.errors import QuotaExceeded

pytestmark = pytest.mark.sandbox



def _twin(engine: Engine) -> Any:
    dev, user = engine.as_role("ada", "developer"), engine.as_role("uma", "user")
    dev.publish_app(HYMOD)
    user.create_twin("hymod@0.1.0", "catchment", {})
    user.streams.append("catchment", "catchment", catchment(430))
    return user


def _records(engine: Engine) -> list[UsageRecord]:
    with engine.runtime.db.session(readonly=True) as session:
        rows = list(session.scalars(select(UsageRecord).where(UsageRecord.kind == "calibration")))
        session.expunge_all()
    return rows


def test_a_local_calibration_records_its_model_runs_as_usage_of_its_owner(engine: Engine) -> None:
    from twinengine.auth.principal import Principal, Role
    from twinengine.calibration.models import Calibration
    from twinengine.calibration.schemas import CalibrationCreate
    from twinengine.calibration.service import start_calibration

    user = _twin(engine)
    member = Principal(name="uma", role=Role.USER, groups=frozenset({"hydro"}))  # groups come from the token
    with engine.runtime.db.session() as session:
        cal_id = start_calibration(session, principal=member, twin_ref="catchment",
                                   body=CalibrationCreate.model_validate(
                                       {"method": "de", "runs": 30, "seed": 5, "workers": 2,
                                        "posterior_share": 0.0})).id
    engine.runtime.calibrations.notify()
    ended = user.calibration.wait(cal_id, timeout=240)
    assert ended.status == "done", ended.error
    with engine.runtime.db.session(readonly=True) as session:
        result = dict(session.get(Calibration, cal_id).result or {})  # type: ignore[union-attr]

    [record] = _records(engine)
    assert (record.run_id, record.kind, record.status, record.identity) == (cal_id, "calibration", "done", "uma")
    assert record.groups == ["hydro"]
    assert (record.twin_id, record.twin_name, record.app) == (ended.twin_id, "catchment", "hymod@0.1.0")
    assert (record.site, record.executor) == ("local", "local")
    assert "worker-cpu" in record.source and "rusage" in record.source
    assert record.remote_core_seconds > 0  # the sandboxed workers' CPU, not in the engine's rusage
    assert record.remote_core_seconds == pytest.approx(result["model_core_seconds"], abs=1e-5)
    assert record.core_seconds == pytest.approx(result["core_seconds"], abs=1e-5) == ended.core_seconds
    assert record.core_seconds >= record.remote_core_seconds
    # two worker processes, one model run at a time each: they cannot have used more than twice the wall time
    assert record.remote_core_seconds <= 2 * record.wall_seconds + 0.5

    owner = engine.http.get("/api/v1/usage/records", headers=engine.headers(engine.token("uma", "user")))
    assert owner.status_code == 200 and [r["run_id"] for r in owner.json()["items"]] == [cal_id]
    by_twin = engine.http.get("/api/v1/usage?by=twin", headers=engine.headers(engine.token("uma", "user")))
    assert [(g["key"], g["runs"]) for g in by_twin.json()["groups"]] == [("catchment", 1)]
    other = engine.http.get("/api/v1/usage/records", headers=engine.headers(engine.token("ola", "user")))
    assert other.status_code == 200 and other.json()["items"] == []
    assert engine.as_role("ola", "user").compute.usage(by="twin").groups == []


def test_a_model_that_hides_its_cpu_is_charged_what_the_kernel_counted(engine: Engine, tmp_path: Any) -> None:
    """The model runs' CPU is read by the engine from /proc for the sandboxed workers' processes: an app that
    replaces the clock its sandbox would measure with (``time.process_time``) is charged all the same."""
    import hashlib
    import shutil
    import time

    started_cpu = time.thread_time()  # this thread's: the engine's threads share the process
    hashlib.pbkdf2_hmac("sha256", b"twin", b"salt", 200_000)  # what one of its model runs adds, on this machine
    added = time.thread_time() - started_cpu
    app = tmp_path / "hymod"
    shutil.copytree(HYMOD, app)
    with (app / "hymod" / "model.py").open("a") as fh:
        fh.write("\n\nimport hashlib as _hashlib\nimport time as _time\n\n"
                 "_time.process_time = lambda: 0.0  # what its model runs cost, hidden from its own sandbox\n"
                 "_simulate = simulate\n\n\n"
                 "def simulate(parameters, forcing):\n"
                 "    _hashlib.pbkdf2_hmac('sha256', b'twin', b'salt', 200_000)\n"
                 "    return _simulate(parameters, forcing)\n")
    dev, user = engine.as_role("ada", "developer"), engine.as_role("uma", "user")
    dev.publish_app(app)
    user.create_twin("hymod@0.1.0", "catchment", {})
    user.streams.append("catchment", "catchment", catchment(430))
    started = user.calibration.start("catchment", method="de", runs=24, seed=5, workers=1, posterior_share=0.0)
    engine.runtime.calibrations.notify()
    ended = user.calibration.wait(started.id, timeout=240)
    assert ended.status == "done", ended.error
    [record] = _records(engine)
    # 24 runs, each at least the hashing measured above (half of it, for a busy machine's variation)
    assert record.remote_core_seconds >= 24 * added / 2, (record.remote_core_seconds, added)


def test_each_attempt_of_a_resumed_calibration_is_recorded(engine: Engine) -> None:
    from twinengine.calibration.models import Calibration
    from twinengine.calibration.runner import CalibrationRunner, _Stopped

    engine.runtime.calibrations.stop()  # the test plays two engines, the first stopping mid-way
    user = _twin(engine)
    cal_id = user.calibration.start("catchment", method="de", runs=60, seed=5, workers=2, posterior_share=0.0).id
    rt = engine.runtime

    def runner() -> CalibrationRunner:
        return CalibrationRunner(db=rt.db, code=rt.app_code, data_dir=rt.data_dir, read_stream=rt.read_stream)

    first = runner()
    keep = first._keep

    def stop_after_a_batch(cal_id: str, new: list[Any], max_runs: int) -> None:
        keep(cal_id, new, max_runs)
        first.stopping.set()  # the engine stops: the calibration goes back to the queue
        raise _Stopped

    first._keep = stop_after_a_batch  # type: ignore[method-assign]
    for each in (first, runner()):
        assert each.run_once() == 1
        each._pool.shutdown(wait=True)
        if each is first:
            assert user.calibration.get(cal_id).status == "queued"
            [paused] = _records(engine)
            assert (paused.run_id, paused.status) == (cal_id, "queued") and paused.remote_core_seconds > 0
    assert user.calibration.get(cal_id).status == "done"
    records = sorted(_records(engine), key=lambda r: r.finished_at)
    assert [r.status for r in records] == ["queued", "done"] and {r.run_id for r in records} == {cal_id}
    with rt.db.session(readonly=True) as session:
        result = dict(session.get(Calibration, cal_id).result or {})  # type: ignore[union-attr]
    assert result["core_seconds"] == pytest.approx(sum(r.core_seconds for r in records), abs=1e-5)
    assert result["model_core_seconds"] == pytest.approx(sum(r.remote_core_seconds for r in records), abs=1e-5)


def test_a_used_up_quota_refuses_a_calibration(engine: Engine) -> None:
    user = _twin(engine)
    engine.sdk(engine.admin_token).compute.set_quota("uma", 0.0, site="local", period="day")
    with pytest.raises(QuotaExceeded) as refused:
        user.calibration.start("catchment", method="de", runs=30, seed=5)
    assert refused.value.status == 429
    assert "compute quota of uma on site local is used up" in refused.value.message
    assert user.calibration.list("catchment").total == 0
    assert _records(engine) == []


def test_a_calibration_that_crosses_its_quota_stops_keeping_its_runs(engine: Engine) -> None:
    user = _twin(engine)
    admin = engine.sdk(engine.admin_token)
    admin.compute.set_quota("uma", 1e-7, site="local", period="day")  # 0.00036 core-seconds: one batch crosses it
    started = user.calibration.start("catchment", method="de", runs=2000, seed=5, workers=2, posterior_share=0.0)
    ended = user.calibration.wait(started.id, timeout=240)
    assert ended.status == "error", ended
    assert ended.error is not None and ended.error["code"] == "QuotaExceeded"
    assert "compute quota of uma on site local" in ended.error["message"]
    assert "stopped after its current batch" in ended.error["message"]
    assert 0 < ended.runs_done < 2000 and user.calibration.runs(started.id).total == ended.runs_done
    [record] = _records(engine)
    assert (record.run_id, record.status) == (started.id, "error") and record.remote_core_seconds > 0


def test_a_calibration_on_a_dask_site_is_recorded_there_with_its_workers_cpu(engine: Engine) -> None:
    from distributed import LocalCluster

    user = _twin(engine)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as cluster:
        engine.as_role("pat", "provider").compute.add_site("cluster", "dask", address=str(cluster.scheduler_address),
                                                           cores=1, memory_bytes=2**31)
        started = user.calibration.start("catchment", site="cluster", method="de", runs=12, seed=2,
                                         posterior_share=0.0)
        ended = user.calibration.wait(started.id, timeout=240)
    assert ended.status == "done", ended.error
    [record] = _records(engine)
    assert (record.run_id, record.site, record.executor) == (started.id, "cluster", "dask")
    assert record.remote_core_seconds > 0 and record.core_seconds == pytest.approx(ended.core_seconds, abs=1e-5)
