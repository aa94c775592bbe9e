"""Once the engine answers, it has FastAPI build every included router's routes in the background, so that
users' first requests to a group of routes rarely pay for it (``warm_routes``, on by default; the tests'
engines turn it off); ``/health`` says ``"warming": ["routes"]`` until they are built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import Engine, engine_on
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
    included, _ = _unbuilt(engine)  # built as requests reach them (or by an earlier app of this process)
    assert engine.http.get("/api/v1/me", headers=engine.headers(engine.admin_token)).status_code == 200
    assert included[0] not in _unbuilt(engine)[1]  # matched against first
    assert engine.http.get("/health").status_code == 200


def test_a_second_app_of_the_process_finds_the_routes_built(engine: Engine, settings: Settings,
                                                              tmp_path: Path) -> None:
    """The groups of routes are included once per process (``api/route_groups.py``): an app built after
    another takes the same groups, already built, and answers through them as the first does."""
    me = engine.http.get("/api/v1/me", headers=engine.headers(engine.admin_token))
    assert me.status_code == 200
    first, _ = _unbuilt(engine)
    built = [route for route in first if route not in _unbuilt(engine)[1]]
    assert built
    with engine_on(Settings(data_dir=tmp_path / "second", warm_routes=False)) as second:
        again, unbuilt = _unbuilt(second)
        assert again == first and all(a is b for a, b in zip(again, first, strict=True))  # the same groups
        assert not set(map(id, built)) & set(map(id, unbuilt))  # found built
        answer = second.http.get("/api/v1/me", headers=second.headers(second.admin_token))
        assert answer.status_code == 200 and answer.json().keys() == me.json().keys()
        refused = second.http.get("/api/v1/twins", params={"app": "a\x00b"},
                                  headers=second.headers(second.admin_token))
        assert refused.status_code == 422 and refused.json()["details"][0]["loc"] == "query.app"  # app-wide check


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
