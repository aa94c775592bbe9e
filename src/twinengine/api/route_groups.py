"""Every group of the API's routes: where it lives, which paths it serves, and its routes built once per process.

A group is one module of routers (``api/routes/*``). Importing all of them, with the services and models they
use, is about a third of what the engine imports to start; a request needs one or two. So ``GROUPS`` names
each group's module and the paths its routes lie under, without importing it: an engine built with
``lazy_routes`` (``twin serve``) answers its first request once the groups that request's path can reach are
imported (``api/route_loading.py``), and imports the others in the background. ``tests/unit/
test_route_groups.py`` checks that every route of a group lies under one of the paths the group declares.

FastAPI builds an included router's routes (their dependencies and answer models) for the app that included
it, when a request is first matched against it, and a request is matched against each group before its own.
An engine process usually builds one app; one that builds several (an embedded engine restarted in the same
process, each in-process engine of the tests) would pay 0.1-0.8 s for each. Included here once, the groups'
routes are built once per process, then found built by every app that takes them (``create_app``).
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from fastapi import APIRouter, Depends
from starlette.routing import BaseRoute

from twinengine.api.routing import operation_id
from twinengine.api.text import refuse_unstorable_text

__all__ = ["GROUPS", "RouteGroup", "api_routes", "build_included", "group_routes"]

ONE_SEGMENT = "{}"  # in a group's paths: any one segment of a path


@dataclass(frozen=True)
class RouteGroup:
    """One module's routers (each of ``attributes`` names a router, or a list of them) and the paths they
    serve: each path covers itself and everything below it; ``{}`` stands for any one segment."""

    module: str
    paths: tuple[str, ...]
    attributes: tuple[str, ...] = ("router",)

    @property
    def name(self) -> str:
        return self.module.rpartition(".")[2]

    @cached_property
    def _patterns(self) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(_segments(path)) for path in self.paths)

    def serves(self, path: str) -> bool:
        """Whether a route of this group may answer ``path`` (a request's path, without the root path)."""
        segments = _segments(path)
        return any(len(pattern) <= len(segments)
                   and all(p in (ONE_SEGMENT, s) for p, s in zip(pattern, segments, strict=False))
                   for pattern in self._patterns)

    def routers(self) -> list[APIRouter]:
        module = importlib.import_module(self.module)
        found = [getattr(module, attribute) for attribute in self.attributes]
        return [router for item in found for router in (item if isinstance(item, list | tuple) else [item])]


def _segments(path: str) -> list[str]:
    return [s for s in path.strip("/").split("/") if s]  # "/a//b/" as "/a/b" (openEO clients double slashes)


# In the order requests are matched against them.
GROUPS: tuple[RouteGroup, ...] = (
    RouteGroup("twinengine.api.health", ("/health", "/metrics")),
    RouteGroup("twinengine.api.routes.auth",
               ("/api/v1/audit", "/api/v1/identities", "/api/v1/me", "/api/v1/session", "/api/v1/tokens")),
    RouteGroup("twinengine.api.routes.catalog", ("/api/v1/apps",)),
    RouteGroup("twinengine.api.routes.twins", ("/api/v1/twins",)),
    RouteGroup("twinengine.api.routes.access", ("/edr",)),
    RouteGroup("twinengine.api.routes.crates",  # before workflows: its paths lie under /api/v1/runs
               ("/api/v1/runs/{}/crate", "/api/v1/runs/{}/diff", "/api/v1/runs/{}/rerun", "/api/v1/runs/rerun")),
    RouteGroup("twinengine.api.routes.workflows",
               ("/api/v1/hooks", "/api/v1/runs", "/api/v1/twins/{}/runs", "/api/v1/twins/{}/triggers")),
    RouteGroup("twinengine.api.routes.openeo", ("/.well-known/openeo", "/openeo/1.2"), ("routers",)),
    RouteGroup("twinengine.api.routes.processes", ("/ogcapi",)),  # OGC API - Processes
    RouteGroup("twinengine.api.routes.lake", ("/api/v1/lake",)),
    RouteGroup("twinengine.api.routes.stac", ("/stac",)),
    RouteGroup("twinengine.api.routes.streams",
               ("/api/v1/twins/{}/functions", "/api/v1/twins/{}/state/events", "/api/v1/twins/{}/streams")),
    RouteGroup("twinengine.api.routes.streams_buffers", ("/api/v1/twins/{}/buffers",)),
    RouteGroup("twinengine.api.routes.ml", ("/api/v1/twins/{}/models", "/api/v1/twins/{}/training-runs")),
    RouteGroup("twinengine.api.routes.twins_forecasts",
               ("/api/v1/twins/{}/forecasts", "/api/v1/twins/{}/verification")),
    RouteGroup("twinengine.api.routes.twins_batch", ("/api/v1/state",)),
    RouteGroup("twinengine.api.routes.ensembles",
               ("/api/v1/compare", "/api/v1/ensembles", "/api/v1/scenarios", "/api/v1/twins/{}/ensembles")),
    RouteGroup("twinengine.api.routes.twins_fleet", ("/api/v1/fleet", "/api/v1/twins/{}"), ("routers",)),
    RouteGroup("twinengine.api.routes.twins_relationships", ("/api/v1/twins/{}/links", "/api/v1/twins/{}/related")),
    RouteGroup("twinengine.api.routes.workflows_quality", ("/api/v1/runs/{}/quality",)),
    RouteGroup("twinengine.api.routes.ml_quality", ("/api/v1/twins/{}/models/{}/versions",)),
    RouteGroup("twinengine.api.routes.views", ("/api/v1/twins/{}/views",)),
    RouteGroup("twinengine.api.routes.assimilation",
               ("/api/v1/twins/{}/assimilation-history", "/api/v1/twins/{}/assimilation-schedule",
                "/api/v1/twins/{}/assimilations")),
    RouteGroup("twinengine.api.routes.assimilation_skill", ("/api/v1/twins/{}/verification/assimilation",)),
    RouteGroup("twinengine.api.routes.calibration", ("/api/v1/calibrations", "/api/v1/twins/{}/calibrations")),
    RouteGroup("twinengine.api.routes.subscriptions", ("/api/v1/subscriptions",)),
    # institutional sign-in: the providers, then the browser's redirects
    RouteGroup("twinengine.api.routes.signin", ("/api/v1/auth", "/auth/oidc"), ("api", "browser")),
    RouteGroup("twinengine.api.routes.compute", ("/api/v1/compute", "/api/v1/usage"), ("routers",)),
    RouteGroup("twinengine.api.routes.groups", ("/api/v1/groups",)),
    # the Dataspace Protocol (participants' messages, the data plane) and its management API
    RouteGroup("twinengine.api.routes.dataspace", ("/.well-known/dspace-version", "/.well-known/did.json", "/dsp")),
    RouteGroup("twinengine.api.routes.dataspace_manage", ("/api/v1/dataspace",)),
    RouteGroup("twinengine.api.routes.tokens",
               ("/.well-known/jwks.json", "/api/v1/me/tokens", "/api/v1/oauth", "/api/v1/signing-keys"), ("routers",)),
)

_built: dict[int, tuple[BaseRoute, ...]] = {}
_locks = [threading.Lock() for _ in GROUPS]


def group_routes(index: int) -> tuple[BaseRoute, ...]:
    """The included routes of ``GROUPS[index]``, imported and included once per process (on first use, by
    whichever thread asks first; another asking meanwhile waits for it). FastAPI builds them when a request
    is first matched against them, or ``build_included`` does."""
    with _locks[index]:
        if index not in _built:
            shared = APIRouter(dependencies=[Depends(refuse_unstorable_text)],
                               generate_unique_id_function=operation_id)
            for router in GROUPS[index].routers():
                shared.include_router(router)
            _built[index] = tuple(shared.routes)
        return _built[index]


def build_included(routes: list[Any]) -> None:
    """Build every included router's routes, nested ones too. FastAPI builds a group when a request is
    first matched against it (``group_routes`` includes them once per process, so once per process)."""
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if candidates is not None:
            route.effective_low_priority_routes()
            build_included(candidates())


def api_routes() -> tuple[BaseRoute, ...]:
    """Every group's included routes in order, for an app's ``router.routes``; every request's text is checked
    as the app's own routes' is (``refuse_unstorable_text``), and operation ids are made as the app makes them."""
    return tuple(route for index in range(len(GROUPS)) for route in group_routes(index))
