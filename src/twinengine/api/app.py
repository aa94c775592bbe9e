"""Build the engine's FastAPI application from settings (or a ready runtime)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry

from twinengine._version import __version__
from twinengine.access.warmup import EdrWarmup
from twinengine.api import health
from twinengine.api.description import install_description
from twinengine.api.errors import install_error_handlers
from twinengine.api.log_redaction import install_log_redaction
from twinengine.api.middleware import AuditMiddleware, BodyLimitMiddleware, MetricsMiddleware
from twinengine.api.route_groups import api_routes
from twinengine.api.route_warmup import RouteWarmup
from twinengine.api.routes import lake as lake_api
from twinengine.api.routes import twins_batch as twins_batch_api
from twinengine.api.routing import API_PREFIX, operation_id
from twinengine.api.text import refuse_unstorable_text
from twinengine.bootstrap import announce_admin_token
from twinengine.config import Settings
from twinengine.daemons.elected import register_elected_loops, train_when_elected
from twinengine.daemons.leadership import StoreLeadership
from twinengine.daemons.primary import PRIMARY_LOCK, PrimaryDuties
from twinengine.ml.warmup import RegistryWarmup
from twinengine.quality.warmup import ScoresWarmup
from twinengine.runtime import Runtime
from twinengine.streams.metrics import StreamsCollector
from twinengine.twins.current_state import CurrentStateReader
from twinengine.ui import install_ui
from twinengine.workflows.openeo.paths import CollapseSlashes

__all__ = ["create_app"]

DESCRIPTION = """
The REST API of **twinengine**, a digital twin engine for science.

DT developers publish applications to the catalogue; DT users create twins from them, report and
desire state, travel through its history and fork what-if scenarios. Every call except `/health`,
`/openapi.json` and `/docs` needs `Authorization: Bearer <token>`.
"""


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """The whole HTTP surface. The store is migrated and the first admin created when the app starts."""
    install_log_redaction()  # the server's log never shows a token a URL carries
    owns_runtime = runtime is None
    runtime = runtime or Runtime.from_settings(settings or Settings())

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
        routes: RouteWarmup | None = None
        if runtime.settings.warm_routes:  # built and opened in the background, once the engine answers
            routes = RouteWarmup(_app.router).start()
            # the EDR listing, every route, the scores library and the unit registry
            _app.state.warmups = [EdrWarmup(runtime.access).start(), routes, ScoresWarmup().start()]
            registry = RegistryWarmup.wanted(runtime.data_dir, runtime.settings.mlflow_uri)
            if registry is not None:  # MLflow, for the first listing of a twin's models
                _app.state.warmups.append(registry.start())
        yield
        if routes is not None:
            await routes.stop()
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

    install_error_handlers(app)
    app.router.routes.extend(api_routes())  # built once per process (api/route_groups.py)
    install_ui(app)
    install_description(app)

    settings = runtime.settings
    # Outermost last: metrics see everything, the audit sees writes refused for their size too.
    app.add_middleware(BodyLimitMiddleware, default=settings.max_request_bytes,
                       overrides={("POST", f"{API_PREFIX}/apps"): settings.max_app_archive_bytes,
                                  ("POST", lake_api.UPLOAD_PATH): settings.lake_max_upload_bytes,
                                  ("POST", twins_batch_api.BATCH_PATH): settings.state_batch_max_bytes},
                       patterns=[("POST", rf"^{API_PREFIX}/twins/[^/]+/streams/[^/]+/records$",
                                  settings.stream_max_request_bytes)])
    app.add_middleware(AuditMiddleware, runtime=runtime)
    app.add_middleware(MetricsMiddleware, registry=registry)
    app.add_middleware(CollapseSlashes)  # openEO clients produce /openeo/1.2//jobs/{id}
    return app
