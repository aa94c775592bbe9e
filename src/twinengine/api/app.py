"""Build the engine's FastAPI application from settings (or a ready runtime)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry

from twinengine import telemetry
from twinengine._version import __version__
from twinengine.api import health
from twinengine.api.description import install_description
from twinengine.api.edge_limits import BodyLimits
from twinengine.api.errors import install_error_handlers
from twinengine.api.log_redaction import install_log_redaction
from twinengine.api.middleware import AuditMiddleware, BodyLimitMiddleware, MetricsMiddleware
from twinengine.api.observability import BuildInfoCollector, RequestTelemetryMiddleware
from twinengine.api.route_groups import api_routes
from twinengine.api.route_loading import RouteGate, RouteLoading
from twinengine.api.route_warmup import RouteWarmup
from twinengine.api.routing import operation_id
from twinengine.api.text import refuse_unstorable_text
from twinengine.bootstrap import announce_admin_token
from twinengine.config import Settings
from twinengine.daemons.elected import register_elected_loops, train_when_elected
from twinengine.daemons.leadership import StoreLeadership
from twinengine.daemons.primary import PRIMARY_LOCK, PrimaryDuties
from twinengine.runtime import Runtime
from twinengine.streams.metrics import StreamsCollector
from twinengine.twins.current_state import CurrentStateReader
from twinengine.ui import install_ui
from twinengine.warmup import RequestsInFlight, Warmup, WarmupSequence
from twinengine.workflows.openeo.paths import CollapseSlashes

__all__ = ["create_app"]

DESCRIPTION = """
The REST API of **twinengine**, a digital twin engine for science.

DT developers publish applications to the catalogue; DT users create twins from them, report and
desire state, travel through its history and fork what-if scenarios. Every call except `/health`,
`/openapi.json` and `/docs` needs `Authorization: Bearer <token>`.
"""


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None,
               lazy_routes: bool = False) -> FastAPI:
    """The whole HTTP surface. The store is migrated and the first admin created when the app starts.

    ``lazy_routes``: import each group of routes when a request first needs it, and all of them in the
    background once the app answers (``api.route_loading``; what ``twin serve`` builds), rather than now."""
    install_log_redaction()  # the server's log never shows a token a URL carries
    owns_runtime = runtime is None
    runtime = runtime or Runtime.from_settings(settings or Settings())
    telemetry.configure_logging(runtime.settings.log_format, runtime.settings.log_level)
    telemetry.configure_tracing(runtime.settings.otlp_endpoint)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = runtime.settings.request_threads
        # One of several processes serving this data dir, or one of several engines (hosts) sharing the store:
        # the supervisor runs the elected loops only while this process wins the election.
        loops = runtime.loops
        if runtime.settings.engines_share_store:
            loops.elect(lambda start: StoreLeadership(runtime.settings.db_url, start))
        elif runtime.settings.serve_processes > 1:
            loops.elect(lambda start: PrimaryDuties(runtime.data_dir / PRIMARY_LOCK, start))
        if loops.election is not None:
            train_when_elected(loops, runtime)
        token = await anyio.to_thread.run_sync(runtime.start)  # off the event loop: it may take a while
        if token:
            announce_admin_token(token, runtime.data_dir)
        _app.state.stream_daemons, registered = await anyio.to_thread.run_sync(register_elected_loops, loops,
                                                                               runtime)
        reader = _app.state.current_state = CurrentStateReader(runtime.db)  # GET /twins/{twin}/state
        warming: WarmupSequence | None = None
        warmups = _warmups(runtime, _app.router, loading)
        if warmups:  # imported, built and opened in the background, in turn, once the engine answers
            _app.state.warmups = warmups
            warming = _app.state.warming = WarmupSequence(warmups, requests=requests).start()
        yield
        if warming is not None:
            await warming.stop()
        await reader.close()
        if owns_runtime:
            await anyio.to_thread.run_sync(runtime.close)  # every loop first (daemons/supervisor.py)
        else:  # the runtime outlives this app: its elected loops do not
            await anyio.to_thread.run_sync(lambda: loops.remove(registered))

    app = FastAPI(
        title="twinengine",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        generate_unique_id_function=operation_id,
        dependencies=[Depends(refuse_unstorable_text)],
    )
    app.state.runtime = runtime
    app.state.metrics = registry = CollectorRegistry()
    registry.register(health.StoreCollector(runtime))
    registry.register(StreamsCollector(lambda: runtime._streams))
    registry.register(health.LoopsCollector(runtime.loops))
    registry.register(BuildInfoCollector())

    install_error_handlers(app)
    loading = app.state.route_loading = RouteLoading(app.router.routes, everything=[app.openapi_url or ""]) \
        if lazy_routes else None
    requests = RequestsInFlight() if lazy_routes else None  # served: the warm-ups give way to requests
    # included once per process (api/route_groups.py); or stand-ins, each replaced once its group is imported
    app.router.routes.extend(loading.stand_ins() if loading is not None else api_routes())
    install_ui(app)
    install_description(app)

    settings = runtime.settings
    # Outermost last: metrics see everything, the audit sees writes refused for their size too; a request
    # waits for its routes just before the router.
    if loading is not None:
        app.add_middleware(RouteGate, loading=loading, requests=requests)
    app.add_middleware(BodyLimitMiddleware, limits=BodyLimits.from_settings(settings), runtime=runtime)
    app.add_middleware(AuditMiddleware, runtime=runtime)
    app.add_middleware(MetricsMiddleware, registry=registry)
    app.add_middleware(CollapseSlashes)  # openEO clients produce /openeo/1.2//jobs/{id}
    app.add_middleware(RequestTelemetryMiddleware)  # a request's id, span and access line: around everything
    return app


def _warmups(runtime: Runtime, router: object, loading: RouteLoading | None) -> list[Warmup]:
    """What a served engine warms once it answers, in this order: the API's routes (imported first where they
    are imported lazily), the JSON Schema validators, the EDR listing, the verification scores library and the
    unit registry, MLflow's registry where a model was ever registered. Routes are imported even with
    ``warm_routes`` off where the app imports them lazily: nothing else would import the groups no request
    asked for."""
    warmups: list[Warmup] = []
    if runtime.settings.warm_routes or loading is not None:
        warmups.append(RouteWarmup(router, loading))  # type: ignore[arg-type]
    if not runtime.settings.warm_routes:
        return warmups
    from twinengine.access.warmup import EdrWarmup
    from twinengine.catalog.warmup import SchemaWarmup
    from twinengine.ml.warmup import RegistryWarmup
    from twinengine.quality.warmup import ScoresWarmup

    warmups += [SchemaWarmup(), EdrWarmup(lambda: runtime.access), ScoresWarmup()]
    registry = RegistryWarmup.wanted(runtime.data_dir, runtime.settings.mlflow_uri)
    if registry is not None:  # MLflow, for the first listing of a twin's models
        warmups.append(registry)
    return warmups
