"""Triggers: cron schedules, webhooks with a per-trigger secret, dataset arrival, and the seam for stream
windows and drift. Each event is recorded once per (trigger, event key) in the transaction that creates
its run, so one event starts exactly one run; the event's data binds to the run's parameters.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from twinengine.auth.groups import with_groups
from twinengine.auth.principal import Principal, Role
from twinengine.errors import (
    AuthenticationRequired,
    TriggerNameTaken,
    TriggerNotFound,
    ValidationFailed,
    WorkflowNotFound,
)
from twinengine.store.base import lock_for_delete, utcnow
from twinengine.twins import service as twins
from twinengine.twins import standing
from twinengine.twins.models import Twin
from twinengine.workflows import service as runs
from twinengine.workflows.arrival_feeds import Arrival, ArrivalFeed, ChainedArrivals, LocalArrivals
from twinengine.workflows.models import Trigger, TriggerEvent, WorkflowRun
from twinengine.workflows.schemas import TriggerCreate

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["Arrival", "ArrivalFeed", "ChainedArrivals", "LocalArrivals", "create_trigger", "delete_trigger", "fire",
           "fire_stream_window", "fire_webhook", "list_triggers", "materialize_manifest_triggers", "next_tick"]


def next_tick(schedule: str, after: datetime) -> datetime:
    value: datetime = croniter(schedule, after).get_next(datetime)
    return value


def _check_config(body: TriggerCreate, streams: Any = ()) -> dict[str, Any]:
    config: dict[str, Any] = {"parameters": body.parameters, "bind": body.bind}
    if body.kind == "cron":
        if not body.schedule or not croniter.is_valid(body.schedule):
            raise ValidationFailed.one("schedule", f"{body.schedule!r} is not a cron expression (e.g. '0 * * * *')")
        config.update(schedule=body.schedule, misfire=body.misfire)
    if body.kind == "dataset":
        if not body.collection:
            raise ValidationFailed.one("collection", "a dataset trigger needs a collection id or pattern")
        config["collection"] = body.collection
    if body.kind == "stream_window" and (body.stream is not None or body.count is not None):
        if body.stream is None or body.stream not in streams:
            known = ", ".join(sorted(streams)) or "none"
            raise ValidationFailed.one("stream", f"{body.stream!r} is not a stream of this twin's app ({known})")
        if body.count is None:
            raise ValidationFailed.one("count", "a stream window trigger on a stream needs count (records)")
        config.update(stream=body.stream, count=body.count)
    if body.skill is not None:
        if body.kind != "drift":
            raise ValidationFailed.one("skill", "only a drift trigger takes a skill rule")
        config["skill"] = body.skill.model_dump(mode="json", exclude_none=True)
    return config


def _add(session: Session, twin: Twin, body: TriggerCreate, *, owner: str, source: str,
         arrivals: ArrivalFeed | None = None) -> tuple[Trigger, str | None]:
    manifest = twins.manifest_for(session, twin)
    if body.workflow not in manifest.workflows:
        raise WorkflowNotFound(f"app {twin.app_name}@{twin.app_version} declares no workflow {body.workflow!r}")
    config = _check_config(body, manifest.streams)
    if body.skill is not None:
        from twinengine.twins.forecasts import numeric_property

        numeric_property(session, twin, body.skill.property, loc="skill.property")
    secret = secrets.token_urlsafe(24) if body.kind == "webhook" else None
    now = utcnow()
    trigger = Trigger(id=f"trg-{secrets.token_hex(6)}", twin_id=twin.id, name=body.name, kind=body.kind,
                      workflow=body.workflow, config=config, source=source, owner=owner,
                      secret_sha256=hashlib.sha256(secret.encode()).hexdigest() if secret else None,
                      enabled=True, created_at=now,
                      next_fire_at=next_tick(config["schedule"], now) if body.kind == "cron" else None)
    if body.kind == "dataset" and arrivals is not None:  # what exists now is history, not an arrival
        trigger.cursor = arrivals.cursor_at(now)
    try:
        with session.begin_nested():
            session.add(trigger)
    except IntegrityError:
        raise TriggerNameTaken(f"twin {twin.name} has a trigger named {body.name!r} already",
                               details=[{"loc": "name", "msg": "a trigger of this twin has this name"}]) from None
    return trigger, secret


def create_trigger(session: Session, *, principal: Principal, twin_ref: str, body: TriggerCreate,
                   arrivals: ArrivalFeed | None = None) -> tuple[Trigger, str | None]:
    twin = twins.get_twin(session, principal=principal, ref=twin_ref, action="twin.operate")
    return _add(session, twin, body, owner=principal.name, source="twin", arrivals=arrivals)


def list_triggers(session: Session, *, principal: Principal, twin_ref: str,
                  arrivals: ArrivalFeed | None = None) -> list[Trigger]:
    twin = twins.get_twin(session, principal=principal, ref=twin_ref)
    return list(session.scalars(select(Trigger).where(Trigger.twin_id == twin.id).order_by(Trigger.name)))


def delete_trigger(session: Session, *, principal: Principal, twin_ref: str, name: str) -> None:
    twin = twins.get_twin(session, principal=principal, ref=twin_ref, action="twin.operate")
    row = session.scalar(select(Trigger).where(Trigger.twin_id == twin.id, Trigger.name == name))
    if row is None:
        raise TriggerNotFound(f"twin {twin.name} has no trigger {name!r}")
    lock_for_delete(session, row, TriggerNotFound(f"twin {twin.name} has no trigger {name!r}"))
    session.delete(row)
    session.flush()


def materialize_manifest_triggers(session: Session, twin: Twin, *, arrivals: ArrivalFeed | None = None) -> int:
    """The app's manifest triggers become rows of this twin (once), owned by the twin's owner.

    Runs when a twin is created (a twins hook, in the same transaction) and once when the scheduler starts,
    for twins that existed before. Without ``arrivals``, a dataset trigger counts arrivals from its creation
    time (the scheduler sets its cursor from ``created_at``)."""
    manifest = twins.manifest_for(session, twin)
    have = set(session.scalars(select(Trigger.name).where(Trigger.twin_id == twin.id)))
    added = 0
    for spec in manifest.triggers:
        if spec.name in have or spec.kind == "manual":
            continue
        extra = spec.model_extra or {}
        body = TriggerCreate(name=spec.name, kind=spec.kind, workflow=spec.workflow, schedule=extra.get("schedule"),
                             misfire=extra.get("misfire", "run_once"), collection=extra.get("collection"),
                             stream=extra.get("stream"), count=extra.get("count"),
                             parameters=extra.get("parameters") or {}, bind=extra.get("bind") or {},
                             skill=extra.get("skill"))
        try:
            _add(session, twin, body, owner=twin.owner, source="manifest", arrivals=arrivals)
        except TriggerNameTaken:  # another engine (or the scheduler) materialized it a moment ago
            continue
        except ValidationFailed:  # a manifest trigger this twin cannot have (as before: skipped, not fatal)
            continue
        added += 1
    return added


def _lookup(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ValidationFailed.one(f"event.{path}", "the event carries no such field")
        value = value[part]
    return value


def fire(session: Session, engine: WorkflowEngine, trigger: Trigger, *, event_key: str,
         data: dict[str, Any], parameters: dict[str, Any] | None = None) -> WorkflowRun | None:
    """Record the event and start its run, once: a repeated (trigger, key) returns None and starts nothing.

    ``parameters`` (what a stream function passed) override the trigger's fixed and bound ones. Drift
    triggers (the AI lifecycle) call this with their own keys and data. A trigger whose owner may no longer
    operate its twin (``twins.standing``) fires nothing.
    """
    if standing.lost(session, identity=trigger.owner, twin_id=trigger.twin_id) is not None:
        return None
    config = trigger.config
    given = parameters or {}
    parameters = dict(config.get("parameters") or {})
    for param, path in (config.get("bind") or {}).items():
        parameters[param] = _lookup(data, path)
    parameters.update(given)
    try:
        with session.begin_nested():
            event = TriggerEvent(trigger_id=trigger.id, event_key=event_key[:200], data=data)
            session.add(event)
            session.flush()
    except IntegrityError:
        return None
    owner = with_groups(session, Principal(name=trigger.owner, role=Role.USER, issuer="internal"))
    run = runs.submit_twin_workflow(session, engine, principal=owner, twin_ref=trigger.twin_id,
                                    workflow=trigger.workflow, parameters=parameters, trigger_id=trigger.id)
    event.run_id = run.id
    session.flush()
    engine.notify(session)
    return run


def fire_stream_window(session: Session, engine: WorkflowEngine, *, twin_id: str, workflow: str,
                       parameters: dict[str, Any], event_key: str) -> WorkflowRun | None:
    """A function on arrival called ``start_workflow`` on a stream window: fire the twin's stream-window
    trigger of that workflow (created as ``stream_<workflow>`` on first use, so it is listed, can be
    disabled, and keeps the events). One event key starts at most one run; a disabled trigger starts none."""
    trigger = session.scalar(select(Trigger).where(Trigger.twin_id == twin_id, Trigger.kind == "stream_window",
                                                   Trigger.workflow == workflow).order_by(Trigger.created_at))
    if trigger is None:
        twin = session.get(Twin, twin_id)
        if twin is None:
            return None
        body = TriggerCreate(name=f"stream_{workflow}"[:64], kind="stream_window", workflow=workflow)
        trigger, _ = _add(session, twin, body, owner=twin.owner, source="function")
    if not trigger.enabled:
        return None
    data = {"workflow": workflow, "parameters": parameters, "event": event_key}
    return fire(session, engine, trigger, event_key=f"stream:{event_key}", data=data, parameters=parameters)


def fire_webhook(session: Session, engine: WorkflowEngine, *, trigger_id: str, secret: str | None,
                 data: dict[str, Any], delivery: str | None) -> WorkflowRun | None:
    row = session.get(Trigger, trigger_id)
    if row is None or row.kind != "webhook" or not row.enabled:
        raise TriggerNotFound(f"no webhook trigger {trigger_id!r}")
    if not secret or not row.secret_sha256 or not hmac.compare_digest(
            hashlib.sha256(secret.encode()).hexdigest(), row.secret_sha256):
        raise AuthenticationRequired("this webhook needs its secret in X-Twin-Trigger-Secret")
    return fire(session, engine, row, event_key=delivery or secrets.token_hex(12), data=data)


def due_cron(session: Session, engine: WorkflowEngine, trigger: Trigger, now: datetime) -> int:
    """Fire a cron trigger whose tick has come; missed ticks run once (misfire run_once) or are skipped."""
    if trigger.next_fire_at is None or trigger.next_fire_at > now:
        return 0
    schedule, misfire = trigger.config["schedule"], trigger.config.get("misfire", "run_once")
    tick, fired = trigger.next_fire_at, 0
    latest = tick
    while True:
        following = next_tick(schedule, latest)
        if following > now:
            break
        latest = following
    missed = latest != tick
    if not missed or misfire == "run_once":
        data = {"scheduled_for": latest.isoformat(), "missed_ticks_since": tick.isoformat() if missed else None}
        if fire(session, engine, trigger, event_key=f"cron:{latest.isoformat()}", data=data) is not None:
            fired = 1
    trigger.next_fire_at = next_tick(schedule, latest)
    return fired


def due_arrivals(session: Session, engine: WorkflowEngine, trigger: Trigger) -> int:
    if engine.arrivals is None:
        return 0
    if trigger.cursor is None:  # a new trigger counts arrivals from its creation, not from history
        trigger.cursor = engine.arrivals.cursor_at(trigger.created_at)
    arrivals, cursor = engine.arrivals.since(trigger.cursor)
    fired = 0
    # The identity the runs act for (a manifest trigger's: the twin's owner) must be able to read the item and
    # its collection: a container of the same name that another user made fires nothing here.
    owner = with_groups(session, Principal(name=trigger.owner, role=Role.USER, issuer="internal"))
    for arrival in arrivals:
        if fnmatch.fnmatchcase(arrival.collection, trigger.config.get("collection", "")) and \
                engine.arrivals.readable_by(arrival, owner):
            key = f"arrival:{arrival.collection}:{arrival.item}:{arrival.at.isoformat()}"
            fired += fire(session, engine, trigger, event_key=key, data=arrival.data()) is not None
    trigger.cursor = cursor
    return fired


def due_windows(session: Session, engine: WorkflowEngine, trigger: Trigger) -> int:
    """A stream window trigger on a stream: one run per full window of ``count`` records, in offset order.
    The cursor (the next window's first offset) moves in the transaction that records the events; records
    already in the stream on the trigger's first pass are history."""
    end_of = engine.services.get("stream_end")
    stream, count = trigger.config.get("stream"), trigger.config.get("count")
    if end_of is None or not stream or not count:
        return 0
    end = int(end_of(trigger.twin_id, stream))
    if trigger.cursor is None:
        trigger.cursor = str(end)
        return 0
    start, fired = int(trigger.cursor), 0
    while start + count <= end:
        data = {"stream": stream, "first_offset": start, "last_offset": start + count - 1, "count": count}
        key = f"window:{stream}:{start}-{start + count - 1}"
        fired += fire(session, engine, trigger, event_key=key, data=data) is not None
        start += count
    trigger.cursor = str(start)
    return fired
