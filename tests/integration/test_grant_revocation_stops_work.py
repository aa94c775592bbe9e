"""Work someone started on another's twin stops when their right to operate it goes: a run in progress ends
as ``error`` ``GrantRevoked`` (its app code stopped mid-node) and writes no revision after the revocation, a
queued one never starts, and a trigger they own fires nothing more."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from helpers import Engine, make_app
from twinengine.client import Client
from twinengine.workflows import triggers as trigger_service
from twinengine.workflows.models import Trigger

NAP = '''
import time
from twinengine.app import app_process


@app_process(summary="Sleeps, then answers how long", cacheable=False)
def nap(seconds: float, after: int = 0) -> float:
    time.sleep(seconds)
    return seconds
'''

# a revision, a long nap (the run is there when the grant goes), then another revision
SLOW = {"parameters": [{"name": "seconds", "schema": {"type": "number"}, "default": 120}], "process_graph": {
    "first": {"process_id": "update_twin_state", "arguments": {"reported": {"level": 1.0}}},
    "wait": {"process_id": "nap", "namespace": "nap-app",
             "arguments": {"seconds": {"from_parameter": "seconds"}, "after": {"from_node": "first"}}},
    "second": {"process_id": "update_twin_state", "arguments": {"reported": {"level": {"from_node": "wait"}}},
               "result": True}}}


@pytest.fixture
def twin(engine: Engine, tmp_path: Path) -> tuple[Client, Client]:
    """ann's twin ``napper`` of an app whose ``slow`` workflow writes, naps two minutes, writes again;
    bob may operate it."""
    engine.as_role("ada", "developer").publish_app(make_app(
        tmp_path, name="nap-app", files={"nap_app/procs.py": NAP, "workflows/slow.json": json.dumps(SLOW)},
        manifest={"workflows": {"slow": {"process_graph": "workflows/slow.json"}}}))
    ann, bob = engine.as_role("ann", "user"), engine.as_role("bob", "user")
    ann.create_twin("nap-app", "napper", {"station": "N1"})
    ann.grant("napper", "bob", "operate")
    return ann, bob


def test_a_run_in_progress_ends_when_the_grant_is_revoked(twin: tuple[Client, Client]) -> None:
    ann, bob = twin
    run = bob.workflows.run("napper", "slow")
    deadline = time.monotonic() + 60
    while ann.revisions("napper").total < 1:  # its first revision is written: it naps now
        assert time.monotonic() < deadline, bob.workflows.get(run.id)
        time.sleep(0.05)
    assert bob.workflows.get(run.id).status == "running"
    ann.revoke_grant("napper", "bob")
    final = ann.workflows.wait(run.id, timeout=60)  # well before its two-minute nap would end
    assert final.status == "error" and final.error is not None, final
    assert final.error["code"] == "GrantRevoked" and "bob" in final.error["message"], final.error
    assert ann.revisions("napper").total == 1  # nothing written after the revocation


def test_a_queued_run_never_starts_and_a_trigger_fires_no_more(engine: Engine, twin: tuple[Client, Client]) -> None:
    from sqlalchemy import select

    from twinengine.daemons.workflows_runner import run_once

    ann, bob = twin
    runtime = engine.runtime
    runtime.workflows.stop(grace=2.0)  # no worker takes the run: it stays queued while the grant goes
    queued = bob.workflows.run("napper", "slow", {"seconds": 0.1})
    added = bob.workflows.add_trigger("napper", "bobs_hook", "webhook", "slow")
    assert bob.workflows.get(queued.id).status == "queued"
    ann.revoke_grant("napper", "bob")
    assert run_once(runtime.workflows) == 1  # the worker takes it up and ends it without running it
    ended = ann.workflows.get(queued.id)
    assert ended.status == "error" and ended.error is not None and ended.error["code"] == "GrantRevoked", ended
    with runtime.db.session() as session:
        trigger = session.scalars(select(Trigger).where(Trigger.id == added.id)).one()
        assert trigger.owner == "bob"
        fired = trigger_service.fire(session, runtime.workflows, trigger, event_key="after-revocation", data={})
    assert fired is None
    assert ann.revisions("napper").total == 0
