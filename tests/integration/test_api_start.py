"""Once the engine answers, it has FastAPI build every included router's routes in the background, so that
users' first requests to a group of routes rarely pay for it (``warm_routes``, on by default; the tests'
engines turn it off); ``/health`` says ``"warming": ["routes"]`` until they are built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import Engine
from twinengine.config import Settings


@pytest.fixture(params=[True, False], ids=["warm", "lazy"])
def settings(tmp_path: Path, database_url: str | None, request: pytest.FixtureRequest) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, warm_routes=request.param)


def _unbuilt(engine: Engine) -> tuple[list[Any], list[Any]]:
    included = [route for route in engine.app.router.routes if type(route).__name__ == "_IncludedRouter"]
    assert included, "FastAPI no longer builds included routers lazily; the start request can go"
    return included, [route for route in included if getattr(route, "_effective_candidates_version", None) is None]


def _warmup(engine: Engine, name: str) -> Any:
    return next(w for w in getattr(engine.app.state, "warmups", ()) if w.name == name)


def test_every_included_router_is_built_once_the_engine_starts(engine: Engine, settings: Settings) -> None:
    if settings.warm_routes:
        assert _warmup(engine, "routes").wait(120)
        included, unbuilt = _unbuilt(engine)
        assert not unbuilt, f"{len(unbuilt)} of {len(included)} included routers not built after the warm-up"
        assert "routes" not in engine.http.get("/health").json().get("warming", [])
        return
    included, unbuilt = _unbuilt(engine)
    assert len(unbuilt) == len(included)  # built as requests reach them
    assert engine.http.get("/api/v1/me", headers=engine.headers(engine.admin_token)).status_code == 200
    assert 0 < len(included) - len(_unbuilt(engine)[1]) < len(included)
    assert engine.http.get("/health").status_code == 200


def test_health_names_the_routes_while_they_are_built(engine: Engine, settings: Settings) -> None:
    """The engine answers before its routes are built; ``/health`` says so until they are."""
    if not settings.warm_routes:
        assert not getattr(engine.app.state, "warmups", [])
        return
    routes = _warmup(engine, "routes")
    assert routes.wait(120)
    routes.done.clear()  # as if it were still building
    assert "routes" in engine.http.get("/health").json()["warming"]
    routes.done.set()
    assert "routes" not in engine.http.get("/health").json().get("warming", [])
