"""A view of a twin answered in words: its summary template filled from the twin's state, its latest recorded
forecast and the verification of its forecasts, with what is stale said plainly. Rendered here, once, so the
portal, the SDK and the CLI say the same sentence; the template language (``catalog.view_text``) runs no code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.catalog.manifest import Manifest
from twinengine.catalog.view_text import Scalar, render
from twinengine.catalog.views import TimeSeriesPanel, View
from twinengine.errors import ModelNotFound, ViewNotFound
from twinengine.ml import service as ml
from twinengine.store.base import utcnow
from twinengine.twins import forecasts
from twinengine.twins import service as twins
from twinengine.twins.forecast_schemas import ForecastRead, LeadScores, VerificationRead
from twinengine.twins.schemas import PropertyValue, TwinState
from twinengine.twins.state_quality import stale_limits
from twinengine.ui.official import official_of
from twinengine.ui.outlook import outlook
from twinengine.ui.schemas import ForecastBrief, ModelBrief, SkillRead, StartBrief, ViewRead
from twinengine.workflows.initial_state import start_read
from twinengine.workflows.models import WorkflowRun

__all__ = ["ago", "duration_words", "read_view"]

_FLATTEN_DEPTH = 3  # state.forecast_ensemble.peak.mean: objects in state are read this deep


def duration_words(span: timedelta) -> str:
    """A span as people say it: ``45 s``, ``14 min``, ``3 h 5 min``, ``48 h``, ``4 days 2 h``."""
    seconds = max(0, int(span.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 60:
        return f"{minutes} min"
    if hours < 72:  # forecast horizons read in hours: 48 h
        rest = minutes % 60 if hours < 24 else 0
        return f"{hours} h" + (f" {rest} min" if rest else "")
    rest = hours % 24
    return f"{days} day{'s' if days > 1 else ''}" + (f" {rest} h" if rest else "")


def ago(moment: datetime, now: datetime) -> str:
    """How long before ``now``: ``14 min ago``; ``just now`` under a minute; a future time by its clock."""
    if moment > now + timedelta(minutes=1):
        return f"at {moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if now - moment < timedelta(minutes=1):
        return "just now"
    return f"{duration_words(now - moment)} ago"


def _flatten(prefix: str, value: Any, out: dict[str, Scalar], depth: int = 0) -> None:
    if isinstance(value, dict):
        if depth < _FLATTEN_DEPTH:
            for key, inner in value.items():
                if isinstance(key, str) and key.replace("_", "").isalnum():
                    _flatten(f"{prefix}.{key}", inner, out, depth + 1)
    elif isinstance(value, str | int | float | bool):
        out[prefix] = value


def _state_values(kind: str, values: dict[str, PropertyValue], now: datetime, out: dict[str, Scalar]) -> None:
    for name, value in values.items():
        _flatten(f"{kind}.{name}", value.value, out)
        out[f"{kind}.{name}.age"] = ago(value.timestamp, now)
        out[f"{kind}.{name}.time"] = f"{value.timestamp.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        if value.unit:
            out[f"{kind}.{name}.unit"] = value.unit
        if value.stale is not None:
            out[f"{kind}.{name}.stale"] = value.stale


def _forecast_panel(view: View) -> TimeSeriesPanel | None:
    return next((p for p in view.panels.values() if isinstance(p, TimeSeriesPanel) and p.forecast is not None), None)


def _threshold(panel: TimeSeriesPanel | None, state: TwinState) -> float | None:
    """The panel's first threshold, as a number (a state property's current value, or a fixed one)."""
    for t in panel.thresholds if panel is not None else []:
        value = t.value if t.value is not None else getattr(
            (state.desired if t.state == "desired" else state.reported).get(t.property or ""), "value", None)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _latest_forecast(session: Session, principal: Principal, twin_id: str, prop: str,
                     workflow: str | None) -> ForecastRead | None:
    """The newest issued forecast of ``prop``; of several issued at that time, an ensemble's (its members say
    more than one member's run), then the last recorded. A rerun's forecast (``twin runs rerun``) checks an
    earlier run: it is never the twin's answer."""
    found = [f for f in forecasts.list_forecasts(session, principal=principal, ref=twin_id, prop=prop, limit=20,
                                                 values=True) if workflow is None or f.workflow in (workflow, None)]
    runs = {f.run_id for f in found if f.run_id}
    reruns = {run.id for run in session.scalars(select(WorkflowRun).where(WorkflowRun.id.in_(runs)))
              if (run.options or {}).get("rerun_of")} if runs else set()
    found = [f for f in found if f.run_id not in reruns]
    if not found:
        return None
    newest = max(f.issued_at for f in found)
    return max((f for f in found if f.issued_at == newest),
               key=lambda f: (bool(f.values and f.values[0].members), f.recorded_at))


def _forecast_brief(forecast: ForecastRead, threshold: float | None, now: datetime,
                    out: dict[str, Scalar]) -> ForecastBrief:
    values = forecast.values or []
    peak = max((v.value for v in values), default=None)
    widths = {len(v.members) for v in values if v.members}
    members = widths.pop() if len(widths) == 1 else None
    exceeding = None
    if members is not None and threshold is not None:
        exceeding = sum(any((v.members or [])[m] > threshold for v in values) for m in range(members))
    out.update({"forecast.id": forecast.id, "forecast.issued": ago(forecast.issued_at, now),
                "forecast.steps": forecast.steps})
    if values:
        out["forecast.horizon"] = duration_words(values[-1].valid_time - forecast.issued_at)
    for key, value in (("forecast.run", forecast.run_id), ("forecast.peak", peak), ("forecast.members", members),
                       ("forecast.exceeding", exceeding), ("forecast.threshold", threshold),
                       ("forecast.model_version", forecast.model_version)):
        if value is not None:
            out[key] = value
    return ForecastBrief(id=forecast.id, run_id=forecast.run_id, property=forecast.property,
                         issued_at=forecast.issued_at, steps=forecast.steps, members=members, exceeding=exceeding,
                         threshold=threshold, peak=peak)


def _start_brief(session: Session, forecast: ForecastRead, out: dict[str, Scalar]) -> StartBrief | None:
    """Which state of the twin the forecast's run started from, in words (its app's ``initial_state``)."""
    run = session.get(WorkflowRun, forecast.run_id) if forecast.run_id else None
    start = start_read(run.options if run is not None else None)
    if start is None:
        return None
    if start.revision is not None:
        out["forecast.revision"] = start.revision
    if start.time is not None:
        out["forecast.start_time"] = f"{start.time.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    out["forecast.start"] = start.text
    return StartBrief(revision=start.revision, time=start.time, text=start.text)


def _pick(leads: list[LeadScores]) -> LeadScores | None:
    """The group the sentence speaks of: the most pairs, an ensemble's (with an interval) first."""
    scored = [g for g in leads if g.n > 0]
    return max(scored, key=lambda g: (g.coverage is not None, g.n), default=None)


def _window_end(view: View, latest: datetime | None, now: datetime) -> datetime:
    """The skill's window ends now, or at the last observation when the twin has reported nothing within it (a
    twin fed past data is still judged on what it has)."""
    return now if latest is None or latest > now - view.skill.window else latest + timedelta(minutes=1)


def _verified(session: Session, principal: Principal, twin_id: str, view: View, prop: str, end: datetime,
              threshold: float | None) -> VerificationRead:
    """The scores over the view's window at the leads it states (the skill sentence's and the outlook's), in
    one read: the values of those leads only, never every lead of 30 days of forecasts."""
    return forecasts.verification(session, principal=principal, ref=twin_id, prop=prop,
                                  since=end - view.skill.window, until=end, threshold=threshold,
                                  leads=[view.skill.lead, *view.outlook.leads])


def _skill(view: View, prop: str | None, found: VerificationRead | None, end: datetime, now: datetime,
           out: dict[str, Scalar]) -> SkillRead | None:
    """The skill at the view's lead over its window (``_window_end``)."""
    if prop is None or found is None:
        return None
    rule = view.skill
    days = rule.window.total_seconds() / 86400
    lead = duration_words(rule.lead).replace(" ", "-")
    window = f"the {'last ' if end == now else ''}{days:g} day{'s' if days != 1 else ''}" + (
        "" if end == now else f" up to {end.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    group = _pick([g for g in found.leads if g.lead_seconds == int(rule.lead.total_seconds())])
    if group is None:
        return SkillRead(available=False, property=prop, lead_seconds=int(rule.lead.total_seconds()),
                         window_days=days, text=f"No verification is available yet: no {lead} forecast of {prop} "
                                                f"was matched with an observation over {window}.")
    unit = f" {found.unit}" if found.unit else ""
    if group.coverage is not None and group.interval_level is not None:
        text = (f"Over {window}, {lead} forecasts of {prop} were within their {group.interval_level:.0%} band "
                f"{group.coverage:.0%} of the time")
    else:
        text = f"Over {window}, {lead} forecasts of {prop} were checked against what was observed"
    scores = [f"{label} {value:.2f}" for label, value in (("NSE", group.nse), ("KGE", group.kge)) if value is not None]
    if group.crps is not None:
        scores.append(f"CRPS {group.crps:.3g}{unit}")
    scores.append(f"{group.n} forecast{'s' if group.n != 1 else ''} checked")
    text += f" ({', '.join(scores)})."
    for key, value in (("skill.coverage", group.coverage), ("skill.level", group.interval_level),
                       ("skill.nse", group.nse), ("skill.kge", group.kge), ("skill.crps", group.crps),
                       ("skill.n", group.n), ("skill.lead", lead), ("skill.text", text)):
        if value is not None:
            out[key] = value
    return SkillRead(available=True, text=text, property=prop, lead_seconds=group.lead_seconds, window_days=days,
                     n=group.n, coverage=group.coverage, interval_level=group.interval_level, nse=group.nse,
                     kge=group.kge, crps=group.crps, workflow=group.workflow, model_version=group.model_version,
                     members=group.members)


def _model(session: Session, principal: Principal, twin_id: str, view: View, manifest: Manifest,
           out: dict[str, Scalar]) -> ModelBrief | None:
    name = next((p.model for p in view.panels.values() if p.kind == "model"), None) or next(iter(manifest.models),
                                                                                          None)
    if name is None:
        return None
    try:
        trail = ml.trail(session, principal=principal, twin_ref=twin_id, model=name)
    except ModelNotFound:
        return None
    entry = next((e for e in trail if e.version is not None), None)
    if entry is None:
        return ModelBrief(name=name, version=None, accepted=None, reason=None,
                          text=f"Model {name} has no trained version yet.")
    out.update({"model.name": name, "model.version": str(entry.version)})
    decision = entry.decision
    if decision is None:
        text = f"Model {name} version {entry.version}: no gate decision recorded."
    else:
        out["model.decision"] = "accepted" if decision.accepted else "rejected"
        text = (f"Model {name} version {entry.version} was {'accepted' if decision.accepted else 'rejected'} by "
                f"the gate: {decision.reason}.")
    return ModelBrief(name=name, version=str(entry.version), accepted=None if decision is None else decision.accepted,
                      reason=None if decision is None else decision.reason, text=text)


def _stale_words(state: TwinState, limits: dict[str, timedelta], now: datetime) -> tuple[list[str], str | None]:
    stale = sorted(state.stale or [])
    said = []
    for name in stale:
        value = state.reported[name]
        said.append(f"{name} was last reported {ago(value.timestamp, now)}, while a value is expected at least "
                    f"every {duration_words(limits[name])}" if name in limits else f"{name} is stale")
    return stale, ("Stale data: " + "; ".join(said) + ".") if said else None


def _summary_text(view: View, twin_name: str, values: dict[str, Scalar]) -> str | None:
    if view.summary is None:
        return None
    return render(view.summary, values) or f"{twin_name} has not reported the values this summary reads yet."


def read_view(session: Session, *, principal: Principal, ref: str, name: str) -> ViewRead:
    """The view ``name`` of the twin, with its summary, skill and model said in words."""
    twin = twins.get_twin(session, principal=principal, ref=ref)
    manifest = twins.manifest_for(session, twin)
    view = manifest.views.get(name)
    if view is None:
        known = ", ".join(sorted(manifest.views)) or "none"
        raise ViewNotFound(f"the app of {twin.name} declares no view {name!r} (declared: {known})")
    now = utcnow()
    state = twins.read_state(session, principal=principal, ref=twin.id)
    values: dict[str, Scalar] = {"twin.name": twin.name, "twin.id": twin.id}
    _state_values("state", state.reported, now, values)
    _state_values("desired", state.desired, now, values)
    panel = _forecast_panel(view)
    prop = view.skill.property or (panel.properties[0] if panel is not None else None)
    prop = prop if prop in manifest.state else None
    threshold = _threshold(panel, state)
    brief = latest = None
    if prop is not None:
        latest = _latest_forecast(session, principal, twin.id, prop,
                                  panel.forecast.workflow if panel is not None and panel.forecast else None)
        if latest is not None:
            brief = _forecast_brief(latest, threshold, now, values)
            brief.start = _start_brief(session, latest, values)
    observed = state.reported.get(prop or "")
    end = _window_end(view, observed.timestamp if observed is not None else None, now)
    found = _verified(session, principal, twin.id, view, prop, end, threshold) if prop is not None else None
    skill = _skill(view, prop, found, end, now, values)
    ahead = None
    if latest is not None and threshold is not None and found is not None:
        ahead = outlook(latest, threshold, view.outlook.leads, found.leads, found.unit, values)
    model = _model(session, principal, twin.id, view, manifest, values)
    stale, stale_text = _stale_words(state, stale_limits(manifest), now)
    return ViewRead(twin_id=twin.id, twin_name=twin.name, name=name, title=view.title, description=view.description,
                    summary=view.summary, summary_text=_summary_text(view, twin.name, values),
                    stale=stale, stale_text=stale_text, skill=skill, model=model, forecast=brief, outlook=ahead,
                    official=official_of(session, principal, twin), as_of=now)
