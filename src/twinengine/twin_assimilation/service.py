"""Assimilation cycles of a twin: advance its ensemble with the app's model step (in the app's sandboxed
workers), read the observations that arrived since the last cycle, run the filter, and write the analysis
as one state revision with its uncertainty; the cycle record keeps what the analysis used.

A what-if runs on a new fork, whose cycles read the origin's observations (the same physical twin) and
start from the origin's ensemble as of the fork, so the origin's state and cycles stay as they are.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from twinengine.auth.policy import require
from twinengine.auth.principal import SYSTEM, Principal
from twinengine.catalog import service as catalog
from twinengine.catalog.assimilation_checks import observation_stream
from twinengine.catalog.assimilation_spec import AssimilationSpec, Method
from twinengine.catalog.manifest import Manifest
from twinengine.errors import NotFound, ProcessFailed, ValidationFailed
from twinengine.quality.uncertainty import Uncertainty
from twinengine.streams.hub import StreamHub, stream_key
from twinengine.streams.uncertainty import plain_records
from twinengine.twin_assimilation.analysis import Background, analyse, weighted_stats
from twinengine.twin_assimilation.models import AssimilationCycle
from twinengine.twin_assimilation.observations import ObservationTime, next_time, pending_times
from twinengine.twin_assimilation.provenance import cycle_provenance
from twinengine.twin_assimilation.schemas import AssimilationRequest, AssimilationResult, CycleRead, InnovationRead
from twinengine.twins import service as twins
from twinengine.twins import state as twin_state
from twinengine.twins.models import Twin
from twinengine.twins.schemas import PropertyWrite, StateKind
from twinengine.workers.apps import AppCode
from twinengine.workers.process import WorkerCrashed, WorkerError
from twinengine.workers.protocol import ProtocolError

__all__ = ["Engines", "assimilate", "get_cycle", "list_cycles"]

ADVANCE = "twinengine.app._assimilation:advance"
MAX_STEPS = 100_000  # model steps between two observation times
MAX_RECORDS = 200_000  # records read for one request
QUANTILES = ("0.05", "0.5", "0.95")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Engines:
    """What a cycle needs beyond the store: the stream log and the app versions' workers."""

    hub: StreamHub
    code: AppCode


@dataclass
class _Prior:
    """Where the next cycle starts: members, weights, time, stream offset, last forcing, the record it came
    from (a fork's first cycle: its origin's)."""

    members: np.ndarray | None
    log_weights: np.ndarray | None
    time: datetime | None
    offset: int
    forcing: dict[str, float]
    cycle_id: str | None


def _spec(manifest: Manifest) -> AssimilationSpec:
    if manifest.assimilation is None:
        raise ValidationFailed.one("twin", f"app {manifest.ref} declares no assimilation: section (see "
                                           "docs/assimilation.md)")
    return manifest.assimilation


def _source(session: Session, twin: Twin) -> Twin:
    """The twin whose stream holds the observations: a fork's root origin (its physical twin)."""
    seen = {twin.id}
    while twin.origin_id is not None:
        origin = session.get(Twin, twin.origin_id)
        if origin is None or origin.id in seen:
            break
        seen.add(origin.id)
        twin = origin
    return twin


def _last(session: Session, twin_id: str, *, revision: int | None = None) -> AssimilationCycle | None:
    query = select(AssimilationCycle).where(AssimilationCycle.twin_id == twin_id)
    if revision is not None:
        query = query.where(AssimilationCycle.revision <= revision)
    return session.scalar(query.order_by(AssimilationCycle.number.desc()).limit(1))


def _prior(session: Session, twin: Twin) -> _Prior:
    last = _last(session, twin.id)
    if last is None and twin.origin_id is not None and twin.origin_revision is not None:
        last = _last(session, twin.origin_id, revision=twin.origin_revision)
    if last is None:
        return _Prior(None, None, None, 0, {}, None)
    ens = last.ensemble
    weights = ens.get("log_weights")
    return _Prior(np.asarray(ens["members"], dtype=float), None if weights is None else np.asarray(weights),
                  last.valid_time, int(next(iter(last.offsets.values()))[1]), dict(ens.get("forcing") or {}), last.id)


def _initial(session: Session, principal: Principal, twin: Twin, spec: AssimilationSpec, members: int,
             seed: int) -> np.ndarray:
    """The first ensemble: the twin's current state, spread by each value's own std or ``spread``."""
    current = twins.read_state(session, principal=principal, ref=twin.id).reported
    spread = spec.per_entry(spec.spread, 1.0)
    mean, std = [], []
    for i, entry in enumerate(spec.state):
        value = current.get(entry)
        if value is None or isinstance(value.value, bool) or not isinstance(value.value, int | float):
            raise ValidationFailed.one(f"state.{entry}", f"twin {twin.name} has no reported number for {entry!r} "
                                                         "yet: write one to start the ensemble from")
        mean.append(float(value.value))
        own = value.uncertainty.std if value.uncertainty is not None else None
        std.append(own if own else spread[i])
    rng = np.random.default_rng([seed, 0, 0])
    return np.asarray(mean) + np.asarray(std) * rng.standard_normal((members, len(mean)))


def _steps(spec: AssimilationSpec, prior: _Prior, when: ObservationTime) -> list[dict[str, float]]:
    """The forcing of each model step from the prior's time to the observation time: the latest value read at
    or before the step's end (a rain gauge reports the interval that ends at its reading)."""
    if prior.time is None:
        return []
    dt = spec.step.dt.total_seconds()
    count = round((when.time - prior.time).total_seconds() / dt)
    if count > MAX_STEPS:
        raise ValidationFailed.one("assimilation.step.dt", f"{count} steps of {dt:g} s between "
                                                           f"{prior.time.isoformat()} and {when.time.isoformat()}; "
                                                           f"at most {MAX_STEPS}")
    drive, out, k = dict(prior.forcing), [], 0
    for j in range(count):
        at = prior.time.timestamp() + (j + 1) * dt  # a reading reports the interval that ends at it
        while k < len(when.forcing) and when.forcing[k][0].timestamp() <= at:
            drive.update(when.forcing[k][1])
            k += 1
        out.append(dict(drive))
    for _t, values in when.forcing[k:]:
        drive.update(values)
    prior.forcing = drive
    return out


def _advance(app: Any, spec: AssimilationSpec, twin: Twin, members: np.ndarray, forcing: list[dict[str, float]],
             rng: np.random.Generator, errors: dict[str, list[str | float]]) -> tuple[np.ndarray, np.ndarray,
                                                                                    dict[str, float]]:
    operators = {name: o.operator for name, o in spec.observations.items() if o.operator is not None}
    N, n = members.shape
    noise = rng.standard_normal((len(forcing), N, n)) * np.asarray(spec.per_entry(spec.step.noise))
    if not forcing and not operators and not errors:
        return members, np.zeros((N, 0)), {}
    try:
        got = app.process(ADVANCE, {"step": spec.step.entrypoint, "names": list(spec.state),
                                    "members": members.tolist(), "parameters": dict(twin.parameters),
                                    "forcing": forcing, "dt": spec.step.dt.total_seconds(),
                                    "noise": noise.tolist(), "operators": operators, "errors": errors})
    except WorkerError as exc:
        raise ProcessFailed(f"assimilation.step: the app's code failed: {exc.remote}") from None
    except (WorkerCrashed, ProtocolError) as exc:
        raise ProcessFailed(f"assimilation.step: the app's worker failed: {exc}") from None
    advanced = np.asarray(got["members"], dtype=float)
    observed = np.asarray([got["observed"][name] for name in operators], dtype=float).T.reshape(N, len(operators))
    return advanced, observed, {k: float(v) for k, v in got["errors"].items()}


def _bounds(manifest: Manifest, spec: AssimilationSpec) -> tuple[np.ndarray, np.ndarray]:
    lower, upper = [], []
    for entry in spec.state:
        declared = manifest.state[entry.split("[", 1)[0]]
        lower.append(-np.inf if declared.minimum is None else declared.minimum)
        upper.append(np.inf if declared.maximum is None else declared.maximum)
    return np.asarray(lower), np.asarray(upper)


def _uncertainty(manifest: Manifest, entry: str, column: np.ndarray, log_weights: np.ndarray | None,
                 std: float) -> Uncertainty | None:
    forms = {f.value for f in manifest.state[entry.split("[", 1)[0]].uncertainty}
    if not forms:
        return None
    parts: dict[str, Any] = {}
    if "std" in forms:
        parts["std"] = float(std)
    if "quantiles" in forms:
        if log_weights is None:
            values = np.quantile(column, [float(q) for q in QUANTILES])
        else:
            order = np.argsort(column)
            w = np.exp(log_weights - log_weights.max())[order]
            cdf = np.cumsum(w) / w.sum()
            values = column[order][np.minimum(np.searchsorted(cdf, [float(q) for q in QUANTILES]), column.size - 1)]
        parts["quantiles"] = dict(zip(QUANTILES, (float(v) for v in np.maximum.accumulate(values)), strict=True))
    if "members" in forms:
        parts["members"] = [float(v) for v in column]
    return Uncertainty.model_validate(parts)


def _cycle(session: Session, app: Any, *, principal: Principal, twin: Twin, manifest: Manifest,
           spec: AssimilationSpec, method: Method, members: int, seed: int, prior: _Prior, when: ObservationTime,
           number: int, stream: str) -> AssimilationCycle:
    """One cycle on the observations of ``when``; moves ``prior`` on to its analysis."""
    rng_model = np.random.default_rng([seed, number, 1])
    if prior.members is None:
        prior.members = _initial(session, principal, twin, spec, members, seed)
    forcing = _steps(spec, prior, when)
    errors: dict[str, list[str | float]] = {}
    for reading in when.readings:
        entry = spec.observations[reading.name].error.entrypoint
        if entry is not None:
            errors[reading.name] = [entry, reading.value]
    background, observed, error_std = _advance(app, spec, twin, prior.members, forcing, rng_model, errors)
    operators = [name for name, o in spec.observations.items() if o.operator is not None]
    n = len(spec.state)
    coords = np.asarray(spec.coordinates if spec.coordinates is not None else range(n), dtype=float)
    columns: list[int] = []
    variances: list[float] = []
    obs_coords: list[float] = []
    used: list[dict[str, Any]] = []
    for reading in when.readings:
        obs = spec.observations[reading.name]
        column = spec.state.index(obs.observes) if obs.observes is not None else n + operators.index(reading.name)
        if obs.error.std is not None:
            sd = obs.error.std
        elif obs.error.record:
            if reading.std is None or reading.std <= 0:
                continue  # a record without its std cannot be weighed: left out, and said in the record
            sd = reading.std
        else:
            sd = error_std[reading.name]
        columns.append(column)
        variances.append(sd**2)
        position = obs.position if obs.position is not None else (
            float(coords[column]) if column < n else 0.0)
        obs_coords.append(position)
        used.append({"name": reading.name, "stream": stream, "offset": reading.offset, "value": reading.value,
                     "std": sd})
    aug_coords = np.concatenate([coords, [float(spec.observations[name].position or 0.0) for name in operators]])
    bg = Background(background, observed, np.asarray([u["value"] for u in used], dtype=float),
                    np.asarray(variances, dtype=float), np.asarray(columns, dtype=int), aug_coords,
                    np.asarray(obs_coords, dtype=float), prior.log_weights if method is Method.PF else None)
    if used:
        try:
            result = analyse(bg, method, spec.tuning, np.random.default_rng([seed, number, 2]))
        except ValueError as exc:
            raise ValidationFailed.one("method", f"{method.value}: {exc}") from None
        analysed, log_weights = result.members, result.log_weights
    else:
        analysed, log_weights, result = background, prior.log_weights, None
    lower, upper = _bounds(manifest, spec)
    analysed = np.clip(analysed, lower, upper)
    mean, std = weighted_stats(analysed, log_weights)
    writes = {entry: PropertyWrite(value=float(mean[i]), timestamp=when.time,
                                   uncertainty=_uncertainty(manifest, entry, analysed[:, i], log_weights, std[i]))
              for i, entry in enumerate(spec.state)}
    values = twin_state.validate_write(manifest, {StateKind.REPORTED: writes})
    revision = twin_state.append_revision(
        session, twin, values, author=principal.name, manifest=manifest,
        message=f"assimilation cycle {number}: {method.value}, {members} members, seed {seed}, "
                f"{len(used)} observations")
    innovations: dict[str, Any] = {}
    if result is not None:
        for j, u in enumerate(used):
            innovations[u["name"]] = InnovationRead(
                observed=u["value"], background=float(result.background_mean[j]),
                innovation=float(u["value"] - result.background_mean[j]), expected=float(result.expected[j]),
                std=u["std"]).model_dump()
    d = np.asarray([i["innovation"] for i in innovations.values()])
    e = np.asarray([i["expected"] for i in innovations.values()])
    row = AssimilationCycle(
        id="as-" + secrets.token_hex(6), twin_id=twin.id, number=number, owner=principal.name, method=method.value,
        members=int(analysed.shape[0]), seed=seed, tuning=spec.tuning.model_dump(mode="json"),
        valid_time=when.time, offsets={stream: [when.first, when.end]}, observations=used, innovations=innovations,
        obs_count=len(used), innovation_mean=float(d.mean()) if d.size else None,
        innovation_rms=float(np.sqrt(np.mean(d**2))) if d.size else None,
        expected_rms=float(np.sqrt(np.mean(e**2))) if e.size else None, spread=float(np.mean(std)),
        ensemble={"names": list(spec.state), "members": analysed.tolist(), "forcing": prior.forcing,
                  "log_weights": None if log_weights is None else log_weights.tolist(),
                  "ess": None if result is None else result.ess, "late": when.late, "prior": prior.cycle_id},
        revision=revision.revision, origin_cycle=prior.cycle_id if number == 1 else None)
    session.add(row)
    session.flush()
    prior.members, prior.log_weights, prior.time, prior.offset = analysed, log_weights, when.time, when.end
    prior.cycle_id = row.id
    return row


def _redraw(members: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` members with the mean and covariance of the kept ensemble (another ensemble size asked for):
    random combinations of its anomalies, so no direction the kept members lacked is made up."""
    mean = members.mean(axis=0)
    anomalies = (members - mean) / np.sqrt(members.shape[0] - 1)
    return np.asarray(mean + np.random.default_rng([seed, 0, 3]).standard_normal((count, members.shape[0]))
                      @ anomalies, dtype=float)


def _what_if(session: Session, principal: Principal, twin: Twin, name: str) -> Twin:
    return twins.fork_twin(session, principal=principal, ref=twin.id, name=name, at_revision=None, parameters=None,
                           description=f"what-if assimilation of {twin.name}")


def assimilate(session: Session, engines: Engines, *, principal: Principal, ref: str, request: AssimilationRequest,
               progress: Progress | None = None, checkpoint: Callable[[], None] | None = None) -> AssimilationResult:
    """Run up to ``request.cycles`` cycles on the twin (or, with ``what_if``, on a new fork of it).

    ``checkpoint`` is called after each cycle (the API commits there: each cycle is a whole unit, its revision
    and its record, and the store's writers are not kept waiting for the rest)."""
    twin = twins.get_twin(session, principal=principal, ref=ref, action="twin.operate")
    require(principal, "assimilation.run", twin, target=f"twin {ref}")
    manifest = twins.manifest_for(session, twin)
    spec = _spec(manifest)
    method = request.method or spec.method
    if method is Method.LETKF and spec.tuning.radius is None:
        raise ValidationFailed.one("method", "the letkf needs a localisation radius (assimilation.tuning.radius "
                                             f"in {manifest.ref})")
    if method is Method.THREE_DVAR and any(o.operator for o in spec.observations.values()):
        raise ValidationFailed.one("method", "3dvar takes observations of state entries only; this app observes "
                                             "through an operator")
    if request.what_if is not None:
        twin = _what_if(session, principal, twin, request.what_if)
    prior = _prior(session, twin)
    seed = request.seed if request.seed is not None else spec.seed
    if prior.members is not None and request.members is not None and request.members != prior.members.shape[0]:
        prior.members, prior.log_weights = _redraw(prior.members, request.members, seed), None
    members = int(prior.members.shape[0]) if prior.members is not None else (request.members or spec.members)
    source = _source(session, twin)
    stream = observation_stream(manifest, next(iter(spec.observations.values())).stream) or ""
    time_field = manifest.streams[stream].time_field
    table = engines.hub.read(stream_key(source.id, stream), start=prior.offset, limit=MAX_RECORDS,
                             time_field=time_field)
    records = plain_records(table) if table is not None else []
    records = [r for r in records if r.get("_quality") != "bad"]  # an implausible reading never corrects a state
    row = catalog.get_app_version(session, principal=SYSTEM, name=twin.app_name, version=twin.app_version)
    app = engines.code.get(row.archive_sha256, manifest)
    number = (session.scalar(select(func.max(AssimilationCycle.number))
                             .where(AssimilationCycle.twin_id == twin.id)) or 0)
    total = pending_times(spec, records, time_field, prior.time, prior.offset)
    done: list[CycleRead] = []
    while len(done) < request.cycles:
        when = next_time(spec, records, time_field, prior.time, prior.offset)
        if when is None:
            break
        number += 1
        cycle = _cycle(session, app, principal=principal, twin=twin, manifest=manifest, spec=spec,
                       method=method, members=members, seed=seed, prior=prior, when=when, number=number,
                       stream=stream)
        done.append(read_cycle(cycle, twin))
        if checkpoint is not None:
            checkpoint()
        if progress is not None:
            progress(len(done), min(total, request.cycles))
    return AssimilationResult(twin=twin.name, cycles=done, pending=total - len(done))


def read_cycle(row: AssimilationCycle, twin: Twin, *, detail: bool = False) -> CycleRead:
    out = CycleRead(id=row.id, twin=twin.name, number=row.number, method=Method(row.method), members=row.members,
                    seed=row.seed, tuning=row.tuning, valid_time=row.valid_time, obs_count=row.obs_count,
                    offsets={k: list(v) for k, v in row.offsets.items()}, innovation_mean=row.innovation_mean,
                    innovation_rms=row.innovation_rms, expected_rms=row.expected_rms, spread=row.spread,
                    revision=row.revision, origin_cycle=row.origin_cycle, created_at=row.created_at)
    if detail:
        members = np.asarray(row.ensemble["members"], dtype=float)
        weights = row.ensemble.get("log_weights")
        mean, std = weighted_stats(members, None if weights is None else np.asarray(weights))
        out.innovations = {k: InnovationRead.model_validate(v) for k, v in row.innovations.items()}
        out.observations = row.observations
        out.analysis = {name: {"mean": float(mean[i]), "std": float(std[i])}
                        for i, name in enumerate(row.ensemble["names"])}
        out.provenance = cycle_provenance(row, twin)
    return out


def list_cycles(session: Session, *, principal: Principal, ref: str, limit: int = 50,
                offset: int = 0) -> tuple[list[CycleRead], int]:
    """The twin's cycles, newest first."""
    twin = twins.get_twin(session, principal=principal, ref=ref)
    query = select(AssimilationCycle).where(AssimilationCycle.twin_id == twin.id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(AssimilationCycle.number.desc()).limit(limit).offset(offset))
    return [read_cycle(r, twin) for r in rows], total


def get_cycle(session: Session, *, principal: Principal, ref: str, cycle: str) -> CycleRead:
    """One cycle by id or number, with its innovations, observations, analysis and provenance."""
    twin = twins.get_twin(session, principal=principal, ref=ref)
    query = select(AssimilationCycle).where(AssimilationCycle.twin_id == twin.id)
    query = query.where(AssimilationCycle.number == int(cycle)) if cycle.isdigit() and len(cycle) < 10 else query.where(
        AssimilationCycle.id == cycle)
    row = session.scalar(query)
    if row is None:
        raise NotFound(f"twin {twin.name} has no assimilation cycle {cycle!r}")
    return read_cycle(row, twin, detail=True)
