"""Assimilation cycles of a twin: read the observations that arrived since the last cycle, advance its
ensemble with the app's model step and run the filter (both in the app's sandboxed workers, many cycles per
call), and write each analysis as one state revision with its uncertainty; the cycle record keeps what the
analysis used.

A what-if runs on a new fork, whose cycles read the origin's observations (the same physical twin) and
start from the origin's ensemble as of the fork, so the origin's state and cycles stay as they are.
"""

from __future__ import annotations

import hashlib
import queue
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
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
from twinengine.compute.work import Work, admit
from twinengine.errors import NotFound, ProcessFailed, ValidationFailed
from twinengine.streams.hub import StreamHub, stream_key
from twinengine.streams.uncertainty import plain_records
from twinengine.twin_assimilation.analysis import weighted_stats
from twinengine.twin_assimilation.answer import malformed
from twinengine.twin_assimilation.backlog import usable, window
from twinengine.twin_assimilation.columns import Columns, columnar
from twinengine.twin_assimilation.models import AssimilationCycle
from twinengine.twin_assimilation.observations import next_time
from twinengine.twin_assimilation.packed import array_of
from twinengine.twin_assimilation.plan import Clock, Planned, layout, payload, plan_cycle
from twinengine.twin_assimilation.provenance import cycle_provenance
from twinengine.twin_assimilation.record import Batch, innovation_rows, observation_rows, record
from twinengine.twin_assimilation.schemas import AssimilationRequest, AssimilationResult, CycleRead, InnovationRead
from twinengine.twins import service as twins
from twinengine.twins.models import Twin
from twinengine.workers.apps import AppCode
from twinengine.workers.process import WorkerCrashed, WorkerError
from twinengine.workers.protocol import ProtocolError

__all__ = ["Engines", "assimilate", "default_seed", "get_cycle", "list_cycles"]

CYCLES = "twinengine.twin_assimilation.worker_side:cycles"
MAX_RECORDS = 200_000  # records read for one request
FIRST_PLANNED = 8  # cycles planned before the worker starts; the rest are planned while it runs, in lists of
PLANNED_LIST = 32
COMMIT_SECONDS = 0.05  # ``checkpoint`` at most about this often, and at the end: the parts' rows go to disk
# while the worker runs the next cycles, so the last commit holds the last part only (at 1 s, a request of 1,000
# Lorenz-96 cycles committed its 10 MB once, after its last cycle: 35 ms)
_JUST_BEFORE = timedelta(microseconds=1)  # records before the first guess's time are late; one at it is not
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
    return _Prior(array_of(ens["members"]), None if weights is None else np.asarray(weights),
                  last.valid_time, int(next(iter(last.offsets.values()))[1]), dict(ens.get("forcing") or {}), last.id)


@dataclass(frozen=True)
class _FirstGuess:
    """The twin's reported state before its first cycle: each entry's value and std, and the time it is valid
    at (the newest of the entries' timestamps), from which the first cycle's model steps start; or the first
    entry with no number (refused once there is a cycle to run)."""

    mean: list[float]
    std: list[float]
    time: datetime | None
    missing: str | None

    def ensemble(self, twin: Twin, members: int, seed: int) -> np.ndarray:
        """The first ensemble: the first guess spread by each value's own std or ``spread``."""
        if self.missing is not None:
            raise ValidationFailed.one(f"state.{self.missing}", f"twin {twin.name} has no reported number for "
                                                                f"{self.missing!r} yet: write one to start the "
                                                                "ensemble from")
        rng = np.random.default_rng([seed, 0, 0])
        return np.asarray(self.mean) + np.asarray(self.std) * rng.standard_normal((members, len(self.mean)))


def _first_guess(session: Session, principal: Principal, twin: Twin, spec: AssimilationSpec) -> _FirstGuess:
    current = twins.read_state(session, principal=principal, ref=twin.id).reported
    spread = spec.per_entry(spec.spread, 1.0)
    mean, std, times = [], [], []
    for i, entry in enumerate(spec.state):
        # the entry itself when the twin has one (a first guess written on purpose, or the last analysis), else
        # the first fallback that has a number: an order, not the newest, so that a function still writing its
        # estimates cannot move where an ensemble starts from (and which readings it meets)
        value = next((v for prop in [entry, *spec.first_guess.get(entry, [])]
                      if (v := current.get(prop)) is not None and isinstance(v.value, int | float)
                      and not isinstance(v.value, bool)), None)
        if value is None:
            return _FirstGuess([], [], None, entry)
        mean.append(float(value.value))
        own = value.uncertainty.std if value.uncertainty is not None else None
        std.append(own if own else spread[i])
        times.append(value.timestamp)
    return _FirstGuess(mean, std, max(times), None)


def default_seed(twin_name: str) -> int:
    """A twin's own default seed (an app that declares none): stable for the twin, and another for each twin
    (and each fork), so that twins of one app do not all draw the same perturbations."""
    digest = hashlib.sha256(f"assimilation:{twin_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: the seed's range


def _bounds(manifest: Manifest, spec: AssimilationSpec) -> tuple[np.ndarray, np.ndarray]:
    lower, upper = [], []
    for entry in spec.state:
        declared = manifest.state[entry.split("[", 1)[0]]
        lower.append(-np.inf if declared.minimum is None else declared.minimum)
        upper.append(np.inf if declared.maximum is None else declared.maximum)
    return np.asarray(lower), np.asarray(upper)


Part = tuple[list[Planned], dict[str, Any]]


def _run(app: Any, batch: Batch, members: np.ndarray, log_weights: np.ndarray | None, plans: list[Planned],
         coords: np.ndarray, sink: Callable[[Part], None], later: tuple[int, int, Iterator[list[Planned]]],
         cpu: Callable[[float], None] | None = None) -> None:
    """The cycles of ``plans`` run in one call to the app's worker, from ``members``; ``later`` (how many
    cycles in all, how many more lists of them, the lists) plans the rest while the worker runs the first
    ones (each list is appended to ``plans`` as it is made). Each part of the worker's answer
    (``worker_side.cycles`` sends them as it goes) is checked (it is the app's) and handed to ``sink`` with the
    cycles it holds, in order, the answer's own last. A malformed part stops the worker (it is still
    running) and raises ``ProcessFailed``."""
    spec = batch.spec
    lower, upper = _bounds(batch.manifest, spec)
    count, lists, planned = later
    at = 0

    def take(got: Any, last: bool) -> None:
        nonlocal at
        used = [p.observed for p in plans[at:]]  # every cycle was planned and sent before a part is read
        array = got.get("members") if isinstance(got, dict) else None
        size = array.shape[0] if isinstance(array, np.ndarray) and array.ndim == 3 else None
        if last:
            problem = malformed(got, used, members.shape)
        elif size is None or not 0 < size <= len(used):
            problem = f"a part of {size} cycles where 1 to {len(used)} were left to send"
        else:
            problem = malformed(got, used[:size], members.shape) or (
                "a part with an error" if got["error"] is not None else None)
        if problem is not None:
            raise ProtocolError(f"the app's worker answered wrongly: {problem}")
        done = int(got["members"].shape[0])
        sink((plans[at:at + done], dict(got)))
        at += done

    try:
        got = app.process(CYCLES, {
            "step": spec.step.entrypoint, "names": list(spec.state), "parameters": dict(batch.twin.parameters),
            "dt": spec.step.dt.total_seconds(), "members": members, "log_weights": log_weights,
            "operators": {name: o.operator for name, o in spec.observations.items() if o.operator is not None},
            "method": batch.method.value, "tuning": spec.tuning.model_dump(mode="python"), "seed": batch.seed,
            "noise_std": np.asarray(spec.per_entry(spec.step.noise)), "lower": lower, "upper": upper,
            "coords": coords, "plan": [payload(p) for p in plans], "form": spec.step.state_form, "count": count},
            parts=lambda got: take(got, last=False),
            more=("plan", lists, ([payload(p) for p in chunk] for chunk in planned)), cpu=cpu)
    except WorkerError as exc:
        raise ProcessFailed(f"assimilation.step: the app's code failed: {exc.remote}") from None
    except (WorkerCrashed, ProtocolError) as exc:
        raise ProcessFailed(f"assimilation.step: the app's worker failed: {exc}") from None
    try:
        take(got, last=True)
    except ProtocolError as exc:
        raise ProcessFailed(f"assimilation.step: {exc}") from None


def _failed(batch: Batch, error: dict[str, Any]) -> Exception:
    """The error of the cycle the worker stopped at (the cycles before it are written)."""
    if error.get("where") == "filter" and error.get("type") == "ValueError":
        return ValidationFailed.one("method", f"{batch.method.value}: {error.get('message')}")
    if error.get("where") == "filter":
        return ProcessFailed(f"assimilation.filter: {error.get('line')}")
    return ProcessFailed(f"assimilation.step: the app's code failed: {error.get('line')}")


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

    The cycles are planned from the records alone and run in one call to the app's worker (model steps and
    filter, cycle after cycle), which sends its analyses back in parts as it goes; this thread writes each
    part (its revisions and cycle records) while the worker runs the next cycles, so the worker never waits
    for the engine between cycles. The analyses do not depend on the grouping (each cycle's random numbers
    come from its own seeded generators). ``checkpoint`` is called after a part is written, about every
    ``COMMIT_SECONDS`` and after the last one (the API commits there: the store's writers are not kept
    waiting for the rest; a failing cycle keeps the ones before it)."""
    twin = twins.get_twin(session, principal=principal, ref=ref, action="twin.operate")
    require(principal, "assimilation.run", twin, target=f"twin {ref}")
    admit(session, principal=principal, outcome="the assimilation is refused")  # its owner's quotas (429)
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
    seed = request.seed if request.seed is not None else spec.seed if spec.seed is not None else default_seed(
        twin.name)
    guess = _first_guess(session, principal, twin, spec) if prior.members is None else None
    steps_from = guess.time if guess is not None else None
    if steps_from is not None:  # the first cycle forecasts from the first guess's time to its observations,
        prior.time = steps_from - _JUST_BEFORE  # which come after it (one at that very time needs no step)
    if prior.members is not None and request.members is not None and request.members != prior.members.shape[0]:
        prior.members, prior.log_weights = _redraw(prior.members, request.members, seed), None
    members = int(prior.members.shape[0]) if prior.members is not None else (request.members or spec.members)
    source = _source(session, twin)
    stream = observation_stream(manifest, next(iter(spec.observations.values())).stream) or ""
    time_field = manifest.streams[stream].time_field
    table = engines.hub.read(stream_key(source.id, stream), start=prior.offset, limit=MAX_RECORDS,
                             time_field=time_field)
    total, records, columns = 0, [], None
    if table is not None:
        table = usable(table)
        total, cut = window(spec, table, time_field, prior.time, request.cycles)
        if columnar(spec, table):  # numbers only: planned on the columns, no dict per record
            columns = Columns.of(spec, table.slice(0, cut), time_field)
        else:
            records = plain_records(table.slice(0, cut))
    row = catalog.get_app_version(session, principal=SYSTEM, name=twin.app_name, version=twin.app_version)
    app = engines.code.get(row.archive_sha256, manifest)
    number = (session.scalar(select(func.max(AssimilationCycle.number))
                             .where(AssimilationCycle.twin_id == twin.id)) or 0)
    batch = Batch(twin, manifest, spec, principal, method, members, seed)
    clock = Clock(prior.time, prior.offset, prior.forcing, steps_from=steps_from)
    coords = np.asarray(spec.coordinates if spec.coordinates is not None else range(len(spec.state)), dtype=float)
    coords = np.concatenate([coords, [float(o.position or 0.0) for o in spec.observations.values()
                                      if o.operator is not None]])
    observed = layout(spec, coords)
    wanted = min(request.cycles, total)
    plans: list[Planned] = []

    def plan(count: int) -> list[Planned]:
        """``count`` more cycles (fewer where the records end), appended to ``plans``."""
        made: list[Planned] = []
        while len(made) < count:
            if columns is not None:
                planned = columns.plan(spec, clock, number + len(plans) + 1, stream, observed)
            else:
                when = next_time(spec, records, time_field, clock.time, clock.offset)
                planned = None if when is None else plan_cycle(spec, clock, when, number + len(plans) + 1, stream,
                                                               observed)
            if planned is None:
                break
            made.append(planned)
            plans.append(planned)
        return made

    plan(min(FIRST_PLANNED, wanted))
    lists = -(-(wanted - len(plans)) // PLANNED_LIST)  # the rest, planned on the worker call's thread
    done: list[CycleRead] = []
    start = prior.members
    if plans and start is None and guess is not None:
        start = guess.ensemble(twin, members, seed)
    if not plans or start is None:
        return _result(request, twin, done, total)
    first = start
    parts: queue.SimpleQueue[Part | BaseException | None] = queue.SimpleQueue()

    def run() -> None:
        try:
            _run(app, batch, first, prior.log_weights, plans, coords, parts.put,
                 (wanted, lists, (plan(min(PLANNED_LIST, wanted - len(plans))) for _ in range(lists))), work.charge)
        except BaseException as exc:  # told to the request's thread, which raises it
            parts.put(exc)
        else:
            parts.put(None)

    # one usage record per request (written as it ends, done or not): its worker's CPU and the engine's share
    work = Work.of("assimilation", f"{twin.id}#{number + 1}", principal=principal, twin_id=twin.id,
                   twin_name=twin.name, app=f"{twin.app_name}@{twin.app_version}")
    committed = time.perf_counter()
    with work.metered(session, commit=checkpoint), \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="assimilation") as pool:
        pool.submit(run)
        # this thread writes each part while the worker runs the next cycles
        while (got := parts.get()) is not None:
            if isinstance(got, BaseException):
                if checkpoint is not None and done:
                    checkpoint()  # the cycles written before the failure are kept
                raise got
            cycles, answer = got
            written = record(session, batch, cycles, answer, prior_cycle=prior.cycle_id)
            if written:
                prior.cycle_id = written[-1].id
            done += written
            last = answer["error"] is not None or len(done) == len(plans)
            if checkpoint is not None and (last or time.perf_counter() - committed >= COMMIT_SECONDS):
                checkpoint()
                committed = time.perf_counter()
            if progress is not None:
                progress(len(done), min(total, request.cycles))
            if answer["error"] is not None:
                raise _failed(batch, answer["error"])
    return _result(request, twin, done, total - len(done))


def _result(request: AssimilationRequest, twin: Twin, done: list[CycleRead], pending: int) -> AssimilationResult:
    return AssimilationResult(twin=twin.name, cycles=done if request.answer == "cycles" else [], count=len(done),
                              last=done[-1] if done else None, pending=pending)


def read_cycle(row: AssimilationCycle, twin: Twin, *, detail: bool = False) -> CycleRead:
    out = CycleRead(id=row.id, twin=twin.name, number=row.number, method=Method(row.method), members=row.members,
                    seed=row.seed, tuning=row.tuning, valid_time=row.valid_time, obs_count=row.obs_count,
                    offsets={k: list(v) for k, v in row.offsets.items()}, innovation_mean=row.innovation_mean,
                    innovation_rms=row.innovation_rms, expected_rms=row.expected_rms, spread=row.spread,
                    revision=row.revision, origin_cycle=row.origin_cycle, created_at=row.created_at)
    if detail:
        members = array_of(row.ensemble["members"])
        weights = row.ensemble.get("log_weights")
        mean, std = weighted_stats(members, None if weights is None else np.asarray(weights))
        out.innovations = {k: InnovationRead.model_validate(v) for k, v in innovation_rows(row.innovations).items()}
        out.observations = observation_rows(row.observations)
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
