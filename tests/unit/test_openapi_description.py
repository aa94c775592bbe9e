"""The OpenAPI description states what each route answers: who may call it, its errors, its media types."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from twinengine.api import create_app
from twinengine.api.description import api_routes, auth_of
from twinengine.config import Settings

PUBLIC = {("get", "/health"), ("get", "/stac/conformance"), ("get", "/openeo/1.2/processes"),
          ("post", "/api/v1/session"), ("post", "/api/v1/hooks/{trigger_id}")}
OPTIONAL = {("get", "/stac/"), ("get", "/openeo/1.2/collections")}
ERROR_SCHEMAS = {"#/components/schemas/Error", "#/components/schemas/OpenEOError",
                 "#/components/schemas/EDRException", "#/components/schemas/OgcProcessesException",
                 "#/components/schemas/DataspaceError"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(Settings(data_dir=Path(tmp_path_factory.mktemp("engine"))))


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_every_route_that_verifies_a_token_says_so_and_documents_401(app: FastAPI, document: dict[str, Any]) -> None:
    seen = 0
    for route in api_routes(app.routes):
        for method in route.methods - {"HEAD"}:
            operation = document["paths"][route.path_format][method.lower()]
            auth = auth_of(route)
            where = f"{method} {route.path_format}"
            if auth == "none":
                assert "security" not in operation, where
                continue
            seen += 1
            assert {"401", "403"} <= set(operation["responses"]), where
            assert operation["security"], where
            assert ({} in operation["security"]) == (auth == "optional"), where
    assert seen > 100


def test_public_routes_need_no_token_and_optional_ones_take_one(document: dict[str, Any]) -> None:
    for method, path in PUBLIC:
        assert "security" not in document["paths"][path][method], path
    for method, path in OPTIONAL:
        assert document["paths"][path][method]["security"][0] == {}, path
    # a bearer token or the portal's session cookie
    assert document["paths"]["/api/v1/twins"]["get"]["security"] == [{"HTTPBearer": []}, {"SessionCookie": []}]
    assert document["paths"]["/openeo/1.2/credentials/basic"]["get"]["security"] == [{"HTTPBasic": []}]


def test_a_data_plane_that_checks_its_own_token_documents_its_refusals(document: dict[str, Any]) -> None:
    """The data space's data planes take the transfer's token, not the engine's: FastAPI sees public routes, yet
    they refuse a missing (401) or another transfer's token (403), and the description must say so."""
    planes = [(path, item["get"]) for path, item in document["paths"].items()
              if path.startswith(("/dsp/data/", "/dsp/edr/")) and "get" in item]
    assert len(planes) >= 5
    for path, operation in planes:
        assert {"400", "401", "403", "404"} <= set(operation["responses"]), path


def test_a_protocol_message_without_its_participant_token_is_refused_as_documented(
        app: FastAPI, document: dict[str, Any]) -> None:
    """Each Dataspace Protocol route verifies its sender's token itself (not the engine's): its 401 and its other
    refusals are documented in the spec's error object, which the answer then is."""
    protocol = [(method, path, operation) for method, path, operation in _operations(document)
                if path.startswith("/dsp/2025-1/")]
    assert len(protocol) >= 20
    for method, path, operation in protocol:
        assert {"400", "401", "404", "409"} <= set(operation["responses"]), f"{method} {path}"
        assert ("413" in operation["responses"]) == (method == "post"), f"{method} {path}"
    ref = document["paths"]["/dsp/2025-1/catalog/request"]["post"]["responses"]["401"]["content"][
        "application/json"]["schema"]["$ref"]
    schema = {**document["components"]["schemas"][ref.rsplit("/", 1)[1]],
              "components": document["components"]}
    with TestClient(app) as client:
        refused = client.post("/dsp/2025-1/catalog/request", json={"@type": "CatalogRequestMessage"})
        over_spec = client.post("/dsp/2025-1/catalog/request", content=b" " * (3 << 19),
                                headers={"content-type": "application/json"})
        too_large = client.post("/dsp/2025-1/catalog/request", content=b" " * (3 << 20),
                                headers={"content-type": "application/json"})
    assert refused.status_code == 401
    jsonschema.validate(refused.json(), schema)
    assert refused.json()["@type"] == "CatalogError"
    # over the engine's own limit (2 MiB), before the route: the engine's error, which the 413 also names
    big = document["paths"]["/dsp/2025-1/catalog/request"]["post"]["responses"]["413"]["content"][
        "application/json"]["schema"]
    assert over_spec.status_code == 413 and over_spec.json()["@type"] == "CatalogError"  # 1.5 MiB: the route's
    jsonschema.validate(over_spec.json(), {**big, "components": document["components"]})
    assert too_large.status_code == 413 and too_large.json()["code"] == "PayloadTooLarge"
    jsonschema.validate(too_large.json(), {**big, "components": document["components"]})


def test_every_documented_media_type_has_a_schema(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        bodies = [operation.get("requestBody", {}), *operation["responses"].values()]
        for body in bodies:
            for media_type, entry in body.get("content", {}).items():
                assert entry.get("schema"), f"{method} {path} {media_type}"
    archive = document["paths"]["/api/v1/apps"]["post"]["requestBody"]["content"]
    assert archive == {"application/gzip": {"schema": {"type": "string", "format": "binary"}}}


def test_errors_are_documented_in_the_format_each_surface_answers(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400 and path not in ("/health", "/health/ready"):  # 503 with the probe's own body
                schema = response["content"]["application/json"]["schema"]
                # a protocol message too large for the engine at all is refused before its route (its own error)
                ref = schema["$ref"] if "$ref" in schema else schema["anyOf"][0]["$ref"]
                assert ref in ERROR_SCHEMAS, f"{method} {path} {status}"
                assert "$ref" in schema or (path.startswith("/dsp/2025-1/") and status == "413"), (method, path)
                expected = ("OpenEOError" if path.startswith(("/openeo", "/.well-known/openeo"))
                            else "EDRException" if path.startswith("/edr")
                            else "OgcProcessesException" if path.startswith("/ogcapi")
                            else "DataspaceError" if path.startswith("/dsp/2025-1/") and status != "422"
                            else "Error")
                assert ref.endswith(expected), f"{method} {path} {status}"
    for name in ("HTTPValidationError", "ValidationError"):
        assert name not in document["components"]["schemas"]
    twin = document["paths"]["/api/v1/twins/{twin}"]
    assert {"400", "401", "403", "404", "422"} <= set(twin["get"]["responses"])
    assert "409" in twin["delete"]["responses"] and "409" not in twin["get"]["responses"]
    assert "413" in document["paths"]["/api/v1/twins"]["post"]["responses"]
    assert set(document["paths"]["/api/v1/me"]["get"]["responses"]) == {"200", "401", "403"}
    assert "404" in document["paths"]["/openeo/1.2/credentials/oidc"]["get"]["responses"]


def test_stac_answers_are_documented_with_their_media_types(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert list(paths["/stac/search"]["get"]["responses"]["200"]["content"]) == ["application/geo+json"]
    assert list(paths["/stac/queryables"]["get"]["responses"]["200"]["content"]) == ["application/schema+json"]


def test_a_refused_method_lists_every_method_of_the_path(app: FastAPI) -> None:
    client = TestClient(app)  # no lifespan: the router alone answers a 405
    response = client.options("/api/v1/session")
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"DELETE", "GET", "POST"}


# Integer parameters that may exceed a 32-bit column: each lands in a BIGINT column or is only compared to one.
BIG_INTEGERS = {"seq", "start", "offset", "replica_id", "fill", "after", "seed", "revision", "limit"}


def test_an_integer_path_or_query_parameter_fits_the_column_it_lands_in(document: dict[str, Any]) -> None:
    """A row id larger than an INTEGER column reached PostgreSQL and came back as a 500 ("integer out of range";
    SQLite answers 404): every integer parameter is bounded, by ``INT32_MAX`` unless its name is one of
    those kept in a BIGINT column."""
    from twinengine.types import INT32_MAX

    unbounded = []
    for method, path, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            schema = parameter.get("schema", {})
            types = [schema, *schema.get("anyOf", [])]
            integer = next((s for s in types if s.get("type") == "integer"), None)
            if integer is None:
                continue
            limit = INT32_MAX if parameter["name"] not in BIG_INTEGERS else 2**63 - 1
            if integer.get("maximum", 2**64) > limit:
                unbounded.append(f"{method.upper()} {path} {parameter['name']}: {integer.get('maximum')}")
    assert not unbounded, unbounded
