"""What the OGC executable test suite for OGC API - Processes (ets-ogcapi-processes10) checks responses with,
offline: its OpenAPI description (operation ``responses``, like its openapi4j ``OperationValidator``) and the
Part 1 JSON schemas it fetches from schemas.opengis.net, both kept under ``tests/data/ogcapi-processes``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from helpers import REPO

__all__ = ["SCHEMAS_URL", "openapi_errors", "schema_errors"]

DATA = REPO / "tests" / "data" / "ogcapi-processes"
SCHEMAS_URL = "https://schemas.opengis.net/ogcapi/processes/part1/1.0/openapi/schemas/"
_ETS = "urn:ets-ogcapi-processes10"


@functools.cache
def _registry() -> Registry:
    registry: Registry = Registry()
    for path in sorted((DATA / "schemas").glob("*.yaml")):
        contents = yaml.safe_load(path.read_text())
        registry = registry.with_resource(SCHEMAS_URL + path.name,
                                          Resource.from_contents(contents, default_specification=DRAFT202012))
    api = yaml.safe_load((DATA / "ets" / "api-processes10.yaml").read_text())
    return registry.with_resource(_ETS, Resource.from_contents(api, default_specification=DRAFT202012))


def schema_errors(name: str, document: Any) -> list[str]:
    """Why ``document`` is not valid against ``SCHEMAS_URL + name`` (empty: it is), as the suite's
    ``validateResponseAgainstSchema``."""
    validator = Draft202012Validator({"$ref": SCHEMAS_URL + name}, registry=_registry())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@functools.cache
def _api() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((DATA / "ets" / "api-processes10.yaml").read_text())
    return found


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def openapi_errors(operation_id: str, status: int, content_type: str, body: Any) -> list[str]:
    """Why a response does not match operation ``operation_id`` of the suite's OpenAPI description: its status
    must be declared (or a ``default``), its media type among the declared ones, its body valid."""
    for path, item in _api()["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                responses = operation["responses"]
                key = str(status) if str(status) in responses else "default" if "default" in responses else None
                if key is None:
                    return [f"status {status} is not a response of {operation_id}"]
                content = responses[key].get("content")
                if not content:
                    return []
                media = content_type.split(";")[0].strip()
                chosen = media if media in content else next((m for m in ("/*", "*/*") if m in content), None)
                if chosen is None:
                    return [f"{media} is not a media type of {operation_id} {key} ({', '.join(content)})"]
                pointer = _pointer("paths", path, method, "responses", key, "content", chosen, "schema")
                validator = Draft202012Validator({"$ref": f"{_ETS}#/{pointer}"}, registry=_registry())
                # The suite's own ISSUE_54 ("More than 1 schema is valid"): the execute answer's oneOf lists a
                # string three times and results beside any object, so a plain value matches several branches;
                # the suite tolerates it, and so does its mirror (only that reason is let through).
                return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)
                        if not (e.validator == "oneOf" and "is valid under each of" in e.message)]
    raise KeyError(operation_id)


def data_path(name: str) -> Path:
    return DATA / name
