"""At start the engine has FastAPI build every included router's routes, so that no user's first request
to a group of routes pays for it (``warm_routes``, on by default; the tests' engines turn it off)."""

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


def test_every_included_router_is_built_when_the_engine_starts(engine: Engine, settings: Settings) -> None:
    included, unbuilt = _unbuilt(engine)
    if settings.warm_routes:
        assert not unbuilt, f"{len(unbuilt)} of {len(included)} included routers not built at start"
    else:  # built as requests reach them
        assert len(unbuilt) == len(included)
        assert engine.http.get("/api/v1/me", headers=engine.headers(engine.admin_token)).status_code == 200
        assert 0 < len(included) - len(_unbuilt(engine)[1]) < len(included)
    assert engine.http.get("/health").status_code == 200
