"""A calibration placed on a ``dask`` compute site: its model runs are Dask tasks on the site's workers, each
running its chunk in a sandboxed worker of the app version there, and it ends where the same calibration on
the engine's own workers ends (same seeded method, same model, same runs). An unknown or draining site is
refused naming ``site``; a site lost mid-calibration ends it with ``SiteLost`` naming the site. On a ``slurm``
site the same runs go to Dask workers that are Slurm jobs of a private single-node cluster."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from calibration_data import HYMOD, catchment
from helpers import Engine, need_modules
from slurm_fixtures import LocalSlurm, local_slurm  # noqa: F401
from twinengine.calibration.remote import started_workers
from twinengine.errors import ValidationFailed

pytestmark = pytest.mark.sandbox

BODY = {"method": "de", "runs": 40, "seed": 5, "workers": 2, "posterior_share": 0.0}


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as local:
        yield str(local.scheduler_address)


def _twin(engine: Engine, days: int = 430) -> Any:
    dev, user = engine.as_role("ada", "developer"), engine.as_role("uma", "user")
    dev.publish_app(HYMOD)
    user.create_twin("hymod@0.1.0", "catchment", {})
    user.streams.append("catchment", "catchment", catchment(days))
    return user


def test_a_calibration_on_a_dask_site_runs_there_and_ends_as_it_does_locally(engine: Engine, cluster: str) -> None:
    from distributed import Client, get_task_stream

    user = _twin(engine)
    provider = engine.as_role("pat", "provider")
    provider.compute.add_site("cluster", "dask", address=cluster, cores=2, memory_bytes=2**31)
    with pytest.raises(ValidationFailed) as unknown:
        user.calibration.start("catchment", site="nowhere", **BODY)
    assert unknown.value.problems[0].loc == "site" and "nowhere" in unknown.value.problems[0].msg
    provider.compute.drain_site("cluster")
    with pytest.raises(ValidationFailed) as draining:
        user.calibration.start("catchment", site="cluster", **BODY)
    assert draining.value.problems[0].loc == "site" and "draining" in draining.value.problems[0].msg
    provider.compute.drain_site("cluster", undo=True)

    local_pool = engine.runtime.workers.pool
    with Client(cluster, set_as_default=False) as observer:
        before = local_pool.started
        with get_task_stream(client=observer) as stream:
            started = user.calibration.start("catchment", site="cluster", **BODY)
            assert started.site == "cluster"
            remote = user.calibration.wait(started.id, timeout=240)
        on_site = observer.run(started_workers)
        assert local_pool.started == before  # no model ran in the engine's own workers
        tasks = [r for r in stream.data if str(r["key"]).startswith("remote_simulate")]
    assert remote.status == "done", remote.error
    assert remote.site == "cluster" and remote.runs_done == 40
    assert tasks and {r["worker"] for r in tasks} <= set(on_site)
    assert sum(on_site.values()) >= 1  # the chunks ran in sandboxed workers the Dask workers started

    local = user.calibration.wait(user.calibration.start("catchment", **BODY).id, timeout=240)
    assert local.status == "done", local.error
    assert local.site == "local"
    assert remote.best_score is not None and remote.best_score == local.best_score
    assert remote.best == local.best
    remote_runs = [(r.params, r.score) for r in user.calibration.runs(remote.id).items]
    assert remote_runs == [(r.params, r.score) for r in user.calibration.runs(local.id).items]


def test_a_site_lost_mid_calibration_ends_it_naming_the_site(engine: Engine) -> None:
    from distributed import LocalCluster

    user = _twin(engine, days=900)
    provider = engine.as_role("pat", "provider")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as doomed:
        provider.compute.add_site("doomed", "dask", address=str(doomed.scheduler_address), cores=1,
                                  memory_bytes=2**31)
        started = user.calibration.start("catchment", site="doomed", method="de", runs=50_000, seed=1,
                                         posterior_share=0.0)
        deadline = time.monotonic() + 120
        while user.calibration.get(started.id).runs_done == 0:
            assert time.monotonic() < deadline, user.calibration.get(started.id)
            time.sleep(0.1)
    ended = user.calibration.wait(started.id, timeout=120)  # the cluster closed under it
    assert ended.status == "error", ended
    assert ended.error is not None and ended.error["code"] == "SiteLost"
    assert "compute site doomed" in ended.error["message"]
    assert 0 < ended.runs_done < 50_000 and user.calibration.runs(started.id).total == ended.runs_done


@pytest.mark.slow
@pytest.mark.ci_only  # a real single-node Slurm cluster
def test_a_calibration_on_a_slurm_site_runs_in_dask_workers_that_are_slurm_jobs(
        engine: Engine, local_slurm: LocalSlurm) -> None:  # noqa: F811
    import json
    import os

    need_modules("slurm", "dask_jobqueue", hint="the optional 'slurm' extra: pip install -e '.[slurm]'")

    user = _twin(engine)
    jobs = str(local_slurm.root / "jobs")
    options = {"partition": local_slurm.partition, "cores": "1", "memory": "2GiB", "walltime": "00:10:00",
               "jobs": "1", "interface": "lo", "log_directory": jobs, "local_directory": jobs,
               "scheduler_options": json.dumps({"dashboard_address": "127.0.0.1:0"}),
               "job_extra_directives": json.dumps([f"--chdir={jobs}"]), "slurm_conf": str(local_slurm.conf)}
    provider = engine.as_role("pat", "provider")
    assert provider.compute.add_site("hpc", "slurm", cores=1, memory_bytes=2**31, options=options).status == "healthy"
    started = user.calibration.start("catchment", site="hpc", method="de", runs=12, seed=2, workers=1,
                                     posterior_share=0.0)
    ended = user.calibration.wait(started.id, timeout=240)
    assert ended.status == "done", ended.error
    assert ended.site == "hpc" and ended.runs_done == 12
    client = engine.runtime.workflows.services["sites"].get("hpc").client
    assert list(client.run(os.getenv, "SLURM_JOB_ID").values()) == local_slurm.jobs()  # the worker is the job
    assert sum(client.run(started_workers).values()) >= 1  # and the model ran in its sandboxed worker
