"""Executing one run: claim it, evaluate its graph with persisted node statuses, keep the outputs and the
provenance, end as finished, error or canceled. Node updates are buffered and flushed together."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, or_, select, update

from twinengine.auth.groups import groups_of
from twinengine.auth.principal import Principal, Role
from twinengine.catalog.models import AppVersion
from twinengine.compute.hooks import record_execution
from twinengine.compute.metering import Meter, start_meter
from twinengine.compute.site_executors import endpoints_near, executor_for
from twinengine.errors import TwinEngineError
from twinengine.store.base import upsert, utcnow
from twinengine.twins import standing
from twinengine.workflows import formats
from twinengine.workflows.context import RunContext, running
from twinengine.workflows.evaluate import Canceled, Evaluator, RetryPolicy
from twinengine.workflows.graph import Graph, Node, parse_graph
from twinengine.workflows.models import CacheEntry, RunLog, RunNode, WorkflowRun
from twinengine.workflows.processes import check_reads, fingerprint
from twinengine.workflows.provenance import run_lineage
from twinengine.workflows.registry import ProcessRegistry
from twinengine.workflows.result_size import check_room, fits_in_row, json_size, write_json
from twinengine.workflows.results import Asset, describe_results
from twinengine.workflows.run_endings import stopped_error
from twinengine.workflows.run_faults import move_run, watching
from twinengine.workflows.schemas import RunStatus
from twinengine.workflows.udp import user_registry

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["SYNC_KIND", "bounded_error", "claim", "execute", "forget_results", "run_principal", "stopped_error"]

log = logging.getLogger("twinengine.workflows")

SYNC_KIND = "sync"  # runs whose caller waits for their result (openEO /result): bounded by sync_max_result_bytes

FLUSH_SECONDS = 0.5
MAX_CACHED_JSON = 1 << 20
MAX_LOG_CHARS = 4000  # of one log line; an error's message is kept to as much (its text may come from user code)
MAX_DETAILS_BYTES = 16 << 10  # of an error's details, as JSON; larger details are not kept


def claim(engine: WorkflowEngine, run_id: str, *, held_by: str | None = None) -> bool:
    """Move a queued run to running for this worker; False if someone else took it (or it was canceled). A
    run ``held_by`` that worker (``sync.hold``: a run its caller waits for) is taken over as well."""
    now = utcnow()
    taken = WorkflowRun.status == RunStatus.QUEUED
    if held_by is not None:
        taken = or_(taken, and_(WorkflowRun.status == RunStatus.RUNNING, WorkflowRun.worker == held_by))
    with engine.db.session() as session:
        result = session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id, taken)
                                 .values(status=RunStatus.RUNNING, worker=engine.worker_id, started_at=now,
                                         heartbeat_at=now, updated_at=now))
        return bool(getattr(result, "rowcount", 0) == 1)


class _Cache:
    """Node results in ``workflow_cache``; a hit on ``save_result`` links the kept assets into this run."""

    def __init__(self, engine: WorkflowEngine, ctx: RunContext, *, read: bool) -> None:
        self.engine, self.ctx, self.read = engine, ctx, read
        self.pending: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> Any:
        if not self.read:
            raise KeyError(key)
        with self.engine.db.session(readonly=True) as session:
            entry = session.get(CacheEntry, key)
            if entry is None:
                raise KeyError(key)
            value, source = entry.value, entry.run_id
        if isinstance(value, dict) and value.get("saved") is True:
            room = self.ctx.result_room()
            if room is not None and sum(int(a.get("size", 0)) for a in value.get("assets", [])) > room:
                raise KeyError(key)  # more than this run may keep: computed again, and refused while saved
            assets = []
            for data in value.get("assets", []):
                asset = Asset.from_dict(data)
                try:
                    self.engine.results.link(source, self.ctx.run_id, asset)
                except FileNotFoundError:
                    raise KeyError(key) from None
                assets.append(asset)
            self.ctx.assets.extend(assets)
            self.ctx.log("info", f"cache hit: reused {', '.join(a.name for a in assets)} of run {source}")
            return {**value, "run": self.ctx.run_id}
        return value

    def put(self, key: str, value: Any) -> None:
        """Kept in memory and written with the next batch of node updates (``write``)."""
        import xarray as xr
        if isinstance(value, xr.DataArray | xr.Dataset) or not _json_sized(value):
            return
        self.pending[key] = {"key": key, "process_id": self.ctx.node or "", "value": value,
                             "run_id": self.ctx.run_id, "created_at": utcnow()}

    def write(self, session: Any) -> None:
        if not self.pending:
            return
        rows, self.pending = list(self.pending.values()), {}
        # An upsert: runs of the same graph at once write the same keys (a delete then an insert would
        # collide on PostgreSQL, where neither sees the other's uncommitted row).
        statement = upsert(session.get_bind().dialect.name, CacheEntry)
        session.execute(statement.on_conflict_do_update(index_elements=[CacheEntry.key], set_={
            c: statement.excluded[c] for c in ("process_id", "value", "run_id", "created_at")}), rows)


def _json_sized(value: Any) -> bool:
    """Whether ``value`` is JSON of at most ``MAX_CACHED_JSON`` bytes (measured until it passes that)."""
    try:
        return json_size(value, stop_after=MAX_CACHED_JSON) <= MAX_CACHED_JSON
    except (TypeError, ValueError):
        return False


class _Hooks:
    """Node statuses, attempts, timings and logs, written in batches; cancellation and progress."""

    def __init__(self, engine: WorkflowEngine, run_id: str, graph: Graph, ctx: RunContext, *,
                 meter: Meter | None = None) -> None:
        self.engine, self.run_id, self.ctx = engine, run_id, ctx
        self.cache: _Cache | None = None
        self.total = max(1, len(graph.nodes))
        self.done = 0
        self.compute_share = 0.0
        self.pending: dict[str, dict[str, Any]] = {}
        self.logs: list[RunLog] = []
        # The first updates wait FLUSH_SECONDS too: a short run writes its nodes once, with its end. A node
        # that runs longer shows up through the heartbeat, which flushes runs in progress (``flush_due``).
        self.last_flush = time.monotonic()
        self.lock = threading.Lock()
        self.flushing = threading.Lock()  # one writer at a time, so updates commit in the order they came
        self.meter = meter or start_meter()  # what this execution uses, recorded with its end (compute.usage)

    def log(self, level: str, message: str, node: str | None = None) -> None:
        with self.lock:
            self.logs.append(RunLog(run_id=self.run_id, level=level, node_id=node or self.ctx.node,
                                    message=clip(message, MAX_LOG_CHARS), at=utcnow()))

    def _set(self, node: Node, **values: Any) -> None:
        with self.lock:
            self.pending.setdefault(node.id, {}).update(values)
        self.flush()

    def started(self, node: Node, attempt: int) -> None:
        self.ctx.node = node.id
        self.compute_share = 0.0
        self._set(node, status="running", attempts=attempt, started_at=utcnow(), error=None)

    def finished(self, node: Node, seconds: float, *, cached: bool) -> None:
        self.done += 1
        self._set(node, status="cached" if cached else "finished", seconds=round(seconds, 6),
                  finished_at=utcnow())

    def failed(self, node: Node, error: BaseException, attempt: int, *, final: bool) -> None:
        text = getattr(error, "message", None) or str(error) or type(error).__name__
        self.log("error" if final else "warning",
                 f"{node.process_id} failed (attempt {attempt}): {type(error).__name__}: {text}", node.id)
        self._set(node, status="error" if final else "retrying", error=str(text)[:2000], finished_at=utcnow())

    def check_canceled(self) -> None:
        if self.run_id in self.engine.cancel_requests:
            raise Canceled()

    def compute_progress(self, done: int, total: int) -> None:
        self.check_canceled()
        self.compute_share = done / total if total else 0.0
        self.flush()

    def progress(self) -> float:
        return round(min(99.0, 100.0 * (self.done + self.compute_share) / self.total), 2)

    def flush(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self.last_flush < FLUSH_SECONDS:
            return
        with self.flushing, self.engine.db.session() as session:
            self.write(session)

    def write(self, session: Any) -> None:
        """Write what is pending in ``session`` (the caller holds ``flushing`` and commits)."""
        with self.lock:
            pending, self.pending = self.pending, {}
            logs, self.logs = self.logs, []
            self.last_flush = time.monotonic()
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for node_id, values in pending.items():  # one executemany per set of changed columns
            groups.setdefault(tuple(sorted(values)), []).append({"run_id": self.run_id, "node_id": node_id,
                                                                 **values})
        for rows in groups.values():
            session.execute(update(RunNode), rows)
        if self.cache is not None:
            self.cache.write(session)
        session.add_all(logs)
        session.execute(update(WorkflowRun).where(WorkflowRun.id == self.run_id).values(
            progress=self.progress(), heartbeat_at=utcnow(), updated_at=utcnow()))


def _retry_policy(options: dict[str, Any]) -> Any:
    manifest = options.get("manifest_retry") or {}
    default = RetryPolicy.from_dict(options.get("retry") or manifest.get("default"))
    per_node = {**(manifest.get("nodes") or {}), **(options.get("node_retry") or {})}
    policies = {k: RetryPolicy.from_dict(v) for k, v in per_node.items()}
    return lambda node_id: policies.get(node_id, default)


def _processes_used(registry: ProcessRegistry, graph: Graph, app_version: str | None) -> list[dict[str, Any]]:
    seen: dict[tuple[str | None, str], dict[str, Any]] = {}
    stack = [graph]
    while stack:
        g = stack.pop()
        for node in g.nodes.values():
            entry = registry.get(node.process_id, node.namespace, app_version=app_version)
            seen[(entry.namespace, entry.id)] = {"id": entry.id, "namespace": entry.namespace,
                                                 "version": entry.version}
        stack.extend(g.callbacks.values())
    return sorted(seen.values(), key=lambda p: (p["namespace"] or "", p["id"]))


def run_principal(session: Session, run: WorkflowRun) -> Principal:
    """Who a run acts as: its owner, with the role it was started with and the owner's groups now (a
    group-owned twin's runs act through them); issued inside the engine, never by a token."""
    return Principal(name=run.owner, role=Role(dict(run.options).get("role", "user")), issuer="internal",
                     groups=groups_of(session, run.owner))


def execute(engine: WorkflowEngine, run_id: str) -> str:
    """Run a claimed run to its end; returns the final status. Never raises for a failing graph."""
    with engine.db.session(readonly=True) as session:
        run = session.get(WorkflowRun, run_id)
        if run is None:
            return "missing"
        process, parameters, options = run.process, dict(run.parameters), dict(run.options)
        owner, twin_id, app, kind = run.owner, run.twin_id, run.app, run.kind
        special = engine.kinds.get(run.kind)
        registry = user_registry(session, engine.registry, owner)
        principal = run_principal(session, run)
        lost = standing.lost(session, identity=owner, twin_id=twin_id, role=str(options.get("role", "user")))
    if lost is not None:  # its identity lost the twin while it waited: it never starts
        _end_unstarted(engine, run_id, standing.lost_error(lost))
        return str(RunStatus.ERROR)
    if special is not None:  # runs of other kinds (ensembles) are executed by the capability that made them
        return special(engine, run_id)
    hooks_meter = start_meter()  # what this execution uses (compute.usage), from before its site's executor
    ctx = RunContext(run_id=run_id, principal=principal, collections=engine.collections, results=engine.results,
                     executor=executor_for(engine, options), db=engine.db, twin=twin_id, udf_timeout=engine.udf_timeout,
                     udf_memory_bytes=engine.udf_memory_bytes, services=engine.services,
                     max_array_elements=engine.max_array_elements, near=endpoints_near(engine, options.get("site")),
                     max_result_bytes=engine.sync_max_result_bytes if kind == SYNC_KIND else None)
    graph = parse_graph(process)
    hooks = _Hooks(engine, run_id, graph, ctx, meter=hooks_meter)
    ctx.log, ctx.compute_progress = hooks.log, watching(engine, str(options.get("site") or ""), hooks.compute_progress)
    app_version = app.partition("@")[2] if app else None
    hooks.cache = _Cache(engine, ctx, read=not options.get("no_cache", False))
    evaluator = Evaluator(registry, parameters, hooks=hooks, retry=_retry_policy(options), cache=hooks.cache,
                          app_version=app_version, fingerprint=fingerprint,
                          reads=check_reads)
    engine.interrupts[run_id] = ctx.interrupt
    engine.executing.add(run_id)
    engine.in_progress[run_id] = hooks.flush
    status, error, value = RunStatus.FINISHED, None, None
    hooks.log("info", f"started on {engine.worker_id} with executor {ctx.executor.name} (site "
                      f"{hooks.meter.site or 'local'})")
    for node in graph.nodes.values():  # openEO recommends logging which namespace a bare process id chose
        if node.namespace is None and node.process_id in registry.user:
            hooks.log("info", f"{node.process_id}: the user-defined process (namespace user)", node.id)
    try:
        if (stage := engine.services.get("staging")) is not None:  # inputs near its site (compute.staging)
            stage(engine, run_id, principal=principal, options=options, process=process, log=hooks.log,
                  check=hooks.check_canceled, parameter_sets=[parameters])
        with running(ctx):
            evaluator.compute_keys(graph)
            while True:
                try:
                    if getattr(ctx.executor, "remote", False):  # a site of kind engine: the whole run goes there
                        result = _run_remotely(engine, run_id, ctx, hooks, process=process, parameters=parameters,
                                               options=options)
                    else:
                        result = evaluator.run(graph)
                    break
                except Canceled:
                    raise
                except Exception:  # its site lost under it: placed again, staged and rerun (workflows.run_faults)
                    if not move_run(engine, run_id, principal=principal, options=options, process=process,
                                    app=app, parameters=parameters, ctx=ctx, attempt=hooks):
                        raise
                    ctx.compute_progress = watching(engine, str(options["site"]), hooks.compute_progress)
                    evaluator = Evaluator(registry, parameters, hooks=hooks, retry=_retry_policy(options),
                                          cache=hooks.cache, app_version=app_version, fingerprint=fingerprint,
                                          reads=check_reads)
                    evaluator.compute_keys(graph)
            value = _finish_value(ctx, result)
    except Canceled:
        overdue = engine.overdue.pop(run_id, None)
        if overdue is not None:  # past its time budget (``sync.run_now``), or its identity lost the twin
            status, error = RunStatus.ERROR, overdue
            hooks.log("error", overdue["message"])
        elif engine.stopping.is_set() and not _cancel_requested(engine, run_id):
            status, error = RunStatus.ERROR, stopped_error(engine)
            hooks.log("error", error["message"])
        else:
            status = RunStatus.CANCELED
            hooks.log("info", "canceled")
    except TwinEngineError as exc:
        status, error = RunStatus.ERROR, {"code": exc.code, "message": exc.message, "details": exc.details}
        hooks.log("error", f"{exc.code}: {exc.message}")
    except MemoryError:  # past the memory its process may have (``sync_memory_bytes`` for a synchronous run)
        status, error = RunStatus.ERROR, {"code": "ProcessingMemoryLimit", "message": (
            "the graph needed more memory than " + (f"its process may have ({engine.memory_limit})"
                                                    if engine.memory_limit else "there is") + "; reduce its extent")}
        hooks.log("error", error["message"])
    except Exception as exc:  # a bug in a process or the engine: record it, keep the worker alive
        log.exception("run %s failed", run_id)
        status, error = RunStatus.ERROR, {"code": "Internal", "message": f"{type(exc).__name__}: {exc}"}
        hooks.log("error", f"internal error: {type(exc).__name__}: {exc}")
    finally:
        engine.in_progress.pop(run_id, None)
        engine.executing.discard(run_id)
        engine.cancel_requests.discard(run_id)
        engine.interrupts.pop(run_id, None)
    if status != RunStatus.FINISHED and kind == SYNC_KIND:  # refused or failed: its caller gets no result
        forget_results(engine, run_id, ctx, hooks.cache)
        value = None
    if status == RunStatus.FINISHED:
        elsewhere = getattr(ctx.executor, "remote", False)  # evaluated by another engine: its nodes all ran there
        skipped = set(graph.nodes) - {n for n in graph.nodes if n in evaluator.results}
        for node_id in skipped:
            hooks.pending.setdefault(node_id, {}).update(status="finished" if elsewhere else "skipped")
    try:
        _store_end(engine, run_id, status, error, value, ctx, graph, app_version, registry, hooks)
        if status == RunStatus.FINISHED:
            describe_results(ctx)
    finally:
        ctx.detach()
    return str(status)


def _run_remotely(engine: WorkflowEngine, run_id: str, ctx: RunContext, hooks: _Hooks, *, process: dict[str, Any],
                  parameters: dict[str, Any], options: dict[str, Any]) -> Any:
    """The run on the engine of its site (``workflows.remote_runs``): its usage charged to this execution, the
    other run's reference kept in its options."""
    from twinengine.workflows.remote_runs import RemoteEngine, run_remotely

    site, remote = str(options.get("site")), ctx.executor
    assert isinstance(remote, RemoteEngine)  # the runner asks for ``remote`` executors only

    def charge(core: float, gpu: float, source: str) -> None:
        hooks.meter.charge(core, source)
        hooks.meter.charge_gpu(gpu)

    def note(reference: dict[str, Any]) -> None:
        options["remote"] = reference
        with engine.db.session() as session:
            row = session.get(WorkflowRun, run_id)
            if row is not None:
                row.options = {**(row.options or {}), "remote": reference}

    return run_remotely(remote, ctx, site=site, process=process, parameters=parameters, options=options,
                        log_line=lambda level, message: hooks.log(level, message),
                        progress=ctx.compute_progress, check=hooks.check_canceled, charge=charge, note=note)


def _end_unstarted(engine: WorkflowEngine, run_id: str, error: dict[str, Any]) -> None:
    now = utcnow()
    with engine.db.session() as session:
        session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id).values(
            status=RunStatus.ERROR, error=error, finished_at=now, updated_at=now))
        session.add(RunLog(run_id=run_id, level="error", message=error["message"]))


def _cancel_requested(engine: WorkflowEngine, run_id: str) -> bool:
    with engine.db.session(readonly=True) as session:
        return bool(session.scalar(select(WorkflowRun.cancel_requested).where(WorkflowRun.id == run_id)))


def _finish_value(ctx: RunContext, result: Any) -> Any:
    """The run's value: JSON results are kept as they are, in ``result.json`` (a small cube's values, or a
    value beside what the graph saved, only in the run's record when they fit it); a cube nobody saved is saved
    as netCDF. A synchronous run's result is written against its budget (``RunContext.result_room``): past it
    the run is refused."""
    import xarray as xr
    if isinstance(result, dict) and result.get("saved") is True:
        import json

        small = [a for a in ctx.assets if a.format == "JSON" and a.size <= MAX_CACHED_JSON]
        return json.loads(ctx.results.path(ctx.run_id, small[0].name).read_text()) if small else None
    if isinstance(result, xr.DataArray | xr.Dataset):
        size = result.size if isinstance(result, xr.DataArray) else sum(v.size for v in result.data_vars.values())
        if size > 10_000:
            from twinengine.workflows.processes import save_result

            save_result(result, "netCDF")
            return None
        (computed,) = ctx.compute(result)
        value = formats.to_json_value(computed)
        if fits_in_row(value):
            check_room(value, room=ctx.result_room(), budget=ctx.max_result_bytes)
            return value
    else:
        value = formats.to_json_value(result)
        if ctx.assets and fits_in_row(value):  # beside what the graph saved, in the run's record only
            check_room(value, room=ctx.result_room(), budget=ctx.max_result_bytes)
            return value
    path = ctx.results.scratch(ctx.run_id) / "value.json"
    write_json(value, path, limit=ctx.result_room(), budget=ctx.max_result_bytes)
    ctx.assets.append(ctx.results.keep(ctx.run_id, path, name=ctx.asset_name("json"), media_type="application/json",
                                       fmt="JSON"))
    return value


def forget_results(engine: WorkflowEngine, run_id: str, ctx: RunContext | None = None,
                   cache: _Cache | None = None) -> None:
    """Remove what a run that answers nobody kept: its files (partial ones included), its assets and the node
    values it cached, so refused work takes no room (the run's record and logs say why it ended)."""
    engine.results.delete(run_id)
    if ctx is not None:
        ctx.assets.clear()
    if cache is not None:
        cache.pending.clear()
    with engine.db.session() as session:
        session.execute(delete(CacheEntry).where(CacheEntry.run_id == run_id))


def _store_end(engine: WorkflowEngine, run_id: str, status: str, error: dict[str, Any] | None, value: Any,
               ctx: RunContext, graph: Graph, app_version: str | None, registry: ProcessRegistry,
               hooks: _Hooks) -> None:
    """The last node updates and the run's end in one transaction: one commit, not two. The processes it used
    are looked up first (the registry reads the catalogue and may start the app's workers): no write waits."""
    try:
        processes = _processes_used(registry, graph, app_version)
    except TwinEngineError:
        processes = []
    with hooks.flushing, engine.db.session() as session:
        hooks.write(session)
        session.flush()
        record_run_end(session, run_id, status, error, value, ctx, processes=processes)
        record_execution(session, session.get(WorkflowRun, run_id), hooks.meter, status=status)


def record_run_end(session: Session, run_id: str, status: str, error: dict[str, Any] | None, value: Any,
                   ctx: RunContext, *, processes: list[dict[str, Any]], informants: list[str] | None = None) -> None:
    """A run's end (status, error, assets, value, lineage) in the caller's transaction, so whatever else
    ends with the run (a graph's last node updates) commits with it. ``informants``: runs whose results this
    one used (an ensemble's members)."""
    now = utcnow()
    run = session.get(WorkflowRun, run_id)
    if run is None:
        return
    run.status, run.error, run.finished_at, run.updated_at = status, bounded_error(error), now, now
    run.progress = 100.0 if status == RunStatus.FINISHED else run.progress
    run.assets = [a.to_dict() for a in ctx.assets]
    run.value = value if fits_in_row(value) else None  # a larger value is read from its result.json
    app_sha = None
    if run.app:
        name, _, version = run.app.partition("@")
        app_sha = session.scalar(select(AppVersion.archive_sha256).where(AppVersion.name == name,
                                                                         AppVersion.version == version))
    run.lineage = run_lineage(processes=processes, inputs=ctx.inputs, state_writes=ctx.state_writes,
                              app_sha256=app_sha, informants=informants, models=ctx.models)


def clip(text: str, most: int) -> str:
    """``text`` cut to ``most`` characters, saying so."""
    return text if len(text) <= most else text[:most - 1] + "…"


def bounded_error(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run's error as kept: its message cut to ``MAX_LOG_CHARS``, its details dropped above
    ``MAX_DETAILS_BYTES`` (both may carry text from user code)."""
    if error is None:
        return None
    kept = dict(error)
    if isinstance(kept.get("message"), str):
        kept["message"] = clip(kept["message"], MAX_LOG_CHARS)
    if kept.get("details") is not None:
        try:
            small = json_size(kept["details"], stop_after=MAX_DETAILS_BYTES) <= MAX_DETAILS_BYTES
        except (TypeError, ValueError):
            small = False
        if not small:
            kept["details"] = []
    return kept
