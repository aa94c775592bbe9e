"""The trigger scheduler: manifest triggers become rows, cron ticks and dataset arrivals start runs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from twinengine.store.base import utcnow
from twinengine.twins.models import Twin
from twinengine.workflows import triggers
from twinengine.workflows.drift_triggers import due_drift
from twinengine.workflows.models import Trigger

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["run", "run_once", "sweep"]

log = logging.getLogger("twinengine.workflows")
INTERVAL_SECONDS = 1.0


def sweep(engine: WorkflowEngine) -> int:
    """Give every twin its app's manifest triggers (twins created before the twins hook ran); at start."""
    with engine.db.session() as session:
        return sum(triggers.materialize_manifest_triggers(session, twin, arrivals=engine.arrivals)
                   for twin in session.scalars(select(Twin)))


def run_once(engine: WorkflowEngine) -> int:
    """One pass over every enabled trigger; returns the number of runs started."""
    started = 0
    with engine.db.session() as session:
        now = utcnow()
        for trigger in list(session.scalars(select(Trigger).where(Trigger.enabled.is_(True)).order_by(Trigger.id))):
            try:
                with session.begin_nested():
                    if trigger.kind == "cron":
                        started += triggers.due_cron(session, engine, trigger, now)
                    elif trigger.kind == "dataset":
                        started += triggers.due_arrivals(session, engine, trigger)
                    elif trigger.kind == "stream_window":
                        started += triggers.due_windows(session, engine, trigger)
                    elif trigger.kind == "drift":
                        started += due_drift(session, engine, trigger)
            except Exception as exc:  # one broken trigger must not stop the others
                log.warning("trigger %s (%s) failed: %s", trigger.id, trigger.name, exc)
    return started


def run(engine: WorkflowEngine) -> None:
    try:
        sweep(engine)
    except Exception:
        log.exception("trigger sweep failed")
    while not engine.stopping.wait(INTERVAL_SECONDS):
        try:
            run_once(engine)
        except Exception:
            log.exception("trigger scheduler step failed")
