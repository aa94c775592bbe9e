"""Checks shared by the access tests: CoverageJSON against the vendored OGC schema and covjson-pydantic."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from covjson_pydantic.coverage import Coverage, CoverageCollection

SCHEMA_DIR = Path(__file__).resolve().parent / "data" / "coveragejson"


@lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMA_DIR / "coveragejson.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def check_covjson(doc: dict[str, Any]) -> None:
    """Raise unless ``doc`` validates against the OGC CoverageJSON schema and parses with covjson-pydantic."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{list(e.path)}: {e.message[:200]}" for e in errors[:5])
    model = CoverageCollection if doc["type"] == "CoverageCollection" else Coverage
    model.model_validate_json(json.dumps(doc))
