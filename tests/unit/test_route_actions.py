"""Every route of the built app declares the policy actions it enforces, or that it is public
(``api.route_actions``), and every declared action is one of ``auth.policy.RULES``: a new route without a
declaration fails here, naming it, so none is left out of the authorization matrix
(tests/integration/test_authorization_matrix.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts

from twinengine.api import create_app
from twinengine.api.description import auth_of
from twinengine.api.route_actions import ACTIONS_KEY, PUBLIC_KEY, Declaration, acts, declaration_of, declared
from twinengine.api.routing import api_router
from twinengine.auth.policy import RULES
from twinengine.config import Settings

PORTAL_PAGES = "twinengine.ui.routes"  # the portal's HTML shell and its assets: public pages, no API


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(Settings(data_dir=Path(tmp_path_factory.mktemp("engine"))))


def _routes(app: FastAPI) -> Iterator[tuple[str, Any, Declaration | None]]:
    """(methods and path, route context, declaration) of every route the app serves, but FastAPI's own
    documentation pages and the portal's."""
    for route in iter_route_contexts(app.routes):
        original = route.original_route
        if isinstance(original, APIRoute):
            if original.endpoint.__module__ == PORTAL_PAGES:
                continue
            yield f"{','.join(sorted(route.methods or ()))} {route.path_format}", route, declared(route.openapi_extra)
        elif isinstance(original, APIWebSocketRoute):
            yield f"WEBSOCKET {route.path_format}", route, declaration_of(original.endpoint)


def test_every_route_declares_its_actions_or_that_it_is_public(app: FastAPI) -> None:
    routes = list(_routes(app))
    assert len(routes) > 200  # the whole surface, not an empty walk
    missing = [name for name, _route, found in routes if found is None]
    assert not missing, f"routes with no @acts/@signed_in/@public (api.route_actions): {missing}"


def test_every_declared_action_is_in_the_policy_table(app: FastAPI) -> None:
    unknown = {name: [a for a in found.actions if a not in RULES]
               for name, _route, found in _routes(app) if found is not None}
    assert not {k: v for k, v in unknown.items() if v}


def test_a_declaration_agrees_with_the_token_the_route_verifies(app: FastAPI) -> None:
    """A public route verifies no token; a route with actions (or needing a token) verifies one, or reads
    one when sent (the STAC landing page, openEO collections)."""
    wrong = []
    for name, route, found in _routes(app):
        if found is None or name.startswith("WEBSOCKET"):
            continue
        auth = auth_of(route)
        if found.public and auth == "required":
            wrong.append(f"{name}: public, but verifies a token")
        if not found.public and auth == "none":
            wrong.append(f"{name}: declares {list(found.actions) or 'a token'}, but verifies none")
    assert not wrong, wrong


def test_declarations_show_in_the_openapi_description(app: FastAPI) -> None:
    document = app.openapi()
    assert document["paths"]["/api/v1/twins/{twin}"]["get"][ACTIONS_KEY] == ["twin.read"]
    assert document["paths"]["/api/v1/twins/{twin}/runs"]["post"][ACTIONS_KEY] == ["workflow.run", "twin.operate"]
    assert document["paths"]["/health"]["get"][PUBLIC_KEY] is True
    assert document["paths"]["/api/v1/me"]["get"][ACTIONS_KEY] == []


def test_a_route_without_a_declaration_is_found() -> None:
    router = api_router("/things", tag="things")

    @router.get("/{thing}", name="get")
    def get(thing: str) -> str:
        return thing

    @router.get("", name="list")
    @acts("twin.list")
    def list_things() -> list[str]:
        return []

    app = FastAPI()
    app.include_router(router)
    found = {name: declaration for name, _route, declaration in _routes(app)}
    assert found == {"GET /api/v1/things/{thing}": None, "GET /api/v1/things": Declaration(("twin.list",))}


def test_an_endpoint_declares_once_and_names_an_action() -> None:
    with pytest.raises(TypeError, match="at least one action"):
        acts()
    with pytest.raises(TypeError, match="twice"):
        acts("twin.read")(acts("twin.read")(lambda: None))
