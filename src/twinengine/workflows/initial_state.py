"""Where a run of a twin's workflow starts: the graph parameters its app maps from the twin's state
(``workflows.<name>.initial_state``, e.g. ``storage_mm: storage``) take the twin's reported values, so a forecast
starts from what the twin knows (an assimilated storage, the level last reported) rather than from the graph's
defaults. A parameter may list several properties (``storage_mm: [storage, storage_from_level]``): the newest
value among them, at the same time the first listed, so a twin no assimilation has corrected still starts from
what its gauge says, and one that is assimilated starts from the analysis. A parameter the request gives wins (a
what-if of another storage), and ``start`` picks another state (as of a revision or a time: a hindcast) or none
(``state: false``). What the run started from is recorded with it (``options.start``), shown on its page and in
its provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.catalog.manifest import Manifest
from twinengine.errors import ValidationFailed
from twinengine.quality.spec import Flag
from twinengine.twins import service as twins
from twinengine.twins.models import StateRevision, Twin
from twinengine.twins.schemas import newest_of
from twinengine.workflows.schemas import RunStart, StartRead

__all__ = ["hindcast_from", "member_values", "start_of", "start_read", "start_words", "starting_values"]

KEPT = (Flag.GOOD, Flag.SUSPECT)  # a value flagged bad is never where a run starts


def starting_values(session: Session, *, principal: Principal, twin: Twin, manifest: Manifest, workflow: str,
                    given: Mapping[str, Any], start: RunStart | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The parameters the twin's state gives the run (those the request left out), and the record of its start
    (None: the workflow maps no parameter from the state)."""
    spec = manifest.workflows.get(workflow)
    mapping = spec.start_sources() if spec is not None else {}
    if not mapping:
        if start is not None and (start.revision is not None or start.at is not None):
            raise ValidationFailed.one("start", f"workflow {workflow} of {manifest.ref} declares no initial_state: "
                                                "its runs do not start from the twin's state")
        return {}, None
    asked = "defaults" if start is not None and not start.state else (
        "revision" if start is not None and start.revision is not None else
        "at" if start is not None and start.at is not None else "now")
    record: dict[str, Any] = {"asked": asked, "revision": None, "time": None, "parameters": {}}
    if asked == "defaults":
        record["parameters"] = {p: {"property": props[0], "source": "request" if p in given else "default",
                                    **({"value": given[p]} if p in given else {})} for p, props in mapping.items()}
        return {}, record
    revision = start.revision if start is not None else None
    if revision is not None and revision > twin.head_revision:
        raise ValidationFailed.one("start.revision", f"{twin.name} has no revision {revision} (its head is "
                                                     f"{twin.head_revision})")
    state = twins.read_state(session, principal=principal, ref=twin.id, revision=revision,
                             at=start.at if start is not None else None, quality=KEPT)
    values: dict[str, Any] = {}
    used: list[tuple[int, datetime]] = []
    for parameter, props in mapping.items():
        if parameter in given:
            record["parameters"][parameter] = {"property": props[0], "source": "request", "value": given[parameter]}
            continue
        found = newest_of(state.reported, props)
        if found is None:  # nothing to start from yet: the graph's default, said so
            record["parameters"][parameter] = {"property": props[0], "source": "default"}
            continue
        prop, value = found
        values[parameter] = value.value
        used.append((value.revision, value.timestamp))
        declared = manifest.state.get(prop)
        record["parameters"][parameter] = {
            "property": prop, **({"title": declared.title} if declared is not None and declared.title else {}),
            "source": "state", "value": value.value, "revision": value.revision,
            "timestamp": value.timestamp.isoformat(), **({"unit": value.unit} if value.unit else {}),
            **({"uncertainty": value.uncertainty.plain()} if value.uncertainty is not None else {})}
    if used:
        record["revision"] = (revision if revision is not None else twin.head_revision if asked == "now"
                              else max(r for r, _ in used))
        record["time"] = max(t for _, t in used).isoformat()
        record["recorded_at"] = _recorded_at(session, twin.id, record["revision"])
    return values, record


def _recorded_at(session: Session, twin_id: str, revision: int) -> str | None:
    at = session.scalar(select(StateRevision.recorded_at).where(StateRevision.twin_id == twin_id,
                                                                StateRevision.revision == revision))
    return at.isoformat() if at is not None else None


def member_values(record: dict[str, Any] | None, count: int, rng: np.random.Generator, *,
                  skip: set[str], bounds: Mapping[str, tuple[float, float]]) -> dict[str, list[float]]:
    """For an ensemble of ``count`` members, each state-given parameter that carries its uncertainty (an
    assimilation's analysis) drawn from it: its members, resampled, else normal(value, std), kept inside
    ``bounds``. Parameters in ``skip`` (the request or the app perturbs them itself) are left to that."""
    out: dict[str, list[float]] = {}
    for parameter, entry in ((record or {}).get("parameters") or {}).items():
        spread = entry.get("uncertainty") or {}
        value = entry.get("value")
        if parameter in skip or entry.get("source") != "state" or not isinstance(value, int | float) \
                or isinstance(value, bool) or count < 2:
            continue
        low, high = bounds.get(parameter, (-np.inf, np.inf))
        members = [float(m) for m in spread.get("members") or [] if isinstance(m, int | float)]
        if len(members) >= 2:
            drawn = rng.choice(np.asarray(members), size=count, replace=len(members) < count)
        elif isinstance(spread.get("std"), int | float) and spread["std"] > 0:
            drawn = rng.normal(float(value), float(spread["std"]), count)
        else:
            continue
        out[parameter] = [float(v) for v in np.clip(drawn, low, high)]
    return out


def start_of(options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The start a run recorded (None for runs of workflows that map no state, and runs from before)."""
    found = (options or {}).get("start")
    return found if isinstance(found, dict) else None


def hindcast_from(options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The start of a run that starts from the twin's state as it was (``start: {at}`` or ``{revision}``): a
    hindcast, which writes nothing to the twin's state (what it forecast is past; the state now stays the
    twin's own), though it records its forecast for verification. None for every other run."""
    start = start_of(options)
    return start if start is not None and start.get("asked") in ("at", "revision") else None


def start_words(start: Mapping[str, Any]) -> str:
    """Where a run started, in words, as every surface says it: ``started from revision 99 (storage 13.83 mm ±
    0.11 mm at 2026-03-04 00:00 UTC)``, ``started from the workflow's defaults``; a property is said by its
    manifest ``title`` where it has one."""
    said, given = [], []
    for entry in (start.get("parameters") or {}).values():
        value, unit = entry.get("value"), entry.get("unit")
        number = isinstance(value, int | float) and not isinstance(value, bool)
        shown = f"{value:.4g}" if number else str(value)
        std = (entry.get("uncertainty") or {}).get("std")
        words = f"{entry.get('title') or entry['property']} {shown}{f' {unit}' if unit else ''}" + (
            f" ± {std:.2g}{f' {unit}' if unit else ''}" if isinstance(std, int | float) else "")
        if entry.get("source") == "default":
            said.append(f"{entry['property']}: the workflow's default")
        elif entry.get("source") == "request":
            said.append(f"{words} (given)")
            given.append(said[-1])
        else:
            said.append(words)
    if start.get("revision") is None:
        return "started from the workflow's defaults" + (f" ({', '.join(given)})" if given else "")
    at = datetime.fromisoformat(start["time"]).astimezone(UTC) if start.get("time") else None
    inside = ", ".join(said) + (f" at {at:%Y-%m-%d %H:%M} UTC" if at is not None else "")
    return f"started from revision {start['revision']}" + (f" ({inside})" if inside else "")


def start_read(options: Mapping[str, Any] | None) -> StartRead | None:
    """The recorded start in a run's answer; None where a run holds only a request (no record of what it found)."""
    found = start_of(options)
    if found is None or "asked" not in found or "parameters" not in found:
        return None
    return StartRead.model_validate({**found, "text": start_words(found)})
