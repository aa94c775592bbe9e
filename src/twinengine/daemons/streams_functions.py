"""The function worker: runs apps' functions on arrival of stream records, warm and bounded.

Each (twin, function) is a consumer with a checkpointed offset. The worker wakes on every durable append,
reads what is new, decides the calls from the trigger, and runs them on a bounded pool (one task per
consumer at a time, so a function sees its records in order). Effects (state revisions, events) and the new
offset commit in one transaction: at-least-once delivery, effects once. Records a function publishes to another
stream are appended just before that transaction (``twinengine.streams.publish``). A failing call is retried
with exponential backoff, then its records go to the dead-letter list with the reason (the app's line, the
records' offsets and keys) and the consumer moves on; the same exception at the same line of app code twice is
a bug and is not retried further, and after ``function_pause_after`` dead-lettered batches in a row the
function is paused until ``resume`` (``streams.service.resume_function``) replays them; a target stream that
pushes back (its consumers too far behind) only delays the consumer. A function that joins other streams
(``join``) is woken by appends to any of them and called with each record joined with its partners
(``twinengine.streams.join``); its checkpoint is the offset of its own stream.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import pyarrow as pa
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from twinengine.auth.groups import groups_of
from twinengine.catalog import service as catalog
from twinengine.catalog.manifest import FunctionSpec, Manifest
from twinengine.catalog.models import AppVersion
from twinengine.catalog.state_keys import base_of
from twinengine.compute.quotas import quota_hold
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.daemons.engine_parts import EngineParts
from twinengine.daemons.functions_usage import Charged, FunctionUsage
from twinengine.errors import StreamBackpressure, TwinEngineError
from twinengine.ml.functions import ChampionModels
from twinengine.quality.pedigree import records_quality, worst
from twinengine.quality.spec import FLAGS
from twinengine.store.base import utcnow
from twinengine.store.changes import changed_since
from twinengine.store.outage import store_unreachable
from twinengine.streams.arrays import to_python
from twinengine.streams.functions import FunctionContext, failure_signature, record_place, select_kept_calls
from twinengine.streams.hub import stream_key
from twinengine.streams.join import MISSING, Joined, Joiner
from twinengine.streams.models import DeadLetter, StreamConsumer
from twinengine.streams.publish import Published, append_published, check_published
from twinengine.streams.service import EVENTS_STREAM
from twinengine.twins import state
from twinengine.twins.models import Twin
from twinengine.twins.schemas import StateKind
from twinengine.twins.validation import write_of
from twinengine.workers.apps import AppCode
from twinengine.workers.effects import CallEffects, Malformed
from twinengine.workers.process import WorkerCrashed, WorkerError, app_place
from twinengine.workers.protocol import ProtocolError

__all__ = ["EVENTS_STREAM", "FunctionWorker", "StateRefused", "app_line", "take_effects"]

log = logging.getLogger("twinengine.functions")

EVENT_SCHEMA = pa.schema([("time", pa.timestamp("us", tz="UTC")), ("function", pa.string()), ("kind", pa.string()),
                          ("data", pa.string())])
_MAX_BATCH = 10_000
_MAX_BATCH_BYTES = 64 << 20  # records with array fields are large: a batch stops at about this much
_SLICE_CALLS = 256
_SLICE_SECONDS = 0.05
_CHECKPOINT_SECONDS = 1.0
_HOLD_SECONDS = 5.0  # how often an owner's compute quota is looked at again (held or not)
_USAGE_SWEEP_SECONDS = 1.0  # how often a pass looks for idle functions whose usage period is over
_REFRESH_SECONDS = 1.0
_POLL_SECONDS = 0.05  # while some consumer has records left
_TOPICS = ("twins", "apps", "functions")  # what the consumers depend on (store/changes.py); functions: resumed
_UNSET = object()


@dataclass
class _Consumer:
    twin_id: str
    twin_name: str
    app_sha: str
    name: str
    spec: FunctionSpec
    time_field: str
    retries: int
    offset: int = 0
    attempts: int = 0
    not_before: float = 0.0
    window_opened: float = field(default_factory=time.monotonic)
    busy: bool = False
    limit: int | None = None  # after a failure: take only this many records next time
    pending_calls: int = 0  # calls made since the last written checkpoint
    persisted: int = 0  # offset of the last written checkpoint
    checkpointed: float = 0.0
    joiner: Joiner | None = None  # with ``join``: the partners of its records come from other streams
    join_until: float = 0.0  # a record waits for partners until then (monotonic), unless a stream is appended to
    appended: bool = False  # one of its streams was appended to since its last batch began
    reads_state: bool = False  # its function asked for the twin's state: sent with its next batches
    key_field: str | None = None  # the stream's key (which source a record came from), named in failures
    signature: str | None = None  # the last failed attempt's exception type and app line
    failures: int = 0  # batches dead-lettered in a row (a call that works ends the run)
    streak: int | None = None  # offset of the first record of that run
    paused: str | None = None  # why the function is paused (its records wait until it is resumed)
    usage: FunctionUsage = field(default_factory=FunctionUsage)  # what its calls used since its last record

    @property
    def key(self) -> str:
        return stream_key(self.twin_id, self.spec.stream)

    @property
    def keys(self) -> list[str]:
        """Every stream whose appends may let it run: its own and the joined ones."""
        return [stream_key(self.twin_id, name) for name in self.spec.inputs]

    @property
    def ident(self) -> str:
        return f"function:{self.name}"


class _CallFailed(Exception):
    """A call raised: ``before`` records were consumed by the calls before it, ``size`` by the failing one,
    whose records were ``records``."""

    def __init__(self, cause: BaseException, before: int, size: int,
                 records: list[dict[str, Any]] | None = None) -> None:
        super().__init__(str(cause))
        self.cause, self.before, self.size, self.records = cause, before, size, records or []


class FunctionWorker:
    """``run_once()`` starts due calls and returns how many batches it started; ``wait`` waits for news and
    ``close`` ends the calls in flight (``daemons.streams_engine`` makes them a loop)."""

    def __init__(self, runtime: EngineParts) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.code: AppCode = runtime.app_code  # each call runs in a warm sandboxed worker of the app version
        self.pool = ThreadPoolExecutor(self.settings.function_workers, thread_name_prefix="twin-fn")
        self.consumers: dict[tuple[str, str], _Consumer] = {}
        self._refreshed = 0.0
        self._counters: dict[str, int] | None = None  # change counters at the last refresh
        # Which version of a model a twin uses: (twin id, app archive sha256, model name) -> version, asked once
        # per batch; the function's worker builds a version it does not hold from model_recipe(twin id, app
        # sha256, model, version): {} for the app-built model, else the champion's weights and parameters. The
        # AI lifecycle plugs in here: its champion for models it trained for the twin, else the app's model.
        champions = ChampionModels(runtime)
        self.model_versions: Callable[[str, str, str], str] = champions.version
        self.model_recipe: Callable[[str, str, str, str], dict[str, Any]] = champions.recipe
        # Starts a workflow run for start_workflow: (session, twin id, workflow, parameters, event key) -> run
        # id, in the transaction of the call's checkpoint; the runtime fires the twin's stream-window trigger.
        # None: the request is only recorded as an event.
        self.workflow_starter: Callable[[Session, str, str, dict[str, Any], str], str | None] | None = (
            runtime.start_stream_workflow)
        self._pending: set[Future[None]] = set()
        self.stopping = threading.Event()
        self._appends = 0  # the stream hub's append number at the last pass
        self._by_key: dict[str, set[tuple[str, str]]] = {}  # stream key -> consumers reading it
        self._waiting: set[tuple[str, str]] = set()  # consumers that may have records to take
        self._version = -1  # the notifier's version the last wait saw
        self.closed = False  # its pool is shut down: a new term of the loop needs a new worker
        self._usage_swept = 0.0  # when the loop last wrote the records of idle functions' ended periods
        self._gone: list[_Consumer] = []  # consumers of deleted twins or removed functions, their usage unwritten
        self._holds: dict[str, tuple[float, str | None]] = {}  # owner -> (when to look again, why held or None)

    # -- discovery -------------------------------------------------------------------------------

    def refresh(self, session: Session) -> None:
        """Learn of new and deleted twins and replaced app versions from the change counters: one small
        read when nothing changed, and only the changed twins' rows when something did (all at first)."""
        changes = changed_since(session, self._counters, _TOPICS)
        self._counters = changes.values
        if changes.any:
            ids = None if changes.reload else self._affected(session, changes.keys)
            self._load(session, ids)
        self._refreshed = time.monotonic()

    @staticmethod
    def _affected(session: Session, keys: dict[str, set[str]]) -> set[str]:
        """The twins a change touched: changed twins, and the twins of replaced app versions."""
        ids = set(keys.get("twins", ())) | set(keys.get("functions", ()))
        refs = [tuple(ref.split("@", 1)) for ref in keys.get("apps", ())]
        if refs:
            ids |= set(session.scalars(select(Twin.id).where(tuple_(Twin.app_name, Twin.app_version).in_(refs))))
        return ids

    def _load(self, session: Session, ids: set[str] | None) -> None:
        """(Re)load the consumers of twins ``ids`` (None: of every twin); forget those of deleted twins."""
        query = select(Twin.id, Twin.name, Twin.app_id, AppVersion.archive_sha256, Twin.owner, Twin.app_name,
                       Twin.app_version).join(AppVersion, AppVersion.id == Twin.app_id)
        consumers = select(StreamConsumer)
        if ids is not None:
            query, consumers = query.where(Twin.id.in_(ids)), consumers.where(StreamConsumer.twin_id.in_(ids))
        rows = session.execute(query).all()
        found = {(c.twin_id, c.function): c for c in session.scalars(consumers)}
        offsets = {ident: row.offset for ident, row in found.items()}
        # Of a whole fleet, only streams that hold records can have any waiting: one listing of the log
        # instead of opening every twin's stream (new records after start wake their consumers anyway).
        stored = set(self.runtime.streams.log.list_keys()) if ids is None else None
        seen = set()
        for twin_id, twin_name, app_id, sha, owner, app_name, app_version in rows:
            manifest = catalog.manifest_by_digest(session, app_id, sha)  # no query once the version is parsed
            charged = Charged(owner, twin_name, f"{app_name}@{app_version}")
            for name, spec in manifest.functions.items():
                ident = (twin_id, name)
                seen.add(ident)
                known = self.consumers.get(ident)
                # A development version got new files: the consumer's next batch runs the new code (a batch
                # in flight ends on the old one; a function moved to another stream moves on restart).
                if (known is not None and known.app_sha != sha and not known.busy
                        and known.spec.inputs == spec.inputs):
                    known.app_sha, known.spec = sha, spec
                    known.time_field = manifest.streams[spec.stream].time_field
                    known.joiner = _joiner(manifest, spec)
                if known is not None:
                    known.usage.charged = charged
                row = found.get(ident)
                if known is not None and known.paused and row is not None and row.paused_reason is None:
                    self._resumed(known, row.offset)
                if ident not in self.consumers:
                    retries = spec.retries if spec.retries is not None else self.settings.function_retries
                    consumer = _Consumer(twin_id, twin_name, sha, name, spec,
                                         manifest.streams[spec.stream].time_field, retries,
                                         offset=offsets.get(ident, 0), persisted=offsets.get(ident, 0),
                                         joiner=_joiner(manifest, spec),
                                         key_field=manifest.streams[spec.stream].key)
                    if row is not None and row.paused_reason is not None:
                        consumer.paused, consumer.streak = row.paused_reason, row.paused_from
                    self.consumers[ident] = consumer
                    consumer.usage.charged = charged
                    for key in consumer.keys:
                        self._by_key.setdefault(key, set()).add(ident)
                    if consumer.paused is not None:
                        continue  # its records wait for ``resume`` without holding back the stream's producers
                    if stored is None or not stored.isdisjoint(consumer.keys):
                        self._waiting.add(ident)  # records may have come while it was unknown
                    self.runtime.streams.commit(consumer.key, consumer.ident, consumer.offset)
        for ident in [i for i in self.consumers if i not in seen and (ids is None or i[0] in ids)]:
            gone = self.consumers.pop(ident)
            self._gone.append(gone)  # what it used since its last record is still written (its twin's owner)
            for key in gone.keys:
                self._by_key.get(key, set()).discard(ident)
                self.runtime.streams.release(key, gone.ident)
            self._waiting.discard(ident)

    def _resumed(self, consumer: _Consumer, offset: int) -> None:
        """``resume`` cleared the pause and moved the checkpoint back to the first dead letter of the run
        that paused it: take the records from there again."""
        consumer.paused = consumer.streak = consumer.signature = consumer.limit = None
        consumer.offset = consumer.persisted = offset
        consumer.failures = consumer.attempts = 0
        consumer.not_before = 0.0
        self.runtime.streams.commit(consumer.key, consumer.ident, offset)
        self._waiting.add((consumer.twin_id, consumer.name))
        log.info("function %s of %s resumed at offset %d", consumer.name, consumer.twin_name, offset)

    # -- scheduling ------------------------------------------------------------------------------

    def run_once(self, session: Session | None = None) -> int:
        """Look only at consumers whose stream was appended to since the last pass, or that had records
        left (new ones, busy, backing off, waiting for their window): an idle pass costs nothing per twin."""
        appended, self._appends = self.runtime.streams.appended_since(self._appends)
        unknown = any(key not in self._by_key for key in appended)  # a stream appended to for the first time
        if session is not None:
            self.refresh(session)
        elif unknown or time.monotonic() - self._refreshed > _REFRESH_SECONDS:
            with self.runtime.db.session(readonly=True) as fresh:
                self.refresh(fresh)
        started = 0
        now = time.monotonic()
        woken = {ident for key in appended for ident in self._by_key.get(key, ())}
        for ident in sorted(woken | self._waiting):
            consumer = self.consumers.get(ident)
            if consumer is None:
                self._waiting.discard(ident)
                continue
            if ident not in self._waiting and consumer.spec.trigger.kind == "time":
                consumer.window_opened = now  # idle until now: its window opens with these records
            if consumer.paused is not None:  # nothing runs until it is resumed; an idle pass skips it
                self._waiting.discard(ident)
                continue
            self._waiting.add(ident)
            consumer.appended = consumer.appended or ident in woken
            if consumer.busy or now < consumer.not_before:
                continue
            if now < consumer.join_until and not consumer.appended:  # a record waits for its partners
                continue
            end = self.runtime.streams.end(consumer.key)
            if end <= consumer.offset:
                self._waiting.discard(ident)
                continue
            trigger = consumer.spec.trigger
            if trigger.kind == "time" and now - consumer.window_opened < (trigger.seconds or 0):
                continue
            if trigger.kind == "count" and end - consumer.offset < (trigger.count or 1):
                continue
            if self._held(consumer, now):  # its owner's quota is used up: its records wait
                consumer.not_before = now + _HOLD_SECONDS
                continue
            consumer.busy, consumer.appended = True, False
            future = self.pool.submit(self._run, consumer, end)
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)
            started += 1
        if now - self._usage_swept >= _USAGE_SWEEP_SECONDS:
            self._usage_swept = now
            self._record_idle_usage()
        return started

    def _held(self, consumer: _Consumer, now: float) -> bool:
        """Whether the twin's owner's compute quota on this engine's site is used up (``quota_hold``, the rule
        the API shows): looked up at most once per ``_HOLD_SECONDS`` per owner, counting what their functions
        used that is not written yet. Streams are never refused; their functions wait."""
        charged = consumer.usage.charged
        if charged is None:
            return False
        checked = self._holds.get(charged.owner)
        if checked is None or now >= checked[0]:
            running = sum(c.usage.cpu_seconds for c in self.consumers.values()
                          if c.usage.charged is not None and c.usage.charged.owner == charged.owner)
            with self.runtime.db.session(readonly=True) as session:
                reason = quota_hold(session, identity=charged.owner, groups=groups_of(session, charged.owner),
                                    site=DEFAULT_SITE, running=running)
            before = checked[1] if checked is not None else None
            if reason != before:
                log.info("functions of %s's twins %s", charged.owner,
                         f"wait: {reason}" if reason else "go on: the compute quota allows them again")
            checked = self._holds[charged.owner] = (now + _HOLD_SECONDS, reason)
        return checked[1] is not None

    def _record_idle_usage(self) -> None:
        """The usage records of functions whose period is over while they wait (a function that ran, then had
        no records, would otherwise show nothing until its next batch or the engine's stop). A consumer not
        busy is touched by this loop's thread alone."""
        due = [c for c in self.consumers.values() if not c.busy and c.usage.due()]
        gone = [c for c in self._gone if not c.busy]  # a batch in flight ends first, then its usage is written
        self._gone = [c for c in self._gone if c.busy]
        due += [c for c in gone if c.usage.batches]
        if due:
            with self.runtime.db.session() as session:
                for consumer in due:
                    consumer.usage.record(session, consumer.twin_id, consumer.name)

    def _sleep(self) -> float:
        """How long the loop may wait for a wake-up (appends, state commits and finished calls all wake it):
        briefly while consumers have records left (time windows, backoff), else until the change counters are
        due for their next look. An idle worker wakes once a second, not twenty times."""
        if self._waiting:
            return _POLL_SECONDS
        return max(_POLL_SECONDS, _REFRESH_SECONDS - (time.monotonic() - self._refreshed))

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for the calls in flight (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.005)

    def wait(self, stop: threading.Event) -> None:
        """Between passes: until an append, a state commit or a finished call wakes the notifier (``_sleep``)."""
        self._version = self.runtime.notifier.wait_any(self._version, self._sleep())

    def close(self) -> None:
        """After the last pass: calls in flight finish their slice and stop, then the checkpoints are written."""
        self.stopping.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        # closed before the flush, which needs the store: a term that ends because the store went away (its
        # lock with it) must still leave a worker the next term replaces, not one whose pool takes no calls
        self.closed = True
        self.flush_checkpoints()

    def flush_checkpoints(self) -> None:
        """Write the checkpoints held in memory (slices without effects) and what the functions used since
        their last usage record, e.g. on shutdown."""
        waiting = [c for c in self.consumers.values() if c.pending_calls or c.offset != c.persisted]
        used = [c for c in [*self.consumers.values(), *self._gone] if c.usage.batches]
        self._gone = []
        if waiting or used:
            with self.runtime.db.session() as session:
                for consumer in waiting:
                    self._checkpoint(session, consumer, consumer.offset, consumer.pending_calls)
                    consumer.pending_calls = 0
                for consumer in used:
                    consumer.usage.record(session, consumer.twin_id, consumer.name)

    # -- one batch -------------------------------------------------------------------------------

    def _run(self, consumer: _Consumer, end: int) -> None:
        try:
            self._attempt(consumer, end)
        except Exception as exc:
            self._failed(consumer, end, exc)
        finally:
            consumer.busy = False
            self.runtime.notifier.notify("functions")  # wake the loop: this consumer may have more to do

    def _attempt(self, consumer: _Consumer, end: int) -> None:
        """Run the due calls in slices of a few dozen ms. Calls read through a read-only session; a slice's
        effects are checked as each call returns and written, with the checkpoint after them, in one short
        transaction. A slice without effects only moves the offset in memory; that checkpoint is written
        within ``_CHECKPOINT_SECONDS`` (at-least-once: a crash may call those records again)."""
        base = consumer.offset
        stop = min(end, base + (consumer.limit or _MAX_BATCH))
        trigger = consumer.spec.trigger
        # A count window needs its records whole; with records left out by flag it may need more than
        # ``count``, so then no byte budget (it could starve the window).
        counted = trigger.kind == "count"
        budget = None if counted and consumer.spec.quality.exclude else _MAX_BATCH_BYTES // len(consumer.spec.inputs)
        table = self.runtime.streams.read(consumer.key, start=base, stop=stop, limit=stop - base,
                                          time_field=consumer.time_field, max_bytes=budget,
                                          min_rows=(trigger.count or 1) if counted else 1)
        records = to_python(table) if table is not None else []
        skipped: list[int] = []
        notes: list[dict[str, Any]] = []  # events of the batch itself (records joined without partners)
        if consumer.joiner is not None:
            joined = self._join(consumer, table, records)
            records, skipped, notes = joined.records, joined.skipped, _incomplete(joined, base)
        calls, used = select_kept_calls(consumer.spec.trigger, records, {f.value for f in
                                                                         consumer.spec.quality.exclude}, skipped)
        if consumer.spec.trigger.kind == "time":
            consumer.window_opened = time.monotonic()
        pos = 0
        model: Any = _UNSET  # one model version for the whole batch: a new one takes over at the next batch
        while True:
            with self.runtime.db.session(readonly=True) as session:
                twin = session.get(Twin, consumer.twin_id)
                if twin is None:
                    return
                manifest = catalog.manifest_by_id(session, twin.app_id)
                code = self.code.get(consumer.app_sha, manifest)
                model = self._model(consumer) if model is _UNSET else model
                ctx = FunctionContext(twin_id=twin.id, twin_name=twin.name, function=consumer.name,
                                      parameters=dict(twin.parameters), read_state=partial(state.read_state, session,
                                                                                           twin))
                committed = prev = consumer.offset - base
                made = 0
                effects: list[tuple[list[state.NewValue], str | None]] = []
                published: Published = []
                keys: list[str] = []  # one per workflow request: the window (last offset) and its place in it
                chunk = calls[pos: pos + _SLICE_CALLS]
                header = {"entrypoint": consumer.spec.entrypoint, "model": model, "seconds": _SLICE_SECONDS,
                          "twin": {"id": twin.id, "name": twin.name, "function": consumer.name,
                                   "parameters": dict(twin.parameters), "properties": sorted(manifest.state)}}
                results: list[Any] = []
                failed: dict[str, Any] | None = None
                called = time.monotonic()
                try:
                    if chunk:
                        results, failed = code.functions(header, [records for records, _ in chunk],
                                                         prefer=f"{consumer.ident}@{twin.id}",
                                                         ask=partial(self._answer, consumer, manifest, ctx),
                                                         state=ctx.read_state if consumer.reads_state else None,
                                                         cpu=consumer.usage.spent, gpu=consumer.usage.gpu_spent)
                except (WorkerCrashed, ProtocolError) as exc:  # the worker died (or lied) in the call it began:
                    done = min(getattr(exc, "completed", 0), len(chunk) - 1)  # those before it are run again
                    start = chunk[done - 1][1] if done else prev
                    raise _CallFailed(exc, start - prev, chunk[done][1] - start, chunk[done][0]) from exc
                finally:
                    if chunk:
                        consumer.usage.called(time.monotonic() - called)
                for (call_records, through), result in zip(chunk, results, strict=False):
                    try:
                        take_effects(ctx, result)
                        effects += self._check(manifest, consumer, ctx, call_records)
                        published += check_published(manifest, consumer.spec,
                                                     ctx.published[ctx.checked_published:])
                        ctx.checked_published = len(ctx.published)
                    except Exception as exc:
                        raise _CallFailed(exc, prev - committed, through - prev, call_records) from exc
                    keys += [f"{consumer.name}:{consumer.spec.stream}:{base + through}:{j}"
                             for j in range(len(ctx.workflow_requests) - len(keys))]
                    prev, pos, made = through, pos + 1, made + 1
                if chunk and (failed is not None or not results):
                    cause = WorkerError(str((failed or {}).get("error", "the worker ran no call")),
                                        str((failed or {}).get("trace", "")))
                    raise _CallFailed(cause, prev - committed, chunk[len(results)][1] - prev,
                                      chunk[len(results)][0])
            consumed = used if pos == len(calls) else prev
            requests = [{"kind": "workflow.requested", **r} for r in ctx.workflow_requests]
            events, notes = notes + ctx.events + requests, []
            if published:  # durable before the checkpoint moves past the calls that published them
                append_published(self.runtime.streams, consumer.twin_id, published)
            consumer.pending_calls += made
            if made:  # a call worked: the run of dead-lettered batches, if any, is over
                consumer.failures, consumer.streak = 0, None
            if effects or events or published or consumer.usage.due() \
                    or time.monotonic() - consumer.checkpointed > _CHECKPOINT_SECONDS:
                with self.runtime.db.session() as session:
                    twin = session.get(Twin, consumer.twin_id)
                    if twin is None:
                        return
                    for values, message in effects:
                        state.append_revision(session, twin, values, author=consumer.ident,
                                              message=message or f"{consumer.name} on {consumer.spec.stream}",
                                              manifest=manifest)
                    if self.workflow_starter is not None:
                        for request, key in zip(requests, keys, strict=True):  # in the checkpoint's transaction
                            self._start(session, twin.id, request, key)
                    self._checkpoint(session, consumer, base + consumed, consumer.pending_calls)
                    if consumer.usage.due():
                        consumer.usage.record(session, consumer.twin_id, consumer.name)
                consumer.pending_calls, consumer.checkpointed = 0, time.monotonic()
                self._emit(twin.id, consumer, events)
            consumer.offset = base + consumed
            self.runtime.streams.commit(consumer.key, consumer.ident, consumer.offset)
            if pos == len(calls) or self.stopping.is_set():
                break
        consumer.limit = None
        if used:
            consumer.attempts, consumer.signature = 0, None

    def _join(self, consumer: _Consumer, table: pa.Table | None, records: list[dict[str, Any]]) -> Joined:
        """The batch's records joined with their partners as far as they are ready; the first record still
        waiting holds the consumer until its wait runs out or one of its streams is appended to."""
        assert consumer.joiner is not None
        exclude = {f.value for f in consumer.spec.quality.exclude}
        joined = consumer.joiner(self.runtime.streams, consumer.twin_id, table, records, now=time.time(),
                                 exclude=exclude)
        consumer.join_until = (0.0 if joined.wait_until is None
                               else time.monotonic() + max(joined.wait_until - time.time(), 0.0))
        for key, offset in consumer.joiner.offsets(consumer.twin_id).items():  # lag and backpressure
            self.runtime.streams.commit(key, consumer.ident, offset)
        return joined

    def _start(self, session: Session, twin_id: str, request: dict[str, Any], key: str) -> None:
        """Start a requested run; one the workflow refuses (bad parameters, trigger gone) is an error kept in
        the request's event, and the batch's other effects still commit."""
        if self.workflow_starter is None:
            return
        try:
            with session.begin_nested():
                request["run_id"] = self.workflow_starter(session, twin_id, request["workflow"],
                                                          request["parameters"], key)
        except TwinEngineError as exc:
            request["run_id"], request["error"] = None, f"{exc.code}: {exc.message}"
            log.warning("start_workflow %s for twin %s refused: %s", request["workflow"], twin_id, exc.message)

    def _model(self, consumer: _Consumer) -> dict[str, str] | None:
        """Which model (slot) and version the batch's calls use; the worker asks for a recipe of a version it
        does not hold yet, builds it once and keeps it (a batch already holding the previous one finishes
        with it)."""
        name = consumer.spec.model
        if name is None:
            return None
        slot = (consumer.twin_id, consumer.app_sha, name)
        return {"slot": "|".join(slot), "version": self.model_versions(*slot)}

    def _answer(self, consumer: _Consumer, manifest: Manifest, ctx: FunctionContext, question: dict[str, Any]) -> Any:
        """What a function's worker asks mid-batch: the twin's state (a snapshot), or how to build a model. A
        function that asked for the state once gets it with its batches from then on (a pipe's round trip
        less per batch)."""
        if question.get("ask") == "state":
            consumer.reads_state = True
            return ctx.read_state()
        if question.get("ask") == "model" and consumer.spec.model is not None:
            name = consumer.spec.model
            recipe = self.model_recipe(consumer.twin_id, consumer.app_sha, name, str(question.get("version")))
            return {"entrypoint": manifest.models[name].entrypoint, **recipe}
        raise ProtocolError(f"a function's worker asked for {question.get('ask')!r}")

    def _check(self, manifest: Manifest, consumer: _Consumer, ctx: FunctionContext,
               records: list[dict[str, Any]]) -> list[tuple[list[state.NewValue], str | None]]:
        """Validate the state updates and workflow requests of the call that just returned (a bad one fails
        that call). Values computed from suspect or bad records say so (pedigree)."""
        for request in ctx.workflow_requests[ctx.checked_requests:]:
            if request["workflow"] not in manifest.workflows:
                known = ", ".join(sorted(manifest.workflows)) or "none"
                raise ValueError(f"start_workflow: {request['workflow']!r} is not a workflow of {manifest.ref} "
                                 f"(workflows: {known})")
        ctx.checked_requests = len(ctx.workflow_requests)
        checked = []
        quality = _pedigree(consumer, records) if ctx.updates else None
        for update in ctx.updates:
            try:
                writes = {k: write_of(f"reported.{k}", v, manifest.state.get(base_of(k)), update.timestamp)
                          for k, v in update.values.items()}
                values = state.validate_write(manifest, {StateKind.REPORTED: writes, StateKind.DESIRED: {}})
            except TwinEngineError as exc:  # where the function wrote it is told by ``_failed``
                raise StateRefused(f"update_state: {exc.message}", app_line(update.place)) from exc
            checked.append(([replace(v, quality=quality) for v in values] if quality else values, update.message))
        ctx.applied += ctx.updates
        ctx.updates = []
        return checked

    def _emit(self, twin_id: str, consumer: _Consumer, events: list[dict[str, Any]]) -> None:
        if events:
            now = utcnow()
            table = pa.Table.from_pydict({"time": [now] * len(events), "function": [consumer.name] * len(events),
                                          "kind": [str(e.pop("kind")) for e in events],
                                          "data": [json.dumps(e, default=str) for e in events]}, schema=EVENT_SCHEMA)
            self.runtime.streams.append(stream_key(twin_id, EVENTS_STREAM), table, time_field="time")

    def _checkpoint(self, session: Session, consumer: _Consumer, offset: int, calls: int) -> None:
        consumer.persisted = offset
        row = session.get(StreamConsumer, (consumer.twin_id, consumer.name))
        if row is None:
            row = StreamConsumer(twin_id=consumer.twin_id, function=consumer.name, stream=consumer.spec.stream,
                                 offset=offset, calls=calls, updated_at=utcnow())
            session.add(row)
        else:
            row.offset, row.calls, row.updated_at = offset, row.calls + calls, utcnow()
        session.flush()

    def _failed(self, consumer: _Consumer, end: int, exc: Exception) -> None:
        cause: BaseException = exc.cause if isinstance(exc, _CallFailed) else exc
        if isinstance(cause, StreamBackpressure):  # a stream it publishes to is full: wait, it is no failure
            consumer.not_before = time.monotonic() + max(cause.retry_after or 1.0, self.settings.function_backoff)
            log.info("function %s of %s waits: %s", consumer.name, consumer.twin_name, cause.message)
            return
        if store_unreachable(cause):  # not the batch's failure: its records wait for the store, none is dropped
            consumer.not_before = time.monotonic() + max(1.0, self.settings.function_backoff)
            consumer.limit = None
            log.warning("function %s of %s waits for the store: %s", consumer.name, consumer.twin_name,
                        str(cause).splitlines()[0][:300])
            return
        place: str | None = None
        if isinstance(cause, WorkerError):  # the app's own exception, as the worker reported it
            place, cause = cause.place, _Remote(cause.remote)
        elif isinstance(cause, StateRefused):
            place = cause.place
        if isinstance(exc, _CallFailed) and exc.before:
            consumer.limit = exc.before  # first commit the calls that worked, then retry the failing one alone
            return
        size = exc.size if isinstance(exc, _CallFailed) else min(end, consumer.offset + _MAX_BATCH) - consumer.offset
        consumer.limit = size
        consumer.attempts += 1
        error = (str(cause) if isinstance(cause, _Remote | StateRefused) else
                 f"{cause.code}: {cause.message}" if isinstance(cause, TwinEngineError) else
                 "".join(traceback.format_exception_only(type(cause), cause)).strip())
        records = exc.records if isinstance(exc, _CallFailed) else []
        reason = (f"{error[:1600]}{f' (at {place})' if place else ''}; function {consumer.name}, "
                  f"{record_place(records, consumer.key_field) if records else f'offset {consumer.offset}'}")[:2000]
        # The same exception at the same line of app code twice is a bug in the code, not bad luck: waiting
        # and trying again only delays the dead letter (and everything behind it). A function that declares its
        # own retries is retried that often whatever fails (a service it calls that is down fails alike each time).
        signature = failure_signature(error, place)
        repeated = signature is not None and signature == consumer.signature and consumer.spec.retries is None
        consumer.signature = signature
        if consumer.attempts <= consumer.retries and not repeated:
            delay = self.settings.function_backoff * 2 ** (consumer.attempts - 1)
            consumer.not_before = time.monotonic() + delay
            log.warning("function %s of %s failed (attempt %d, retry in %.1fs): %s", consumer.name,
                        consumer.twin_name, consumer.attempts, delay, reason)
            return
        stop = consumer.offset + size
        log.error("function %s of %s gave up on offsets %d..%d: %s", consumer.name, consumer.twin_name,
                  consumer.offset, stop - 1, reason)
        consumer.failures += 1
        consumer.streak = consumer.offset if consumer.streak is None else consumer.streak
        most = self.settings.function_pause_after
        paused = (f"{consumer.failures} batches in a row failed; the last: {reason}"[:2000]
                  if most and consumer.failures >= most else None)
        with self.runtime.db.session() as session:
            session.add(DeadLetter(twin_id=consumer.twin_id, function=consumer.name, stream=consumer.spec.stream,
                                   first_offset=consumer.offset, last_offset=stop - 1, attempts=consumer.attempts,
                                   error=reason))
            self._checkpoint(session, consumer, stop, consumer.pending_calls)
            if paused is not None:
                row = session.get(StreamConsumer, (consumer.twin_id, consumer.name))
                assert row is not None  # written by the checkpoint just above
                row.paused_reason, row.paused_at, row.paused_from = paused, utcnow(), consumer.streak
        consumer.pending_calls, consumer.checkpointed = 0, time.monotonic()
        consumer.offset, consumer.attempts, consumer.limit, consumer.signature = stop, 0, None, None
        if paused is not None:
            consumer.paused = paused
            for key in consumer.keys:  # its records wait in the log; they hold back no producer meanwhile
                self.runtime.streams.release(key, consumer.ident)
            log.error("function %s of %s paused after %d failed batches in a row", consumer.name,
                      consumer.twin_name, consumer.failures)
        else:
            self.runtime.streams.commit(consumer.key, consumer.ident, stop)


class _Remote(Exception):
    """An exception raised in a worker, as its ``Type: message`` line."""


class StateRefused(ValueError):
    """Raised when a function's ``update_state`` breaks the app's state schema; ``place`` is the line of
    the app's code that called it, when the worker told it."""

    def __init__(self, message: str, place: str | None) -> None:
        super().__init__(message)
        self.place = place


def _pedigree(consumer: _Consumer, records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What a value a call wrote says of its records (``records_quality``); with a join, of their partners
    too, naming each stream whose records were not all good."""
    if consumer.joiner is None:
        return records_quality(records, function=consumer.name, stream=f"stream:{consumer.key}")
    inputs = {consumer.key: records} | {key: [r[name] for r in records if r.get(name)]
                                        for name, key in zip(consumer.spec.inputs[1:], consumer.keys[1:],
                                                             strict=True)}
    flags = {key: [str(r.get("_quality") or "good") for r in rs] for key, rs in inputs.items()}
    lacking = [key for key, names in flags.items() if any(name != "good" for name in names)]
    if not lacking:
        return None
    counts = {flag.value: 0 for flag in FLAGS}
    for names in flags.values():
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    return {"flag": worst(counts), "run": None, "inputs": [f"stream:{key}" for key in lacking],
            "function": consumer.name, "records": counts}


def app_line(place: str | None) -> str | None:
    """The worker's ``/path/to/file.py:line`` as the app's ``package/module.py:line`` (None outside the app)."""
    if not place:
        return None
    path, _, line = place.rpartition(":")
    return app_place(f'File "{path}", line {line}')


def _joiner(manifest: Manifest, spec: FunctionSpec) -> Joiner | None:
    return Joiner(manifest, spec.stream, spec.join) if spec.join is not None else None


def _incomplete(joined: Joined, base: int, most: int = 100) -> list[dict[str, Any]]:
    """One ``join.incomplete`` event for the records of a batch joined without some partner: their offsets
    and the streams they lacked (the first ``most``), and whether they were called or left out."""
    lacking = [(base + i, r[MISSING]) for i, r in enumerate(joined.records) if r.get(MISSING)]
    if not lacking:
        return []
    return [{"kind": "join.incomplete", "records": len(lacking), "left_out": len(joined.skipped),
             "missing": {str(offset): streams for offset, streams in lacking[:most]}}]


def take_effects(ctx: FunctionContext, result: CallEffects | Malformed) -> None:
    """Lay one call's effects, checked as its worker sent them (``read_effects``), into ``ctx``; a call whose
    effects were malformed fails here."""
    if isinstance(result, Malformed):
        raise ValueError(str(result))
    ctx.updates += result.updates
    ctx.events += result.events
    ctx.workflow_requests += result.workflows
    ctx.published += result.published  # checked against the target streams by ``check_published``
