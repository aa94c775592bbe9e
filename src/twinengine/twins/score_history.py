"""The score history of a twin's forecasts: scores per forecasting system (workflow, model version, ensemble
size), lead and period of valid time (a day by default), kept in ``verification_scores``.

It is brought up to date incrementally, when a forecast is recorded (the default period, and every period
someone asked for) and when the history is read: a cursor remembers the twin's head revision and newest
forecast, and only the periods that new forecasts or new observations touch are scored again (a late or
corrected observation changes its period's scores). So following a score over months reads rows, not every
forecast value again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.errors import ValidationFailed
from twinengine.quality.verification import verify
from twinengine.store.base import utcnow
from twinengine.twins import forecast_reads
from twinengine.twins import service as twins
from twinengine.twins.forecast_models import Forecast, ForecastValue, ScoreCursor, ScoreRecord
from twinengine.twins.forecast_schemas import PeriodScores, ScoreHistoryRead
from twinengine.twins.models import StateValue, Twin
from twinengine.twins.schemas import StateKind

__all__ = ["DEFAULT_PERIOD", "TOLERANCE", "history", "hold", "period_start", "refresh", "refresh_after_forecast"]

DEFAULT_PERIOD = timedelta(days=1)
MIN_PERIOD, MAX_PERIOD = timedelta(hours=1), timedelta(days=366)
TOLERANCE = timedelta(minutes=30)  # as verification's default: the nearest observation within 30 min
MAX_PERIODS = 100_000  # periods one forecast can touch (a ten-year forecast in hours)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def period_start(moment: datetime, seconds: int) -> datetime:
    """The start of the period (counted from 1970-01-01 UTC) that ``moment`` falls in."""
    elapsed = (moment.astimezone(UTC) - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=elapsed // seconds * seconds)


def _span(first: datetime, last: datetime, seconds: int) -> set[datetime]:
    start, end = period_start(first, seconds), period_start(last, seconds)
    count = int((end - start).total_seconds() // seconds) + 1
    return {start + timedelta(seconds=seconds * i) for i in range(min(count, MAX_PERIODS))}


def _touched(session: Session, twin: Twin, prop: str, seconds: int, cursor: ScoreCursor | None) -> set[datetime]:
    """Periods whose scores may have changed since the cursor: those of new forecasts' valid times and those
    new observations can be matched in."""
    spans = (select(func.min(ForecastValue.valid_time), func.max(ForecastValue.valid_time))
             .join(Forecast, Forecast.id == ForecastValue.forecast_id)
             .where(Forecast.twin_id == twin.id, Forecast.property == prop).group_by(Forecast.id))
    if cursor is not None and cursor.forecasts_at is not None:
        spans = spans.where(Forecast.recorded_at > cursor.forecasts_at)
    touched: set[datetime] = set()
    for first, last in session.execute(spans):
        touched |= _span(first, last, seconds)
    if cursor is not None:
        stamps = session.scalars(select(StateValue.timestamp).where(
            StateValue.twin_id == twin.id, StateValue.property == prop, StateValue.kind == StateKind.REPORTED.value,
            StateValue.revision > cursor.head_revision))
        for stamp in stamps:
            touched |= {period_start(stamp - TOLERANCE, seconds), period_start(stamp + TOLERANCE, seconds)}
    return touched


def _score(session: Session, twin: Twin, prop: str, seconds: int, start: datetime) -> int:
    """Score one period again: its rows are replaced by what its forecasts and observations give now (nothing
    to match in a period without observations: its forecasts are not read)."""
    end = start + timedelta(seconds=seconds)
    observed = session.scalar(select(StateValue.revision).where(
        StateValue.twin_id == twin.id, StateValue.property == prop, StateValue.kind == StateKind.REPORTED.value,
        StateValue.timestamp >= start - TOLERANCE, StateValue.timestamp < end + TOLERANCE).limit(1))
    points = [] if observed is None else forecast_reads.forecast_points(
        session, twin, prop, lead=None, since=start, until=end, workflow=None, model_version=None, threshold=None)
    groups = verify(points, forecast_reads.observations_near(session, twin, prop, points, TOLERANCE),
                    tolerance=TOLERANCE) if points else []
    session.execute(delete(ScoreRecord).where(ScoreRecord.twin_id == twin.id, ScoreRecord.property == prop,
                                              ScoreRecord.period_seconds == seconds,
                                              ScoreRecord.period_start == start))
    now = utcnow()
    rows = [{"twin_id": twin.id, "property": prop, "period_seconds": seconds, "period_start": start,
             "workflow": g.workflow or "", "model_version": g.model_version or "", "members": g.members or 0,
             "lead_seconds": g.lead_seconds, "n": int(g.scores.get("n") or 0), "computed_at": now,
             "scores": {k: v for k, v in g.scores.items() if k != "n"} | (
                 {"rank_histogram": g.rank_histogram} if g.rank_histogram is not None else {})}
            for g in groups]
    if rows:
        session.execute(insert(ScoreRecord), rows)
    return len(rows)


def _locked_cursor(session: Session, twin: Twin, prop: str, seconds: int) -> ScoreCursor | None:
    """The cursor, locked until commit (None the first time, then the row exists, locked): refreshes of one
    history queue instead of writing the same periods side by side (PostgreSQL; SQLite has one writer)."""
    upsert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    created = session.execute(upsert(ScoreCursor).values(
        twin_id=twin.id, property=prop, period_seconds=seconds, head_revision=-1, forecasts_at=None,
        updated_at=utcnow()).on_conflict_do_nothing().returning(ScoreCursor.head_revision)).first()
    cursor = session.scalars(select(ScoreCursor).where(
        ScoreCursor.twin_id == twin.id, ScoreCursor.property == prop, ScoreCursor.period_seconds == seconds)
        .with_for_update().execution_options(populate_existing=True)).one()
    return None if created is not None else cursor


def hold(session: Session, twin: Twin, prop: str) -> None:
    """Lock the default history's cursor of ``prop`` before a forecast of it is recorded: forecasts of one
    property are then recorded (their ``recorded_at`` taken) and committed one after the other, so a refresh
    that saw the newest of them has seen every earlier one, which it could miss if a forecast recorded earlier
    committed later (PostgreSQL; SQLite has one writer anyway). Every other lock on cursors is taken after
    this one or alone, so the order cannot deadlock."""
    _locked_cursor(session, twin, prop, int(DEFAULT_PERIOD.total_seconds()))


def refresh(session: Session, twin: Twin, prop: str, seconds: int) -> int:
    """Bring the history of one period length up to date; returns the periods scored again."""
    cursor = _locked_cursor(session, twin, prop, seconds)
    head = session.scalar(select(Twin.head_revision).where(Twin.id == twin.id)) or 0
    newest = session.scalar(select(func.max(Forecast.recorded_at)).where(Forecast.twin_id == twin.id,
                                                                         Forecast.property == prop))
    if cursor is not None and cursor.head_revision == head and cursor.forecasts_at == newest:
        return 0
    touched = sorted(_touched(session, twin, prop, seconds, cursor))
    for start in touched:
        _score(session, twin, prop, seconds, start)
    session.execute(update(ScoreCursor).where(
        ScoreCursor.twin_id == twin.id, ScoreCursor.property == prop, ScoreCursor.period_seconds == seconds)
        .values(head_revision=head, forecasts_at=newest, updated_at=utcnow()))
    return len(touched)


def refresh_after_forecast(session: Session, twin: Twin, prop: str) -> None:
    """A forecast was recorded: keep the default history, and every other one someone asked for, current."""
    asked = set(session.scalars(select(ScoreCursor.period_seconds).where(ScoreCursor.twin_id == twin.id,
                                                                        ScoreCursor.property == prop)))
    for seconds in sorted(asked | {int(DEFAULT_PERIOD.total_seconds())}):
        refresh(session, twin, prop, seconds)


def _read(row: ScoreRecord) -> PeriodScores:
    scores: dict[str, Any] = dict(row.scores)
    return PeriodScores(period_start=row.period_start, workflow=row.workflow or None,
                        model_version=row.model_version or None, members=row.members or None,
                        lead_seconds=row.lead_seconds, n=row.n, **scores)


def history(session: Session, *, principal: Principal, ref: str, prop: str, period: timedelta = DEFAULT_PERIOD,
            lead: timedelta | None = None, since: datetime | None = None, until: datetime | None = None,
            workflow: str | None = None, model_version: str | None = None) -> ScoreHistoryRead:
    """The kept scores per period (brought up to date first), oldest first."""
    twin = twins.get_twin(session, principal=principal, ref=ref)
    unit = forecast_reads.numeric_property(session, twin, prop)
    if not MIN_PERIOD <= period <= MAX_PERIOD or period.total_seconds() % 1:
        raise ValidationFailed.one("period", f"a period is whole seconds from {MIN_PERIOD} to {MAX_PERIOD.days} days")
    seconds = int(period.total_seconds())
    refresh(session, twin, prop, seconds)
    query = select(ScoreRecord).where(ScoreRecord.twin_id == twin.id, ScoreRecord.property == prop,
                                      ScoreRecord.period_seconds == seconds)
    if lead is not None:
        query = query.where(ScoreRecord.lead_seconds == round(lead.total_seconds()))
    if since is not None:
        query = query.where(ScoreRecord.period_start >= period_start(since, seconds))
    if until is not None:
        query = query.where(ScoreRecord.period_start < until)
    if workflow is not None:
        query = query.where(ScoreRecord.workflow == workflow)
    if model_version is not None:
        query = query.where(ScoreRecord.model_version == model_version)
    rows = session.scalars(query.order_by(ScoreRecord.period_start, ScoreRecord.workflow, ScoreRecord.model_version,
                                          ScoreRecord.members, ScoreRecord.lead_seconds)
                           .limit(forecast_reads.MAX_VALUES))
    return ScoreHistoryRead(twin_id=twin.id, property=prop, unit=unit, period_seconds=seconds,
                            tolerance_seconds=TOLERANCE.total_seconds(), items=[_read(r) for r in rows])
