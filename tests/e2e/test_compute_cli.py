"""``twin site``, ``twin usage`` and ``twin quota`` against a live engine: the provider's tour, usage as a
table, CSV, APEL and a plot, quotas refusing runs, and clean errors naming the option."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from helpers import LiveEngine
from twinengine.errors import QuotaExceeded

ADD = {"process_graph": {"a": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": True}}}


def _token(live: LiveEngine, name: str, role: str) -> str:
    return live.twin_json("token", "create", "--name", name, "--role", role)["token"]


def test_sites_usage_and_quotas_from_the_cli(live: LiveEngine, tmp_path: Path) -> None:
    provider, user = _token(live, "pat", "provider"), _token(live, "uma", "user")
    listing = live.twin("site", "list", token=user)
    assert "local" in listing and "healthy" in listing
    added = live.twin_json("site", "add", "peer", "--kind", "engine", "--address", "http://127.0.0.1:9",
                           "--cores", "16", "--memory", "64G", "--bearer-token", "p33r-t0ken", token=provider)
    assert added["status"] == "down" and added["credential"] == "bearer" and "p33r" not in json.dumps(added)
    assert "draining" in live.twin("site", "drain", "local", token=provider)
    assert "healthy" in live.twin("site", "drain", "local", "--undo", token=provider)
    refused = live.twin("site", "add", "mine", "--kind", "local", "--cores", "1", token=user, expect=1)
    assert "may not compute.site.manage" in refused
    bad = live.twin("site", "add", "meta", "--kind", "engine", "--address", "http://169.254.169.254/",
                    "--cores", "1", token=provider, expect=1)
    assert "address" in bad and "metadata" in bad
    assert "removed site peer" in live.twin("site", "remove", "peer", token=provider)

    with live.client(user) as client:
        run = client.workflows.submit(ADD, sync=True)
    assert run.status == "finished"
    table = live.twin("usage", "--by", "site", token=user)
    assert "usage by site" in table and "local" in table
    rows = list(csv.DictReader(io.StringIO(live.twin("usage", "--csv", token=user))))
    assert [r["run_id"] for r in rows] == [run.id] and rows[0]["identity"] == "uma"
    apel = live.twin("usage", "--format", "apel")
    assert apel.startswith("APEL-summary-job-message: v0.3") and "GlobalUserName: uma" in apel
    plot = tmp_path / "usage.png"
    assert "plot:" in live.twin("usage", "--by", "identity", "--plot", str(plot))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "--by" in live.twin("usage", "--by", "planet", expect=1)
    assert "--since" in live.twin("usage", "--since", "yesterday", expect=1)

    assert "may not compute.quota.manage" in live.twin("quota", "set", "uma", "--core-hours", "9", token=user,
                                                       expect=1)
    live.twin("quota", "set", "uma", "--core-hours", "0", "--site", "local", "--period", "day")
    assert "uma" in live.twin("quota", "list", token=user)
    with live.client(user) as client, pytest.raises(QuotaExceeded) as refused:  # `twin run` takes a twin's
        client.workflows.submit(ADD)  # workflow; an ad-hoc graph goes through the SDK
    assert "0 core-hours per day" in refused.value.message
    assert "removed the quota" in live.twin("quota", "remove", "uma", "--site", "local")


def test_twin_run_pins_and_excludes_sites(live: LiveEngine) -> None:
    from helpers import RIVER_REACH

    with live.client() as admin:
        admin.publish_app(RIVER_REACH)
        admin.create_twin("river-reach", "reach", {"station": "RR-01"})
    unknown = live.twin("run", "reach", "forecast", "--site", "atlantis", expect=1)
    assert "options.site" in unknown and "no compute site named 'atlantis'" in unknown
    nowhere = live.twin("run", "reach", "forecast", "--exclude-site", "local", expect=1)
    assert "options.exclude_sites" in nowhere and "no site can take the run" in nowhere
    pinned = live.twin_json("run", "reach", "forecast", "--site", "local")
    assert pinned["status"] in ("queued", "running", "finished")
