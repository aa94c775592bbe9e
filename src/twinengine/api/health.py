"""Liveness, readiness and Prometheus metrics. ``/health`` (liveness: the engine answers and reaches its store,
with the status of every background loop) and ``/health/ready`` (readiness: also started and warm) are public;
``/metrics`` needs a provider or admin token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from twinengine._version import __version__
from twinengine.api.deps import PrincipalDep, RuntimeDep
from twinengine.api.probe import StoreProbe
from twinengine.api.route_actions import acts, public
from twinengine.api.routing import api_router
from twinengine.auth.policy import require
from twinengine.catalog.models import AppVersion
from twinengine.daemons.supervisor import LoopStatus, Supervisor
from twinengine.runtime import Runtime
from twinengine.twins.models import StateRevision, Twin
from twinengine.warmup import Warmup

__all__ = ["LoopsCollector", "StoreCollector", "health_answer", "readiness_answer", "router"]

router = api_router(tag="health", versioned=False)


@router.get("/health", name="health", summary="Is the engine up and its store reachable?",
            responses={503: {"description": "The store cannot be reached", "content": {"application/json": {}}}})
@public
async def health(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Answered on the event loop from the store's last check (at most about a second old; see
    :mod:`twinengine.api.probe`): a liveness probe must not queue behind the requests that fill the thread
    pool or the connection pool."""
    status, body = await health_answer(request.app.state, runtime)
    return JSONResponse(body, status_code=status)


async def health_answer(state: Any, runtime: Runtime) -> tuple[int, dict[str, Any]]:
    """The status code and body of ``/health`` (``state``: the app's, which keeps the probe)."""
    probe: StoreProbe | None = getattr(state, "store_probe", None)
    if probe is None:
        probe = state.store_probe = StoreProbe(lambda: _check_store(runtime))
    database = await probe.status()
    body: dict[str, Any] = {"status": "ok" if database == "ok" else "degraded", "version": __version__,
                            "database": database, "backend": runtime.db.backend}
    warming = [w.name for w in getattr(state, "warmups", ()) if w.warming]
    if warming:  # what start left to a background thread, not warm yet: answered, but slower the first time
        body["warming"] = warming
    election = runtime.loops.election
    if election is not None:  # one of several serving processes: does this one run the elected loops?
        body["primary"] = election.held
    body["loops"] = [_loop_line(s) for s in runtime.loops.status()]
    return (200 if database == "ok" else 503), body


@router.get("/health/ready", name="ready", summary="Is the engine ready: started, warm, its store reachable?",
            responses={503: {"description": "Not ready yet (or the store cannot be reached): what it waits for",
                             "content": {"application/json": {}}}})
@public
async def ready(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """The probe to send traffic by: 200 only once the engine is migrated, started and warm (every group of
    routes imported, every warm-up run), so that a first page answers as fast as later ones; 503 before,
    naming what it waits for. ``/health`` stays the liveness probe: it answers 200 while the engine warms."""
    status, body = await readiness_answer(request.app.state, runtime)
    return JSONResponse(body, status_code=status)


async def readiness_answer(state: Any, runtime: Runtime) -> tuple[int, dict[str, Any]]:
    """The status code and body of ``/health/ready`` (``state``: the app's)."""
    probe: StoreProbe | None = getattr(state, "store_probe", None)
    if probe is None:
        probe = state.store_probe = StoreProbe(lambda: _check_store(runtime))
    database = await probe.status()
    waiting = [] if database == "ok" else ["store"]
    loading = getattr(state, "route_loading", None)
    warmups: list[Warmup] = list(getattr(state, "warmups", ()))
    warming = [w.name for w in warmups if w.warming]
    if loading is not None and not loading.complete and "routes" not in warming:
        warming.insert(0, "routes")  # a group of routes that could not be imported
    sequence = getattr(state, "warming", None)
    if not warming and sequence is not None and not sequence.finished.is_set() and warmups:
        warming = [warmups[-1].name]  # the last one has run; the sequence ends on the event loop's next turn
    waiting += warming
    if not waiting:
        return 200, {"status": "ready", "version": __version__, "database": database}
    return 503, {"code": "EngineUnavailable", "message": f"the engine is not ready: waiting for {', '.join(waiting)}",
                 "status": "warming" if database == "ok" else "degraded", "version": __version__,
                 "database": database, "waiting_for": waiting}


@router.get("/metrics", name="metrics", summary="Prometheus metrics (text format)",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
@acts("metrics.read")
def metrics(request: Request, principal: PrincipalDep) -> Response:
    require(principal, "metrics.read")
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _loop_line(status: LoopStatus) -> dict[str, Any]:
    """A loop's status for everyone: its last error by type only (a message may name hosts or paths)."""
    line = status.to_dict()
    if status.last_error is not None:
        line["last_error"] = status.last_error.partition(":")[0]
    return line


def _check_store(runtime: Runtime) -> str:
    try:
        runtime.db.probe()
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


class StoreCollector(Collector):
    """Counts read from the store at scrape time: apps, twins, revisions."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("twin_store_rows", "Rows in the engine's store", labels=["kind"])
        try:
            with self.runtime.db.session(readonly=True) as session:
                for kind, model in (("app_versions", AppVersion), ("twins", Twin), ("revisions", StateRevision)):
                    family.add_metric([kind], float(session.scalar(select(func.count()).select_from(model)) or 0))
        except Exception:
            return
        yield family


class LoopsCollector(Collector):
    """The background loops (``daemons.supervisor``): whether each runs, its passes and failed passes."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["loop", "scope"]
        running = GaugeMetricFamily("twin_loop_running", "1 while the background loop runs here", labels=labels)
        passes = CounterMetricFamily("twin_loop_passes", "Passes of the background loop", labels=labels)
        errors = CounterMetricFamily("twin_loop_errors", "Passes of the background loop that failed",
                                     labels=labels)
        for status in self.supervisor.status():
            key = [status.name, str(status.scope)]
            running.add_metric(key, 1.0 if status.running else 0.0)
            passes.add_metric(key, float(status.passes))
            errors.add_metric(key, float(status.errors))
        yield from (running, passes, errors)
