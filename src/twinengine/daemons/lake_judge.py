"""The judge: evaluates replication rules that changed (new, suspended/resumed, a replica went BAD) or are
STUCK and due for another try, and queues repairs of BAD replicas. Placement logic lives in ``lake.rules``."""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from twinengine.lake.context import LakeTuning
from twinengine.lake.models import Rule
from twinengine.lake.repair import queue_repairs
from twinengine.lake.rules import evaluate
from twinengine.lake.schemas import RuleState
from twinengine.store.base import utcnow

__all__ = ["run_once"]


def run_once(session: Session, *, tuning: LakeTuning, limit: int = 20) -> int:
    """One pass; returns how many rules were evaluated plus repairs queued (0 = nothing to do)."""
    repairs = queue_repairs(session)
    due = utcnow() - tuning.stuck_retry
    query = select(Rule).where(Rule.state != RuleState.SUSPENDED, or_(
        Rule.dirty.is_(True), and_(Rule.state == RuleState.STUCK, Rule.evaluated_at <= due)))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rules = list(session.scalars(query.order_by(Rule.updated_at).limit(limit)))
    for rule in rules:
        evaluate(session, rule)
    return len(rules) + repairs
