"""A ``slurm`` site's options (text, as its provider gave them) become dask-jobqueue's keywords."""

from __future__ import annotations

from twinengine.compute.site_executors import slurm_site_options


def test_a_slurm_sites_options_become_slurmcluster_keywords() -> None:
    given = {"partition": "batch", "account": "hydro", "cores": "4", "memory": "8GiB", "walltime": "01:00:00",
             "job_extra_directives": '["--exclusive"]', "scheduler_options": '{"dashboard_address": ":0"}',
             "slurm_conf": "/etc/slurm/other.conf"}
    assert slurm_site_options(given) == {
        "queue": "batch", "account": "hydro", "cores": 4, "memory": "8GiB", "walltime": "01:00:00",
        "job_extra_directives": ["--exclusive"], "scheduler_options": {"dashboard_address": ":0"}}
