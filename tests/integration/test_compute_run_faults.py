"""Site faults for a plain run (not an ensemble's member): a Dask site (a real scheduler and worker,
separate processes) killed while the run's tasks are on it is marked down; the run is placed again without
it and rerun once on ``local``; its log, provenance and usage record say so, with one usage record."""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest
from test_compute_faults import Cluster, cluster  # noqa: F401  (the fixture: a scheduler and a worker)

from helpers import Engine
from twinengine.workflows import runner
from workflow_data import daily_graph, write_collection


def _kill_on_first_progress(monkeypatch: pytest.MonkeyPatch, dask_site: Cluster) -> list[str]:
    """Kill the cluster (SIGKILL) at the run's first progress report there (its tasks in the cluster);
    returns the sites the run's work waited on, in order."""
    sites: list[str] = []
    original = runner.watching

    def watching(engine: Any, site: str, progress: Any) -> Any:
        sites.append(site)
        inner = original(engine, site, progress)
        if site != "cluster":
            return inner
        fired: list[bool] = []

        def first(done: int, total: int) -> None:
            if not fired:
                fired.append(True)
                dask_site.signal(signal.SIGKILL)
            inner(done, total)

        return first

    monkeypatch.setattr(runner, "watching", watching)
    return sites


def test_a_run_whose_site_dies_is_placed_again_and_rerun(engine: Engine, cluster: Cluster,  # noqa: F811
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    write_collection(engine.runtime.data_dir / "collections")
    engine.as_role("pat", "provider").compute.add_site("cluster", "dask", address=cluster.address, cores=2,
                                                       memory_bytes=2**31)
    uma = engine.as_role("uma", "user")
    sites = _kill_on_first_progress(monkeypatch, cluster)
    run = uma.workflows.submit(daily_graph("max", "add", 1), sync=True, options={"site": "cluster"})
    assert run.status == "finished", run.error
    assert sites == ["cluster", "local"]  # started on the cluster, rerun once on local
    assert uma.compute.site("cluster").status == "down"
    logs = " ".join(e.message for e in uma.workflows.logs(run.id))
    assert "site cluster was lost under this run" in logs and "rerun on site local" in logs
    provenance = json.dumps(uma.workflows.provenance(run.id))
    assert '"twin:site": "local"' in provenance and "site cluster was lost mid-run" in provenance
    records = [r for r in uma.compute.usage_records().items if r.run_id == run.id]
    assert [r.site for r in records] == ["local"]  # one record, of the attempt that ended
    assets = [a["name"] for a in uma.workflows.get(run.id).assets]
    assert len(assets) == len(set(assets)) == 1, assets  # the result kept once
