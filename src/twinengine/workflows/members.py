"""Many runs of one graph that differ only in their parameters (an ensemble's members), executed together.

The graph is parsed and checked once. Nodes whose result cannot differ between members (no varying
parameter reaches them, deterministic, not an output) are evaluated once and their results computed once
through the executor, then handed to every member: loading and reducing the forcing data is shared. Each
member is still a run of its own (node statuses, logs, assets, provenance). A member's state writes
(``update_twin_state``) are not written: they are resolved and handed back, since the ensemble writes its
statistics instead of N competing values; nor are its forecasts recorded (``save_forecast``): they are handed
back too, and the ensemble records them as one forecast with every member.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import xarray as xr
from sqlalchemy import update

from twinengine.auth.principal import Principal
from twinengine.compute.metering import start_meter
from twinengine.compute.site_executors import endpoints_near, executor_for
from twinengine.errors import TwinEngineError
from twinengine.store.base import utcnow
from twinengine.workflows import formats
from twinengine.workflows.context import RunContext, running
from twinengine.workflows.evaluate import Canceled, Evaluator
from twinengine.workflows.forecast_processes import forecast_body
from twinengine.workflows.graph import Graph
from twinengine.workflows.member_faults import MemberFaults
from twinengine.workflows.models import WorkflowRun
from twinengine.workflows.processes import fingerprint
from twinengine.workflows.registry import ProcessRegistry
from twinengine.workflows.runner import _finish_value, _Hooks, _retry_policy, _store_end
from twinengine.workflows.schemas import RunStatus

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["Member", "MemberOutcome", "MemberSet", "parameter_names", "shared_nodes"]

log = logging.getLogger("twinengine.workflows")

OUTPUTS = frozenset({"save_result", "update_twin_state"})  # one per member, never shared
STATE_WRITER = "update_twin_state"
FORECASTER = "save_forecast"
# A member records no forecast of its own: verification would score N single members as N forecasts.
HELD_BACK = frozenset({STATE_WRITER, FORECASTER})


@dataclass
class Member:
    run_id: str
    parameters: dict[str, Any]
    twin_id: str | None


@dataclass
class MemberOutcome:
    run_id: str
    status: str
    value: Any = None
    state: dict[str, Any] = field(default_factory=dict)  # what the member's update_twin_state would write
    forecasts: dict[str, dict[str, Any]] = field(default_factory=dict)  # node → what its save_forecast would record
    error: dict[str, Any] | None = None


def parameter_names(value: Any) -> set[str]:
    """Every ``from_parameter`` name in an argument value, callbacks included (conservative)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if len(item) == 1 and "from_parameter" in item:
                found.add(str(item["from_parameter"]))
            else:
                stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def shared_nodes(graph: Graph, registry: ProcessRegistry, varying: set[str], app_version: str | None) -> set[str]:
    """Top-level nodes whose result is the same for every member."""
    shared: set[str] = set()
    for node_id in graph.order:
        node = graph.nodes[node_id]
        entry = registry.get(node.process_id, node.namespace, app_version=app_version, node=node_id)
        if (entry.cacheable and (node.namespace is not None or entry.id not in OUTPUTS)
                and not parameter_names(node.arguments) & varying and graph.depends[node_id] <= shared):
            shared.add(node_id)
    return shared


def _ancestors(graph: Graph, nodes: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(nodes)
    while stack:
        for dep in graph.depends[stack.pop()]:
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


class _MemberHooks(_Hooks):
    """A member stops when it or its ensemble was canceled."""

    ensemble_id: str = ""

    def check_canceled(self) -> None:
        if self.ensemble_id in self.engine.cancel_requests:
            raise Canceled()
        super().check_canceled()


@dataclass
class MemberSet:
    """The members of one ensemble and what they share."""

    engine: WorkflowEngine
    ensemble_id: str
    graph: Graph
    registry: ProcessRegistry
    principal: Principal
    options: dict[str, Any]
    app_version: str | None
    members: list[Member]
    shared: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)  # datasets the shared nodes read
    faults: MemberFaults = field(init=False)

    def __post_init__(self) -> None:
        self.faults = MemberFaults(self.engine, self.ensemble_id, self.principal, self.options)

    def _context(self, run_id: str, twin: str | None, site: str) -> RunContext:
        e = self.engine
        return RunContext(run_id=run_id, principal=self.principal, collections=e.collections, results=e.results,
                          executor=executor_for(e, {**self.options, "site": site}), db=e.db, twin=twin,
                          udf_timeout=e.udf_timeout, udf_memory_bytes=e.udf_memory_bytes, services=e.services,
                          near=endpoints_near(e, site))

    def varying(self) -> set[str]:
        first = self.members[0].parameters
        keys = set().union(*(m.parameters for m in self.members))
        same = {k for k in keys if all(_canon(m.parameters.get(k)) == _canon(first.get(k)) for m in self.members)}
        return (keys - same) | {"run_id"}

    def evaluate_shared(self, ctx: RunContext) -> list[str]:
        """Evaluate (under the ensemble's own context) the shared nodes members need, computing the ones
        they read directly in one pass through the executor. Returns their ids."""
        shared = shared_nodes(self.graph, self.registry, self.varying(), self.app_version)
        own = [n for n in self.graph.nodes if n not in shared]
        needed = shared & _ancestors(self.graph, own) if own else shared
        frontier = [n for n in needed if any(n in self.graph.depends[o] for o in own)]
        evaluator = Evaluator(self.registry, dict(self.members[0].parameters), retry=_retry_policy(self.options),
                              app_version=self.app_version)
        evaluator.keys = dict.fromkeys(self.graph.nodes)  # nothing is looked up in the cache
        with running(ctx):
            for node_id in self.graph.order:
                if node_id in needed:
                    evaluator._run_node(self.graph, self.graph.nodes[node_id])
            lazy = [n for n in frontier if isinstance(evaluator.results[n], xr.DataArray | xr.Dataset)]
            if lazy:
                computed = ctx.compute(*[evaluator.results[n] for n in lazy])
                evaluator.results.update(zip(lazy, computed, strict=True))
        self.shared = {n: evaluator.results[n] for n in needed}
        self.inputs = list(ctx.inputs)
        return sorted(needed)

    def run(self, *, parallel: int, done: Callable[[MemberOutcome], None]) -> list[MemberOutcome]:
        """Every member, ``parallel`` at a time (their Dask work goes to the engine's executor)."""
        now = utcnow()
        ids = [m.run_id for m in self.members]
        with self.engine.db.session() as session:
            session.execute(update(WorkflowRun).where(WorkflowRun.id.in_(ids)).values(
                status=RunStatus.RUNNING, worker=self.engine.worker_id, started_at=now, heartbeat_at=now,
                updated_at=now, queued_at=now))
        self.engine.executing.update(ids)
        outcomes: dict[str, MemberOutcome] = {}
        try:
            with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="ensemble-member") as pool:
                futures = [pool.submit(self._one, m) for m in self.members]
                for future in as_completed(futures):
                    outcome = future.result()
                    outcomes[outcome.run_id] = outcome
                    done(outcome)
        finally:
            self.engine.executing.difference_update(ids)
        return [outcomes[m.run_id] for m in self.members]

    def _one(self, member: Member) -> MemberOutcome:
        """A member on the ensemble's site; rerun on another site when that one is lost under it (its
        failed attempt is dropped: only the last attempt's end, assets and usage are written)."""
        site, first = self.faults.current(), True
        carried: list[Any] = []  # the logs of attempts on a lost site: they tell the member's story
        while True:
            since = time.monotonic()
            outcome, ctx, hooks = self._attempt(member, site, first)
            moved = self.faults.moved(member.run_id, site, since, hooks.log) \
                if outcome.status == RunStatus.ERROR else None
            if moved is None:
                break
            carried.extend(hooks.logs)
            self.faults.lost_attempt(member.run_id, hooks.meter, site)  # what the lost site consumed
            site, first = moved, False
            if ctx.assets:
                self.engine.results.delete(member.run_id)
        hooks.logs[:0] = carried
        _store_end(self.engine, member.run_id, outcome.status, outcome.error, outcome.value, ctx, self.graph,
                   self.app_version, self.registry, hooks)
        return outcome

    def _attempt(self, member: Member, site: str, first: bool) -> tuple[MemberOutcome, RunContext, _MemberHooks]:
        meter = start_meter()  # the member's own usage record (compute.usage), its site noted by _context
        ctx = self._context(member.run_id, member.twin_id, site)
        ctx.inputs.extend(self.inputs)
        hooks = _MemberHooks(self.engine, member.run_id, self.graph, ctx, meter=meter)
        hooks.ensemble_id = self.ensemble_id
        ctx.log, ctx.compute_progress = hooks.log, self.faults.watching(site, hooks.compute_progress)
        evaluator = Evaluator(self.registry, member.parameters, hooks=hooks, retry=_retry_policy(self.options),
                              app_version=self.app_version, fingerprint=fingerprint)
        evaluator.keys = dict.fromkeys(self.graph.nodes)
        evaluator.results.update(self.shared)
        held = [n for n, node in self.graph.nodes.items() if node.process_id in HELD_BACK and node.namespace is None]
        writers = [n for n in held if self.graph.nodes[n].process_id == STATE_WRITER]
        evaluator.results.update(dict.fromkeys(held))
        outcome = MemberOutcome(run_id=member.run_id, status=RunStatus.FINISHED)
        hooks.log("info", f"member of ensemble {self.ensemble_id}; shared nodes: {', '.join(sorted(self.shared))}")
        if first and site != self.faults.first:
            self.faults.starting(member.run_id, site, hooks.log)
        try:
            with running(ctx):
                result = evaluator.run(self.graph)
                outcome.value = _finish_value(ctx, result)
                for node_id in held:
                    node = self.graph.nodes[node_id]
                    entry = self.registry.get(node.process_id, None, app_version=self.app_version)
                    args = evaluator._arguments(self.graph, node, member.parameters, node.arguments, entry)
                    if node_id in writers:
                        outcome.state.update({k: _plain(ctx, v) for k, v in (args.get("reported") or {}).items()})
                    else:
                        outcome.forecasts[node_id] = forecast_body(**args)
        except Canceled:
            outcome.status = RunStatus.CANCELED
            hooks.log("info", "canceled")
        except TwinEngineError as exc:
            outcome.status, outcome.error = RunStatus.ERROR, {"code": exc.code, "message": exc.message,
                                                              "details": exc.details}
            hooks.log("error", f"{exc.code}: {exc.message}")
        except Exception as exc:  # a bug in a process or the engine: record it, keep the others going
            log.exception("member %s failed", member.run_id)
            outcome.status = RunStatus.ERROR
            outcome.error = {"code": "Internal", "message": f"{type(exc).__name__}: {exc}"}
            hooks.log("error", f"internal error: {type(exc).__name__}: {exc}")
        for node_id in self.graph.nodes:
            if node_id in held or (outcome.status == RunStatus.FINISHED and node_id in evaluator.skipped):
                hooks.pending.setdefault(node_id, {}).update(status="skipped")
        return outcome, ctx, hooks


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _plain(ctx: RunContext, value: Any) -> Any:
    if isinstance(value, xr.DataArray) and value.size == 1:
        (value,) = ctx.compute(value)
        return formats.to_json_value(value.values.item())
    return formats.to_json_value(value)
