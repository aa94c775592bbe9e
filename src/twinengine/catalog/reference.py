"""``docs/manifest.md``, written from the manifest's own JSON Schema (what ``twin app schema`` prints) so the
reference cannot drift from the model that validates ``twinapp.yaml``.

``python -m twinengine.catalog.reference > docs/manifest.md`` (``make docs-manifest``) writes it; a unit test
fails when the committed page differs from what this module renders.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from twinengine.catalog.manifest import Manifest

__all__ = ["manifest_schema", "render"]

HEADER = """# The manifest: `twinapp.yaml`

Every field of a DT application's manifest, written from the model that validates it
(`twinengine.catalog.manifest.Manifest`) by `make docs-manifest`; a test fails when this page and the code
disagree. `twin app schema` prints the same model as a JSON Schema, for editors. What the sections mean and how
they work together is in [apps.md](apps.md#the-manifest).

In a path, `<name>` stands for a key the app chooses (a stream, a property, a workflow) and `[]` for an item of
a list. A field that is not required may be left out: it then takes its default (`none` when it has none).
Durations are ISO 8601 (`PT10S`) or seconds.
"""


class _FactoryDefaults(GenerateJsonSchema):
    """The manifest's JSON Schema with the defaults of ``default_factory`` fields filled in, so the reference
    can say what an omitted list, map or section becomes."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            schema = {**schema, "default": factory()}  # type: ignore[call-arg]
            schema.pop("default_factory", None)
        return super().default_schema(schema)


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of ``twinapp.yaml`` with every default spelled out."""
    return Manifest.model_json_schema(schema_generator=_FactoryDefaults)


def _def_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _bounds(s: dict[str, Any], low: str, high: str, what: str) -> str:
    lo, hi = s.get(low), s.get(high)
    if hi is None or hi == 1:
        what = what.removesuffix("s").removesuffix("ie") + ("y" if what.endswith("ies") else "")
    if lo is not None and hi is not None:
        return f" ({lo} to {hi} {what})" if lo != hi else f" ({lo} {what})"
    if lo is not None:
        return f" (at least {lo} {what})"
    if hi is not None:
        return f" (at most {hi} {what})"
    return ""


def _number_bounds(s: dict[str, Any]) -> str:
    parts = [f"{sign} {s[key]}" for key, sign in (("exclusiveMinimum", ">"), ("minimum", "≥"),
                                                  ("exclusiveMaximum", "<"), ("maximum", "≤")) if key in s]
    return f" ({', '.join(parts)})" if parts else ""


def _values(values: list[Any]) -> str:
    return "one of " + ", ".join(f"`{v}`" for v in values)


class _Reference:
    """Walks the schema from its root: one table per object model, at the path where it is first reached."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.root = schema
        self.defs: dict[str, dict[str, Any]] = schema.get("$defs", {})
        self.at: dict[str, list[str]] = {}  # model name → every path it is found at, the first one first
        self.order: list[str] = []

    def is_object(self, name: str) -> bool:
        return "properties" in self.defs[name]

    def type_of(self, s: dict[str, Any]) -> str:
        if "$ref" in s:
            name = _def_name(s["$ref"])
            target = self.defs[name]
            return f"[{name}](#{name.lower()})" if self.is_object(name) else self.type_of(target)
        if "const" in s:
            return f"`{json.dumps(s['const'])}`"
        if "enum" in s:
            return _values(s["enum"])
        for key in ("anyOf", "oneOf"):
            if key in s:
                kinds = [self.type_of(b) for b in s[key] if b.get("type") != "null"]
                return " or ".join(dict.fromkeys(kinds)) or "null"
        kind = s.get("type")
        if kind == "array":
            item = self.type_of(s.get("items", {})) if s.get("items") else "anything"
            return f"list of {item}{_bounds(s, 'minItems', 'maxItems', 'items')}"
        if kind == "object":
            values = next(iter(s.get("patternProperties", {}).values()), None)
            if values is None and isinstance(s.get("additionalProperties"), dict):
                values = s["additionalProperties"]
            if values is None:
                return "object"
            return f"map of name → {self.type_of(values)}{_bounds(s, 'minProperties', 'maxProperties', 'entries')}"
        if kind == "string":
            text = "duration" if s.get("format") == "duration" else "string"
            return text + _bounds(s, "minLength", "maxLength", "characters")
        if kind in ("integer", "number"):
            return f"{kind}{_number_bounds(s)}"
        return str(kind or "anything")

    def children(self, s: dict[str, Any], path: str) -> Iterator[tuple[str, str]]:
        """(path, model name) of every object model a field's schema leads to."""
        if "$ref" in s:
            name = _def_name(s["$ref"])
            if self.is_object(name):
                yield path, name
            return
        for key in ("anyOf", "oneOf"):
            for branch in s.get(key, []):
                yield from self.children(branch, path)
        if isinstance(s.get("items"), dict):
            yield from self.children(s["items"], f"{path}[]")
        for values in s.get("patternProperties", {}).values():
            yield from self.children(values, f"{path}.<name>")
        if isinstance(s.get("additionalProperties"), dict):
            yield from self.children(s["additionalProperties"], f"{path}.<name>")

    def walk(self, name: str, path: str) -> None:
        known = self.at.setdefault(name, [])
        known.append(path)
        if len(known) > 1:
            return
        self.order.append(name)
        for field, sub in self.defs[name]["properties"].items():
            for child_path, child in self.children(sub, f"{path}.{field}" if path else field):
                self.walk(child, child_path)

    def row(self, model: dict[str, Any], field: str, path: str) -> str:
        s = model["properties"][field]
        required = "**yes**" if field in model.get("required", []) else "no"
        default = _literal(s["default"]) if "default" in s else ("—" if required != "no" else "none")
        examples = s.get("examples") or []
        example = _literal(examples[0]) if examples else ""
        description = _cell(s.get("description", ""))
        return f"| `{path}` | {required} | {_cell(self.type_of(s))} | {default} | {example} | {description} |"

    def section(self, name: str) -> str:
        model = self.defs[name]
        first, *more = self.at[name]
        where = f"At `{first}`" if first else "At the top level of `twinapp.yaml`"
        if more:
            where += "; also at " + ", ".join(f"`{p}`" for p in more)
        if model.get("additionalProperties") is not False:
            where += ". Keys not listed here are kept as they are, for the capabilities that read them"
        lines = [f"## {name}", "", " ".join(str(model.get("description", "")).split()), "", where + ".", "",
                 "| path | required | type | default | example | description |", "|---|---|---|---|---|---|"]
        prefix = f"{first}." if first else ""
        lines += [self.row(model, field, prefix + field) for field in model["properties"]]
        return "\n".join(line for i, line in enumerate(lines) if line or lines[i - 1]) + "\n"


def _literal(value: Any) -> str:
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if v is not None}
    if value is None:
        return "none"
    return _cell(f"`{json.dumps(value, ensure_ascii=False)}`")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    """The whole page: the top level first, then each model in the order the walk reaches it."""
    schema = manifest_schema()
    root = "Manifest"
    defs = {**schema.get("$defs", {}), root: {k: v for k, v in schema.items() if k != "$defs"}}
    reference = _Reference({"$defs": defs})
    reference.walk(root, "")
    return HEADER + "".join("\n" + reference.section(name) for name in reference.order)


if __name__ == "__main__":
    print(render(), end="")
