"""Forecast skill with and without assimilation, scored by the engine's verification.

From analyses spread over the twin's cycles, the app's model step (in its sandboxed workers) forecasts the
observed quantity for each lead time from every member of the analysis ensemble, without the model-error noise
the cycles add, driven by the forcing the stream recorded (a hindcast: the forcing is known, so the skill
measured is that of the starting state). Beside them, the open loop: the same model run
alone, without noise, from the state the twin held before its first cycle (one member, so its CRPS is its
absolute error). Both are matched with the observations and scored per lead (``quality.verification``), so
what assimilation adds shows in numbers.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.principal import SYSTEM, Principal
from twinengine.catalog import service as catalog
from twinengine.catalog.assimilation_checks import observation_stream
from twinengine.catalog.assimilation_spec import AssimilationSpec
from twinengine.catalog.manifest import Manifest
from twinengine.errors import ProcessFailed, ValidationFailed
from twinengine.quality.verification import ForecastPoint, GroupScores, Observation, verify
from twinengine.streams.hub import stream_key
from twinengine.streams.uncertainty import plain_records
from twinengine.twin_assimilation.health import filter_health
from twinengine.twin_assimilation.models import AssimilationCycle
from twinengine.twin_assimilation.packed import array_of
from twinengine.twin_assimilation.service import Engines
from twinengine.twins import service as twins
from twinengine.twins.assimilation_skill_schemas import AssimilationSkillRead
from twinengine.twins.forecast_schemas import LeadScores
from twinengine.twins.models import Twin
from twinengine.workers.process import WorkerCrashed, WorkerError
from twinengine.workers.protocol import ProtocolError

__all__ = ["DEFAULT_STARTS", "MAX_LEADS", "MAX_STARTS", "assimilation_skill"]

ADVANCE = "twinengine.twin_assimilation.worker_side:advance"  # the worker-side step of every member, as cycles use it
DEFAULT_STARTS = 24
MAX_STARTS = 200
MAX_LEADS = 8
MAX_RECORDS = 200_000
MAX_STEPS = 20_000  # model steps of one forecast or of the open loop
MAX_TOLERANCE = timedelta(days=7)
HOUR = 3600.0


def _spec(manifest: Manifest) -> AssimilationSpec:
    if manifest.assimilation is None:
        raise ValidationFailed.one("twin", f"app {manifest.ref} declares no assimilation: section")
    return manifest.assimilation


def _source(session: Session, twin: Twin) -> Twin:
    """The twin whose stream holds the observations: a fork's root origin (the same physical twin)."""
    seen = {twin.id}
    while twin.origin_id is not None and twin.origin_id not in seen:
        origin = session.get(Twin, twin.origin_id)
        if origin is None:
            break
        seen.add(origin.id)
        twin = origin
    return twin


def default_leads(dt: float, interval: float) -> list[float]:
    """Leads in seconds: 1, 3, 6 and 12 h when cycles come at least hourly, else 1, 2, 4 and 8 cycle
    intervals; each a whole number of model steps."""
    base = [HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR] if interval <= HOUR else [interval * k for k in (1, 2, 4, 8)]
    return sorted({max(1, round(lead / dt)) * dt for lead in base})


class _Forcing:
    """The drive of every model step: the fields of the latest forcing records at or before the step's end
    (a rain gauge reports the interval that ends at its reading), as a cycle sees them."""

    def __init__(self, spec: AssimilationSpec, records: list[dict[str, Any]], time_field: str) -> None:
        found = sorted(((r[time_field].timestamp(), {name: float(r[f]) for name, f in spec.step.forcing.items()
                                                     if isinstance(r.get(f), int | float)
                                                     and not isinstance(r.get(f), bool)})
                        for r in records), key=lambda x: x[0])
        self.times: list[float] = []
        self.drives: list[dict[str, float]] = []
        drive: dict[str, float] = {}
        for when, values in found:
            if values:
                drive = drive | values
                self.times.append(when)
                self.drives.append(drive)

    def steps(self, start: datetime, count: int, dt: float) -> list[dict[str, float]]:
        out = []
        for j in range(count):
            i = bisect.bisect_right(self.times, start.timestamp() + (j + 1) * dt) - 1
            out.append(dict(self.drives[i]) if i >= 0 else {})
        return out


class _Model:
    """The app's step for a set of members, and the observed value of each member."""

    def __init__(self, app: Any, spec: AssimilationSpec, twin: Twin, prop: str, forcing: _Forcing) -> None:
        self.app, self.spec, self.parameters, self.forcing = app, spec, dict(twin.parameters), forcing
        obs = spec.observations[prop]
        self.column = spec.state.index(obs.observes) if obs.observes is not None else None
        self.operators = {prop: obs.operator} if obs.operator is not None else {}
        self.dt = spec.step.dt.total_seconds()

    def advance(self, members: np.ndarray, start: datetime, seconds: float) -> tuple[np.ndarray, np.ndarray]:
        """Members after ``seconds`` from ``start`` (no model-error noise: a forecast's spread is its start's)
        and each one's observed value there."""
        count = round(seconds / self.dt)
        noise = np.zeros((count, *members.shape))
        try:
            got = self.app.process(ADVANCE, {
                "step": self.spec.step.entrypoint, "names": list(self.spec.state), "members": members.tolist(),
                "parameters": self.parameters, "forcing": self.forcing.steps(start, count, self.dt),
                "dt": self.dt, "noise": noise.tolist(), "operators": self.operators, "errors": {},
                "form": self.spec.step.state_form})
        except WorkerError as exc:
            raise ProcessFailed(f"assimilation.step: the app's code failed: {exc.remote}") from None
        except (WorkerCrashed, ProtocolError) as exc:
            raise ProcessFailed(f"assimilation.step: the app's worker failed: {exc}") from None
        advanced = np.asarray(got["members"], dtype=float)
        if self.column is not None:
            return advanced, advanced[:, self.column]
        return advanced, np.asarray(next(iter(got["observed"].values())), dtype=float)


def _observations(spec: AssimilationSpec, prop: str, records: list[dict[str, Any]],
                  time_field: str) -> list[Observation]:
    name = spec.observations[prop].field or prop
    found = [Observation(r[time_field], float(r[name])) for r in records
             if isinstance(r.get(name), int | float) and not isinstance(r.get(name), bool)]
    return sorted(found, key=lambda o: o.time)


def _chosen(times: list[tuple[int, datetime]], shortest: float, last: datetime, starts: int) -> list[int]:
    """Cycle numbers to forecast from: evenly over those whose shortest lead is still observed."""
    usable = [number for number, t in times if t + timedelta(seconds=shortest) <= last]
    if len(usable) <= starts:
        return usable
    return [usable[i] for i in np.unique(np.linspace(0, len(usable) - 1, starts).round().astype(int))]


def _mean_members(row: AssimilationCycle) -> tuple[np.ndarray, np.ndarray | None]:
    members = array_of(row.ensemble["members"])
    weights = row.ensemble.get("log_weights")
    if weights is None:
        return members, None
    w = np.exp(np.asarray(weights) - np.max(weights))
    return members, w / w.sum()


def _scores(groups: list[GroupScores]) -> list[LeadScores]:
    return [LeadScores(workflow=None, model_version=None, lead_seconds=g.lead_seconds, members=g.members,
                       n=int(g.scores.get("n") or 0), rank_histogram=g.rank_histogram,
                       **{k: v for k, v in g.scores.items() if k != "n"}) for g in groups]


def _lead_words(seconds: int) -> str:
    return f"{seconds / HOUR:g}-h" if seconds % 3600 == 0 else f"{seconds / 60:g}-min"


def sentence(prop: str, assimilated: Sequence[LeadScores], open_loop: Sequence[LeadScores]) -> str:
    """The comparison at one lead (6 h when verified, else the middle one), in NSE or else RMSE."""
    both = {g.lead_seconds: g for g in assimilated}
    pairs = [(both[g.lead_seconds], g) for g in open_loop if g.lead_seconds in both]
    if not pairs:
        return f"No forecast of {prop} from an analysis has been matched with an observation yet."
    a, o = next((p for p in pairs if p[0].lead_seconds == 6 * 3600), pairs[len(pairs) // 2])
    if a.nse is not None and o.nse is not None:
        score, x, y = "NSE", f"{a.nse:.2f}", f"{o.nse:.2f}"
    else:
        score, x, y = "RMSE", f"{a.rmse:.3g}", f"{o.rmse:.3g}"
    return (f"{_lead_words(a.lead_seconds)} forecasts of {prop} from the analysis: {score} {x}; without "
            f"assimilation: {y} ({a.n} forecasts checked).")


def assimilation_skill(session: Session, engines: Engines, *, principal: Principal, ref: str,
                       prop: str | None = None, leads: Sequence[timedelta] | None = None,
                       starts: int = DEFAULT_STARTS, tolerance: timedelta | None = None,
                       since: datetime | None = None) -> AssimilationSkillRead:
    """Skill per lead of forecasts of ``prop`` (default: the first observation) from up to ``starts`` of the
    twin's analyses (those valid from ``since``: past the filter's spin-up) and from the open loop, with the
    filter's innovation health."""
    twin = twins.get_twin(session, principal=principal, ref=ref)
    manifest = twins.manifest_for(session, twin)
    spec = _spec(manifest)
    prop = prop or next(iter(spec.observations))
    if prop not in spec.observations:
        raise ValidationFailed.one("property", f"{manifest.ref} assimilates {', '.join(spec.observations)}, "
                                               f"not {prop!r}")
    if not 1 <= starts <= MAX_STARTS:
        raise ValidationFailed.one("starts", f"must be between 1 and {MAX_STARTS}")
    if tolerance is not None and not timedelta(0) <= tolerance <= MAX_TOLERANCE:
        raise ValidationFailed.one("tolerance", f"must be between 0 and {MAX_TOLERANCE.days} days")
    dt = spec.step.dt.total_seconds()
    health = filter_health(session, twin)
    times = [(int(n), t) for n, t in session.execute(
        select(AssimilationCycle.number, AssimilationCycle.valid_time)
        .where(AssimilationCycle.twin_id == twin.id).order_by(AssimilationCycle.number))]
    interval = float(np.median(np.diff([t.timestamp() for _n, t in times]))) if len(times) > 1 else HOUR
    wanted = sorted({lead.total_seconds() for lead in leads}) if leads else default_leads(dt, interval)
    if len(wanted) > MAX_LEADS or any(not dt <= w <= MAX_STEPS * dt for w in wanted):
        raise ValidationFailed.one("lead", f"at most {MAX_LEADS} leads, each between one model step "
                                           f"({dt:g} s) and {MAX_STEPS} steps")
    stream = observation_stream(manifest, spec.observations[prop].stream) or ""
    declared = manifest.streams[stream]
    table = engines.hub.read(stream_key(_source(session, twin).id, stream), start=0, limit=MAX_RECORDS,
                             time_field=declared.time_field)
    records = [r for r in (plain_records(table) if table is not None else []) if r.get("_quality") != "bad"]
    observations = _observations(spec, prop, records, declared.time_field)
    field = declared.fields.get(spec.observations[prop].field or prop)
    unit = field.unit if field is not None else None
    tolerance = tolerance if tolerance is not None else timedelta(seconds=min(dt / 2, 1800.0))
    empty = AssimilationSkillRead(twin=twin.name, property=prop, unit=unit, starts=0, open_loop_from=None,
                                  tolerance_seconds=tolerance.total_seconds(), observations=len(observations),
                                  assimilated=[], open_loop=[], sentence=sentence(prop, [], []), filter=health)
    if not times or not observations:
        return empty
    chosen = _chosen([(n, t) for n, t in times if since is None or t >= since], wanted[0],
                     observations[-1].time + tolerance, starts)
    if not chosen:
        return empty
    version = catalog.get_app_version(session, principal=SYSTEM, name=twin.app_name, version=twin.app_version)
    model = _Model(engines.code.get(version.archive_sha256, manifest), spec, twin, prop,
                   _Forcing(spec, records, declared.time_field))
    rows = session.scalars(select(AssimilationCycle).where(AssimilationCycle.twin_id == twin.id,
                                                           AssimilationCycle.number.in_(chosen))
                           .order_by(AssimilationCycle.number)).all()
    ours: list[ForecastPoint] = []
    for row in rows:
        members, weights = _mean_members(row)
        at, done = row.valid_time, 0.0
        for lead in wanted:
            members, values = model.advance(members, at, lead - done)
            at, done = row.valid_time + timedelta(seconds=lead), lead
            value = float(values @ weights) if weights is not None else float(values.mean())
            ours.append(ForecastPoint(at, int(lead), value,
                                      members=None if weights is not None else values.tolist()))
    first = session.scalar(select(AssimilationCycle).where(AssimilationCycle.twin_id == twin.id)
                           .order_by(AssimilationCycle.number).limit(1))
    alone = _open_loop(session, principal, twin, spec, model, first, rows, wanted) if first is not None else []
    assimilated = _scores(verify(ours, observations, tolerance=tolerance))
    open_loop = _scores(verify(alone, observations, tolerance=tolerance))
    return AssimilationSkillRead(twin=twin.name, property=prop, unit=unit, starts=len(rows),
                                 open_loop_from=first.valid_time if first is not None else None,
                                 tolerance_seconds=tolerance.total_seconds(), observations=len(observations),
                                 assimilated=assimilated, open_loop=open_loop,
                                 sentence=sentence(prop, assimilated, open_loop), filter=health)


def _open_loop(session: Session, principal: Principal, twin: Twin, spec: AssimilationSpec, model: _Model,
               first: AssimilationCycle, rows: Sequence[AssimilationCycle], wanted: list[float]) -> list[ForecastPoint]:
    """The model alone from the state before the first cycle (no analysis, no noise), read at each
    forecast's valid time; for a start and a lead, what a twin without assimilation would have forecast."""
    if first.revision <= 1:
        return []
    before = twins.read_state(session, principal=principal, ref=twin.id, revision=first.revision - 1).reported
    start, times = [], []
    for entry in spec.state:
        value = before.get(entry)
        if value is None or not isinstance(value.value, int | float) or isinstance(value.value, bool):
            return []  # no first guess on record (a fork started from its origin's ensemble)
        start.append(float(value.value))
        times.append(value.timestamp)
    wanted_at = sorted({(row.valid_time + timedelta(seconds=lead), int(lead)) for row in rows for lead in wanted},
                       key=lambda x: x[0])
    # from the first guess's own time, as the first cycle forecast from it (not from the first observation's)
    state, at = np.asarray([start]), min(max(times), first.valid_time)
    seen: dict[datetime, float] = {}
    points = []
    for when, lead in wanted_at:
        if when not in seen:
            if (when - at).total_seconds() > 0:
                state, values = model.advance(state, at, (when - at).total_seconds())
                at = when
                seen[when] = float(values[0])
            else:
                _same, values = model.advance(state, at, 0.0)
                seen[when] = float(values[0])
        points.append(ForecastPoint(when, lead, seen[when], members=[seen[when]]))  # its CRPS: the absolute error
    return points
