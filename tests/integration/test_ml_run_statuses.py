"""A training run stopped on request ends ``canceled``, spelled as workflow runs and openEO jobs spell it;
migration 0017 renames what runs that ended before stored (SQLite and PostgreSQL), and its downgrade
restores it."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from helpers import RIVER_REACH, Engine
from twinengine.ml.models import TrainingRun
from twinengine.ml.schemas import FINAL, TrainingRunRead
from twinengine.store import migrate
from twinengine.workflows.schemas import RunStatus


def _status(engine: Engine, run_id: str) -> str:
    with engine.runtime.db.engine.connect() as conn:
        return str(conn.scalar(text("SELECT status FROM ml_training_runs WHERE id = :id"), {"id": run_id}))


def test_a_stopped_run_is_canceled_as_a_workflow_run_is_and_old_rows_are_renamed(engine: Engine) -> None:
    assert "canceled" in FINAL and RunStatus.CANCELED.value == "canceled"
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    uma = engine.as_role("uma", "user")
    twin_id = uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"}).id
    with engine.runtime.db.session() as session:
        session.add(TrainingRun(id="tr-queued", twin_id=twin_id, model="runoff_correction", created_by="uma"))
        session.add(TrainingRun(id="tr-failed", twin_id=twin_id, model="runoff_correction", created_by="uma",
                                status="failed", error="diverged"))
    stopped = uma.ml.stop("reach", "tr-queued")  # a queued run ends at once
    assert stopped.status == "canceled" and _status(engine, "tr-queued") == "canceled"

    url = engine.runtime.settings.db_url
    engine.runtime.db.dispose()
    command.downgrade(migrate.alembic_config(url), "0016")
    assert (_status(engine, "tr-queued"), _status(engine, "tr-failed")) == ("cancelled", "failed")
    engine.runtime.db.dispose()
    command.upgrade(migrate.alembic_config(url), "head")
    assert (_status(engine, "tr-queued"), _status(engine, "tr-failed")) == ("canceled", "failed")
    read = engine.http.get("/api/v1/twins/reach/training-runs/tr-queued",
                           headers=engine.headers(engine.token("uma", "user")))
    assert read.status_code == 200, read.text
    assert TrainingRunRead.model_validate(read.json()).status == "canceled"
