"""The Slurm executor seam: settings become dask-jobqueue ``SLURMCluster`` options and a worker job script.

Nothing is submitted here (``slurm_jobs=0``), so these run without Slurm: they check every option in the
sbatch script dask-jobqueue generates (partition, account, cores, memory, time). Workers really submitted
to a Slurm cluster are tested in ``tests/integration/test_workflows_slurm_cluster.py``.
"""

from __future__ import annotations

import sys

import pytest

from helpers import need_modules
from twinengine.config import Settings
from twinengine.workflows.executors import SlurmExecutor, make_executor, slurm_options


def test_settings_become_cluster_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_COMPUTE", "slurm")
    monkeypatch.setenv("TWIN_SLURM_QUEUE", "batch")
    monkeypatch.setenv("TWIN_SLURM_CORES", "8")
    settings = Settings(slurm_memory="32GiB", slurm_walltime="02:00:00", slurm_options={"processes": 2})
    assert settings.executor == "slurm"
    options = slurm_options(queue=settings.slurm_queue, cores=settings.slurm_cores, memory=settings.slurm_memory,
                            walltime=settings.slurm_walltime, jobs=settings.slurm_jobs, extra=settings.slurm_options)
    assert options == {"cores": 8, "memory": "32GiB", "walltime": "02:00:00", "jobs": 1, "queue": "batch",
                       "job_name": "twinengine-worker", "processes": 2}
    assert slurm_options(extra={"cores": 4})["cores"] == 4  # TWIN_SLURM_OPTIONS wins


def test_the_worker_job_script() -> None:
    need_modules("slurm", "dask_jobqueue", hint="the optional 'slurm' extra: pip install -e '.[slurm]'")
    options = slurm_options(queue="batch", account="dte", cores=8, memory="32GiB", walltime="02:00:00", jobs=0)
    executor = make_executor("slurm", options=options)
    try:
        assert isinstance(executor, SlurmExecutor)
        script = executor.job_script()
        assert script.startswith("#!/")
        for line in ("#SBATCH -J twinengine-worker", "#SBATCH -p batch", "#SBATCH -A dte", "#SBATCH -n 1",
                     "#SBATCH --cpus-per-task=8", "#SBATCH -t 02:00:00"):
            assert line in script, script
        assert "#SBATCH --mem=" in script
        assert "distributed.cli.dask_worker" in script or "dask worker" in script
        assert executor.address in script  # workers call back to the engine's scheduler
        assert executor.describe() == {"name": "slurm", "address": executor.address}
    finally:
        executor.close()


def test_a_virtualenv_in_a_folder_with_a_space_runs_as_one_word_in_the_job_script(
        monkeypatch: pytest.MonkeyPatch) -> None:
    need_modules("slurm", "dask_jobqueue", hint="the optional 'slurm' extra: pip install -e '.[slurm]'")
    monkeypatch.setattr(sys, "executable", "/tmp/twin engine/.venv/bin/python")
    executor = make_executor("slurm", options=slurm_options(jobs=0))
    try:
        assert "'/tmp/twin engine/.venv/bin/python' -m distributed.cli.dask_worker" in executor.job_script()
    finally:
        executor.close()
    given = make_executor("slurm", options=slurm_options(jobs=0, extra={"python": "/opt/py/bin/python3"}))
    try:
        assert "/opt/py/bin/python3 -m distributed.cli.dask_worker" in given.job_script()  # a setting wins
    finally:
        given.close()
