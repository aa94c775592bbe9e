"""Routers answer "no match" for paths outside their prefix without trying their routes, and route as before
inside it (FastAPI tries each included router's routes in turn)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Match

from twinengine.api.routing import api_router


def _app() -> tuple[FastAPI, list[str]]:
    tried: list[str] = []
    twins = api_router("/twins", tag="twins")
    catalog = api_router("/apps", tag="apps")

    @twins.get("/{twin}/state", name="state")
    def state(twin: str) -> dict[str, str]:
        return {"twin": twin}

    @catalog.get("/{name}", name="app")
    def app_(name: str) -> dict[str, str]:
        return {"app": name}

    for router in (catalog, twins):
        for route in router.routes:
            original = route.matches

            def counting(scope, original=original, path=getattr(route, "path", "")):  # type: ignore[no-untyped-def]
                tried.append(path)
                return original(scope)

            route.matches = counting  # type: ignore[method-assign]
    app = FastAPI()
    app.include_router(catalog)
    app.include_router(twins)
    return app, tried


def test_a_path_outside_the_prefix_tries_none_of_the_routers_routes() -> None:
    app, tried = _app()
    with TestClient(app) as client:
        assert client.get("/api/v1/twins/reach-1/state").json() == {"twin": "reach-1"}
        assert "/api/v1/apps/{name}" not in tried
        assert "/api/v1/twins/{twin}/state" in tried
        tried.clear()
        assert client.get("/api/v1/apps/river-reach").json() == {"app": "river-reach"}
        assert "/api/v1/twins/{twin}/state" not in tried
        assert client.get("/api/v1/nothing").status_code == 404


def test_a_path_inside_the_prefix_is_matched_by_the_routes() -> None:
    router = api_router("/twins", tag="twins")

    @router.get("/{twin}", name="one")
    def one(twin: str) -> dict[str, str]:
        return {"twin": twin}

    scope = {"type": "http", "path": "/api/v1/apps/x", "method": "GET", "root_path": ""}
    assert router.matches(scope)[0] is Match.NONE
