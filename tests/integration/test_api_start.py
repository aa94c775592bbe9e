"""At start the engine has FastAPI build every included router's routes, so that no user's first request
to a group of routes pays for it."""

from __future__ import annotations

from helpers import Engine


def test_every_included_router_is_built_when_the_engine_starts(engine: Engine) -> None:
    included = [route for route in engine.app.router.routes if type(route).__name__ == "_IncludedRouter"]
    assert included, "FastAPI no longer builds included routers lazily; the start request can go"
    unbuilt = [route for route in included if getattr(route, "_effective_candidates_version", None) is None]
    assert not unbuilt, f"{len(unbuilt)} of {len(included)} included routers not built at start"
    assert engine.http.get("/health").status_code == 200
