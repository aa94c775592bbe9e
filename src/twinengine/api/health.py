"""Liveness and Prometheus metrics. ``/health`` is public; ``/metrics`` needs a provider or admin token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from twinengine._version import __version__
from twinengine.api.deps import PrincipalDep, RuntimeDep
from twinengine.api.routing import api_router
from twinengine.auth.policy import require
from twinengine.catalog.models import AppVersion
from twinengine.runtime import Runtime
from twinengine.store.engine import PROBE_CONNECTIONS
from twinengine.twins.models import StateRevision, Twin

__all__ = ["StoreCollector", "router"]

router = api_router(tag="health", versioned=False)
PROBE_THREADS = PROBE_CONNECTIONS


@router.get("/health", name="health", summary="Is the engine up and its store reachable?",
            responses={503: {"description": "The store cannot be reached", "content": {"application/json": {}}}})
async def health(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """The store check runs on threads (``PROBE_THREADS``) and database connections of the probe's own: a
    liveness probe must not queue behind the requests that fill the shared thread pool or connection pool."""
    state = request.app.state
    if getattr(state, "probe_threads", None) is None:
        state.probe_threads = anyio.CapacityLimiter(PROBE_THREADS)
    database = await anyio.to_thread.run_sync(_check_store, runtime, limiter=state.probe_threads)
    body: dict[str, Any] = {"status": "ok" if database == "ok" else "degraded", "version": __version__,
                            "database": database, "backend": runtime.db.backend}
    return JSONResponse(body, status_code=200 if database == "ok" else 503)


@router.get("/metrics", name="metrics", summary="Prometheus metrics (text format)",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
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
