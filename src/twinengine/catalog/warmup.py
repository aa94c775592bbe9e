"""The JSON Schema validators loaded after start: the engine checks app parameters, scenarios and process
inputs with ``jsonschema``, imported where it validates so that the API answers before it. Where the optional
format checkers of jsonschema are installed (``jsonschema[format-nongpl]``, which Jupyter and other tools pull
in), importing it builds their grammars: 0.1-0.9 s that the first twin created, the first manifest read or the
first graph run would otherwise pay. A served engine imports it once it answers (``twinengine.warmup``;
``/health``: ``"warming": ["validation"]``).
"""

from __future__ import annotations

from twinengine.warmup import Warmup

__all__ = ["SchemaWarmup"]


class SchemaWarmup(Warmup):
    """Imports jsonschema and checks one schema with each draft the engine uses."""

    name = "validation"

    def warm(self) -> str:
        from jsonschema import Draft7Validator, Draft202012Validator

        Draft202012Validator.check_schema({"type": "object"})
        Draft7Validator.check_schema({"type": "object"})
        return "jsonschema loaded"
