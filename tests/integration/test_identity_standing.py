"""Work done in a person's name checks the person is still active before it acts: a run queued for a disabled
identity (by an admin, or held while its OpenID provider disowns the person) never starts, whether it has a
twin or not (a schedule's or trigger's run, an openEO job)."""

from __future__ import annotations

from typing import Any

from helpers import Engine
from streams_fixtures import eventually
from twinengine.auth.principal import Principal, Role
from twinengine.workflows import service as runs
from twinengine.workflows.models import WorkflowRun

SUM = {"process_graph": {"a": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": True}}}


def _ended(engine: Engine, run_id: str) -> Any:
    with engine.runtime.db.session(readonly=True) as session:
        run = session.get_one(WorkflowRun, run_id)
        return run if run.status in ("finished", "error", "canceled") else None


def test_a_run_of_no_twin_does_not_start_for_a_disabled_identity(engine: Engine) -> None:
    uma = engine.token("uma", "user")
    assert engine.http.get("/api/v1/me", headers=engine.headers(uma)).status_code == 200
    disabled = engine.http.patch("/api/v1/identities/uma", json={"disabled": True},
                                 headers=engine.headers(engine.admin_token))
    assert disabled.status_code == 200 and disabled.json()["disabled_by"] == "admin", disabled.text
    with engine.runtime.db.session() as session:  # as a trigger or a schedule submits it: no token of hers
        run_id = runs.submit(session, engine.runtime.workflows, principal=Principal("uma", Role.USER),
                             process=SUM).id
    engine.runtime.workflows.notify()
    run = eventually(lambda: _ended(engine, run_id))
    assert run.status == "error" and run.error["code"] == "GrantRevoked", (run.status, run.error)
    assert "uma was disabled" in run.error["message"]
