"""A successful write's audit row commits in the write's own transaction; other outcomes are recorded apart.
Either way every write request leaves exactly one audit row."""

from __future__ import annotations

from sqlalchemy import select
from starlette.responses import Response

from helpers import RIVER_REACH, Engine
from twinengine.api.audit_trail import AUDITED_KEY, PENDING_KEY, record_with_commit
from twinengine.auth.models import AuditEvent


def test_each_write_leaves_one_audit_row_with_its_outcome(engine: Engine) -> None:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    uma = engine.as_role("uma", "user")
    uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    headers = engine.headers(engine.token("uma", "user"))
    for body, status in [({"reported": {"level": {"value": 1.0}}}, 200),
                         ({"reported": {"level": {"value": "high"}}}, 422),
                         ({"items": [{"twin": "reach", "reported": {"level": {"value": 2.0}}}]}, 200)]:
        path = "/api/v1/state/batch" if "items" in body else "/api/v1/twins/reach/state"
        method = engine.http.post if "items" in body else engine.http.patch
        assert method(path, json=body, headers=headers).status_code == status
    rows = engine.sdk(engine.admin_token).audit(actor="uma").items
    assert [(e.action, e.outcome, e.status) for e in rows[:3]] == [
        ("twins-state_batch", "success", 200), ("twins-state_write", "rejected", 422),
        ("twins-state_write", "success", 200)]
    assert len([e for e in rows if e.action.startswith("twins-state")]) == 3  # no second row for a success


def test_the_recorded_status_is_the_answers(engine: Engine) -> None:
    scope = {"method": "DELETE", "path": "/api/v1/twins/x", "client": ("127.0.0.1", 1)}
    with engine.runtime.db.session() as session:
        session.info[PENDING_KEY] = scope
        record_with_commit(session, Response(status_code=204))
    assert scope[AUDITED_KEY] == 204  # the middleware sees it recorded and adds no second row
    with engine.runtime.db.session(readonly=True) as session:
        row = session.scalars(select(AuditEvent).where(AuditEvent.target == "DELETE /api/v1/twins/x")).one()
    assert (row.status, row.outcome, row.actor) == (204, "success", "anonymous")
