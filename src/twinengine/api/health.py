"""Liveness and Prometheus metrics. ``/health`` is public; ``/metrics`` needs a provider or admin token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from twinengine._version import __version__
from twinengine.api.deps import PrincipalDep, RuntimeDep
from twinengine.api.probe import StoreProbe
from twinengine.api.route_actions import acts, public
from twinengine.api.routing import api_router
from twinengine.auth.policy import require
from twinengine.catalog.models import AppVersion
from twinengine.runtime import Runtime
from twinengine.twins.models import StateRevision, Twin

__all__ = ["StoreCollector", "health_answer", "router"]

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
    duties = getattr(state, "primary_duties", None)
    if duties is not None:  # one of several serving processes: does this one run the singleton loops?
        body["primary"] = duties.held
    return (200 if database == "ok" else 503), body


@router.get("/metrics", name="metrics", summary="Prometheus metrics (text format)",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
@acts("metrics.read")
def metrics(request: Request, principal: PrincipalDep) -> Response:
    require(principal, "metrics.read")
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


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
