"""The slurm executor on a real Slurm cluster: the engine's own SLURMCluster submits a Dask worker with sbatch
to a private single-node cluster on loopback (``slurm_fixtures``), the worker starts as a Slurm job, calls
back to the scheduler in the engine, computes a workflow run, and is cancelled when the engine closes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from starlette.testclient import TestClient

from helpers import admin_token, need_modules
from slurm_fixtures import LocalSlurm, compare_with_sacct, local_slurm, slurm_accounting  # noqa: F401
from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.runtime import Runtime
from twinengine.workflows.executors import SlurmExecutor, slurm_options
from workflow_data import daily_graph, write_collection, zonal_expected, zonal_graph

pytestmark = pytest.mark.ci_only  # a real single-node Slurm cluster

GRAPH = daily_graph("max", "add", 1)


def slurm_settings(data_dir: Path, cluster: LocalSlurm) -> Settings:
    """One small worker job on the test partition; scheduler and worker talk over loopback, and the job's
    logs and scratch space stay in the cluster's folder."""
    jobs = str(cluster.root / "jobs")
    return Settings(data_dir=data_dir, executor="slurm", slurm_queue=cluster.partition, slurm_cores=1,
                    slurm_memory="2GiB", slurm_walltime="00:10:00", slurm_jobs=1,
                    slurm_options={"interface": "lo", "scheduler_options": {"dashboard_address": "127.0.0.1:0"},
                                   "log_directory": jobs, "local_directory": jobs,
                                   "job_extra_directives": [f"--chdir={jobs}"]})


@pytest.mark.slow
def test_a_run_is_computed_by_dask_workers_that_are_slurm_jobs(local_slurm: LocalSlurm,  # noqa: F811
                                                               tmp_path: Path) -> None:
    need_modules("slurm", "dask_jobqueue", hint="the optional 'slurm' extra: pip install -e '.[slurm]'")
    ds = write_collection(tmp_path / "collections")
    runtime = Runtime.from_settings(slurm_settings(tmp_path, local_slurm))
    try:
        executor = runtime.workflows.executor
        assert isinstance(executor, SlurmExecutor)
        assert sys.executable in executor.job_script()  # the worker job runs this virtualenv's python
        try:  # a job that never starts would otherwise leave the run waiting for workers until the test timeout
            executor.client.wait_for_workers(1, timeout=60)
        except TimeoutError:
            pytest.fail(f"no worker joined; squeue lists {local_slurm.jobs()}\n{local_slurm.logs()}")
        with TestClient(create_app(runtime=runtime)) as http:
            token = admin_token(runtime.settings)
            client = Client("http://testserver", token, http=http)
            run = client.workflows.submit(GRAPH, sync=True)
            assert run.status == "finished", run.error
            assert run.executor == "slurm"
            path = client.workflows.download(run.id, "result.nc", tmp_path / "result.nc")
            zonal = client.workflows.submit(zonal_graph("mean"), sync=True)  # aggregate_spatial on Slurm workers
            assert zonal.status == "finished", zonal.error
            zonal_path = client.workflows.download(zonal.id, "result.json", tmp_path / "zonal.json")
        result = xr.open_dataset(path, engine="h5netcdf").load()
        expected = ds.resample(time="D").max() + 1
        np.testing.assert_allclose(result["rain"].values, expected["rain"].values, rtol=1e-6)
        zonal_values = np.asarray(json.loads(zonal_path.read_text())["data"], dtype=float)
        np.testing.assert_allclose(zonal_values[0, :, 0], zonal_expected(ds, "mean"), rtol=1e-6)

        # the only Dask worker is the Slurm job that sbatch started on the node
        workers = executor.client.run(os.getenv, "SLURM_JOB_ID")
        queued = local_slurm.jobs()
        assert len(queued) == 1, queued
        assert list(workers.values()) == queued
        assert all(address.startswith("tcp://127.0.0.1:") for address in workers), workers
        job = local_slurm.job(queued[0])
        assert (job["JobName"], job["JobState"], job["NodeList"], job["Partition"]) == \
            ("twinengine-worker", "RUNNING", "localhost", local_slurm.partition)
    finally:
        runtime.close()  # closes the executor: dask-jobqueue cancels its jobs
    assert local_slurm.wait_until_no_jobs() == []
    assert local_slurm.job(queued[0])["JobState"] == "CANCELLED"



@pytest.mark.slow
def test_a_slurm_runs_core_seconds_are_matched_against_sacct(slurm_accounting: LocalSlurm,  # noqa: F811
                                                             tmp_path: Path) -> None:
    """What the engine charges for work on a Slurm worker job (the task stream's compute intervals) against
    the job's own record in the cluster's accounts (``slurm_fixtures.compare_with_sacct``).

    Charged core-seconds are time the tasks held the job's core, so they are at least the CPU the work took
    (the job's TotalCPU less that of the same job left idle as long) and at most the core-seconds the job was
    allocated; on an idle host they equal the CPU (bench/accounting.py prints the ratio, goal within 5 %)."""
    need_modules("slurm", "dask_jobqueue", hint="the optional 'slurm' extra: pip install -e '.[slurm]'")
    options = slurm_options(queue=slurm_accounting.partition, cores=1, memory="2GiB", walltime="00:10:00", jobs=1,
                            extra=slurm_settings(tmp_path, slurm_accounting).slurm_options)
    got = compare_with_sacct(slurm_accounting, options, tasks=4, iterations=4_000_000)
    print(got)
    # sacct's CPU of a cancelled job's step has a resolution of about a second (its last sample), on each job
    assert got.job_cpu >= got.tasks_cpu - 1.0, got  # sacct saw the tasks' CPU in that job
    assert got.charged >= 0.99 * got.tasks_cpu, got
    assert got.charged >= got.work_cpu - 2.0, got  # every core-second the work took is charged
    assert got.charged <= got.allocated + 1.0, got  # never more than the job was allocated (whole seconds)
