"""An engine built with ``lazy_routes`` (``twin serve``'s) imports each group of routes when a request first
needs it, and the others in the background: a request whose group is not in yet waits for it and is answered,
never refused or sent to another route; requests that need other groups are answered meanwhile;
``/openapi.json`` and the routes that serve the description to a standard's client (``/stac/api``,
``/edr/api``, ``/ogcapi/api``) wait for every group; ``/health/ready`` says 503 until all are in. Once
they are, the app's routes are those of an app built with every group."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from streams_fixtures import eventually
from twinengine.api import create_app, route_loading
from twinengine.api.route_groups import GROUPS, api_routes
from twinengine.auth.principal import SYSTEM, Role
from twinengine.auth.service import issue_token
from twinengine.config import Settings
from twinengine.runtime import Runtime


def test_a_request_waits_for_its_group_and_is_answered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held = threading.Event()
    importing = route_loading.group_routes

    def held_twins(index: int) -> object:  # the real import, held back for one group until the test lets go
        if GROUPS[index].name == "twins":
            assert held.wait(120)
        return importing(index)

    monkeypatch.setattr(route_loading, "group_routes", held_twins)
    runtime = Runtime.from_settings(Settings(data_dir=tmp_path / "data"))
    app = create_app(runtime=runtime, lazy_routes=True)
    try:
        with TestClient(app) as http, ThreadPoolExecutor(5) as pool:
            with runtime.db.session() as session:
                token = issue_token(session, runtime.issuer, principal=SYSTEM, name="admin", role=Role.ADMIN,
                                    ttl=timedelta(hours=1)).token
            auth = {"Authorization": f"Bearer {token}"}
            twins = pool.submit(http.get, "/api/v1/twins", headers=auth)
            described = pool.submit(http.get, "/openapi.json")
            # Served by routes of other groups, in worker threads: before, they described part of the API and
            # cached it for every caller after (a STAC client's service-desc lacked the twins' paths).
            by_standards = [pool.submit(http.get, path, headers=auth)
                            for path in ("/stac/api", "/edr/api", "/ogcapi/api")]
            me = http.get("/api/v1/me", headers=auth)  # another group: answered while the twins group is held
            assert me.status_code == 200 and me.json()["name"] == "admin"
            assert http.get("/health").status_code == 200  # alive
            ready = http.get("/health/ready")
            assert ready.status_code == 503 and "routes" in ready.json()["waiting_for"]
            assert not twins.done() and not described.done()  # waiting for the group, not refused nor sent on
            assert not any(answer.done() for answer in by_standards)
            held.set()
            listed = twins.result(timeout=120)
            assert listed.status_code == 200 and listed.json()["items"] == []
            paths = described.result(timeout=120).json()["paths"]
            assert "/api/v1/twins" in paths and "/edr/collections" in paths  # every group described
            stac_desc, edr_desc, processes_desc = (answer.result(timeout=120) for answer in by_standards)
            assert stac_desc.status_code == edr_desc.status_code == processes_desc.status_code == 200
            assert "/api/v1/twins" in stac_desc.json()["paths"] and "/api/v1/twins" in edr_desc.json()["paths"]
            assert "/ogcapi/processes/{process_id}/execution" in processes_desc.json()["paths"]

            def ready_now() -> bool:
                return http.get("/health/ready").status_code == 200

            eventually(ready_now, timeout=120)  # the warm-ups have run too
            assert app.state.route_loading.complete
            groups = {id(route) for route in api_routes()}
            served = [route for route in app.router.routes if id(route) in groups]
            assert served == list(api_routes())  # the groups' routes, in the groups' order, as built eagerly
    finally:
        runtime.close()
