"""The trigger scheduler: manifest triggers become rows, cron ticks and dataset arrivals start runs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from twinengine.store.base import utcnow
from twinengine.twins.models import Twin
from twinengine.workflows import triggers
from twinengine.workflows.models import Trigger

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["run", "run_once"]

log = logging.getLogger("twinengine.workflows")
INTERVAL_SECONDS = 1.0


def run_once(engine: WorkflowEngine) -> int:
    """One pass over every trigger; returns the number of runs started."""
    started = 0
    with engine.db.session() as session:
        for twin in session.scalars(select(Twin)):
            triggers.materialize_manifest_triggers(session, twin, arrivals=engine.arrivals)
        now = utcnow()
        for trigger in list(session.scalars(select(Trigger).where(Trigger.enabled.is_(True)).order_by(Trigger.id))):
            try:
                with session.begin_nested():
                    if trigger.kind == "cron":
                        started += triggers.due_cron(session, engine, trigger, now)
                    elif trigger.kind == "dataset":
                        started += triggers.due_arrivals(session, engine, trigger)
            except Exception as exc:  # one broken trigger must not stop the others
                log.warning("trigger %s (%s) failed: %s", trigger.id, trigger.name, exc)
    return started


def run(engine: WorkflowEngine) -> None:
    while not engine.stopping.wait(INTERVAL_SECONDS):
        try:
            run_once(engine)
        except Exception:
            log.exception("trigger scheduler step failed")
