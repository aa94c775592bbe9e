"""The fleet filter grammar and its SQL: conditions on state values (read from ``state_heads``, numbers from
its ``num_value`` column) and on parameters (read from ``twin_parameters``), portable between SQLite (JSON
text) and PostgreSQL (JSONB).

    condition := term op value
    term      := [reported. | desired.] name        (a state property; reported by default)
               | name                               (a parameter, in ``parameter=...``)
    op        := = | != | < | <= | > | >=
    value     := number | true | false | "text" | 'text' | bare-word | @term   (@: another property, numeric)

Numbers compare numerically and only with numeric values; text and booleans with ``=``/``!=`` (text also
orders). ``!=`` with a boolean holds for a value of any other type (with a number or text it does not);
no condition holds for a missing value. Anything else is a 400 naming the query parameter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Float, Text, and_, case, cast, exists, func, literal, literal_column, or_, select
from sqlalchemy.orm import aliased

from twinengine.errors import InvalidInput, Problem
from twinengine.twins.models import StateHead, Twin, TwinParameter
from twinengine.twins.parameter_index import MAX_NAME

__all__ = ["Condition", "Json", "bad", "parameter_clause", "parameter_key", "parse", "state_clause"]

_CONDITION = re.compile(r"^\s*(?P<term>[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?)\s*"
                        r"(?P<op><=|>=|!=|=|<|>)\s*(?P<value>.*?)\s*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BARE = re.compile(r"^[A-Za-z0-9_.:+-]+$")
_KINDS = ("reported", "desired")
_OPS = {"=": "__eq__", "!=": "__ne__", "<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__"}


def bad(field: str, msg: str) -> InvalidInput:
    """A 400 whose details name the query parameter."""
    return InvalidInput(f"{field}: {msg}", details=[Problem(field, msg).to_dict()])


@dataclass(frozen=True)
class Condition:
    kind: str  # reported | desired (state), "" for parameters
    name: str
    op: str
    value: Any = None  # float | str | bool
    ref: tuple[str, str] | None = None  # (kind, name) of another state property


def _term(text: str, field: str, state: bool) -> tuple[str, str]:
    if "." in text:
        kind, name = text.split(".", 1)
        if not state or kind not in _KINDS:
            raise bad(field, f"{text!r}: a name may be prefixed by reported. or desired. only in state filters")
        return kind, name
    return ("reported" if state else ""), text


def parse(text: str, field: str, *, state: bool) -> Condition:
    """One condition of a ``state=`` or ``parameter=`` query parameter."""
    match = _CONDITION.match(text)
    if match is None or len(text) > 200:
        raise bad(field, f"{text!r} is not a condition like level>2.5 (name, one of = != < <= > >=, a value)")
    kind, name = _term(match["term"], field, state)
    op, raw = match["op"], match["value"]
    if raw.startswith("@"):
        if not state:
            raise bad(field, "@name compares with another state property: only in state filters")
        ref = _term(raw[1:], field, True)
        if not _NAME.match(ref[1]):
            raise bad(field, f"{raw!r} does not name a state property")
        return Condition(kind, name, op, ref=ref)
    value: Any
    if raw in ("true", "false"):
        value = raw == "true"
    elif len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        value = raw[1:-1]
    else:
        try:
            value = float(raw)
        except ValueError:
            if not _BARE.match(raw):
                raise bad(field, f"{raw!r} is not a value: a number, true, false, a word or quoted text") from None
            value = raw
        else:
            if value != value or value in (float("inf"), float("-inf")):
                raise bad(field, f"{raw!r} is not a finite number")
    if isinstance(value, bool) and op not in ("=", "!="):
        raise bad(field, f"booleans compare with = or != only, not {op}")
    return Condition(kind, name, op, value)


class Json:
    """Typed reads of a JSON value (a column, or one key of a column) in the dialect at hand."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def _at(self, column: Any, key: str | None) -> tuple[Any, Any]:
        """(type name, text or native value) of ``column`` or ``column[key]``."""
        if self.pg:
            node = column if key is None else func.jsonb_extract_path(column, literal(key))
            return func.jsonb_typeof(node), node.op("#>>")(literal_column("'{}'"))
        path = "$" if key is None else "$." + json.dumps(key)
        return func.json_type(column, path), func.json_extract(column, path)

    def number(self, column: Any, key: str | None = None) -> ColumnElement[Any]:
        kind, value = self._at(column, key)
        if self.pg:
            return case((kind == "number", cast(value, Float)), else_=None)
        return case((kind.in_(("integer", "real")), value), else_=None)

    def value_number(self, column: Any) -> ColumnElement[Any]:
        """The number of a state value, also when the log keeps it with its uncertainty
        (``{"value": ..., "uncertainty": ...}``, see quality/stored.py)."""
        enveloped, _ = self._at(column, "uncertainty")
        return case((enveloped.is_not(None), self.number(column, "value")), else_=self.number(column))

    def text(self, column: Any, key: str | None = None) -> ColumnElement[Any]:
        kind, value = self._at(column, key)
        return case((kind == ("string" if self.pg else "text"), value), else_=None)

    def boolean(self, column: Any, key: str | None, value: bool) -> ColumnElement[bool]:
        kind, text = self._at(column, key)
        if self.pg:
            return and_(kind == "boolean", text == ("true" if value else "false"))
        test: ColumnElement[bool] = kind == ("true" if value else "false")
        return test

    def label(self, column: Any, key: str) -> ColumnElement[Any]:
        """A parameter as text, whatever its JSON type (for grouping)."""
        if self.pg:
            return func.jsonb_extract_path_text(column, literal(key))
        return cast(func.json_extract(column, "$." + json.dumps(key)), Text)


def _compare(json_: Json, column: Any, key: str | None, cond: Condition) -> ColumnElement[bool]:
    if isinstance(cond.value, bool):
        test = json_.boolean(column, key, cond.value)
        return test if cond.op == "=" else ~test
    if isinstance(cond.value, float):
        number = json_.number(column, key) if key is not None else json_.value_number(column)
        return getattr(number, _OPS[cond.op])(cond.value)  # type: ignore[no-any-return]
    return getattr(json_.text(column, key), _OPS[cond.op])(cond.value)  # type: ignore[no-any-return]


def state_clause(json_: Json, cond: Condition, *, per_twin: bool = True) -> ColumnElement[bool]:
    """A test on the twin's head of the property; numbers compare the heads' ``num_value`` (the indexed
    numeric copy), not their JSON. ``per_twin``: a correlated seek per twin tested, which suits a page that
    stops after a few; otherwise the matching twin ids as one set, read off the index in one range (what an
    aggregate over the whole fleet wants)."""
    head = aliased(StateHead)
    on = [head.property == cond.name, head.kind == cond.kind]
    if cond.ref is not None:
        other = aliased(StateHead)
        on += [other.twin_id == head.twin_id, other.property == cond.ref[1], other.kind == cond.ref[0],
               getattr(head.num_value, _OPS[cond.op])(other.num_value)]
    elif isinstance(cond.value, float):
        on.append(getattr(head.num_value, _OPS[cond.op])(cond.value))
    else:
        on.append(_compare(json_, head.value, None, cond))
    if per_twin:
        return exists().where(head.twin_id == Twin.id, *on)
    return Twin.id.in_(select(head.twin_id).where(*on))


def parameter_clause(json_: Json, cond: Condition, *, per_twin: bool = True) -> ColumnElement[bool]:
    """A test on the twin's row of the parameter in the parameter index (``twin_parameters``): numbers and
    booleans by ``(name, kind, num_value)``, text by ``(name, value)``. ``per_twin``: a seek per twin tested,
    which suits a page that stops after a few; otherwise the matching twin ids as one set read off the index
    (an aggregate; and text equality always, a value like a station's id being rare); on SQLite a page reads
    the JSON of the twin rows it reads anyway. Only text longer than
    the index holds (200 characters) is read from its twin's JSON, and only to order it; a name longer than
    the index holds reads every twin's JSON."""
    if len(cond.name) > MAX_NAME:
        return _compare(json_, Twin.parameters, cond.name, cond)
    row = aliased(TwinParameter)
    text_equality = cond.op == "=" and isinstance(cond.value, str)
    if per_twin and not json_.pg and not text_equality:
        # A page on SQLite reads each twin's row anyway: its JSON costs less than a seek into the index
        # (168 ms against 636 ms for a condition no twin of 100,000 meets).
        return _compare(json_, Twin.parameters, cond.name, cond)
    if text_equality:
        return Twin.id.in_(select(row.twin_id).where(row.name == cond.name, row.value == cond.value))
    tests: list[list[ColumnElement[bool]]]  # alternatives, each a conjunction
    if isinstance(cond.value, bool):
        test = and_(row.kind == "boolean", row.num_value == float(cond.value))
        tests = [[test if cond.op == "=" else ~test]]
    elif isinstance(cond.value, float):
        tests = [[row.kind == "number", getattr(row.num_value, _OPS[cond.op])(cond.value)]]
    else:  # a value is text only; longer text never equals a condition's value, so differs
        long = [row.value.is_(None), row.kind == "string"]
        if cond.op != "!=":  # order the long texts by their JSON
            twin = aliased(Twin)
            long.append(exists().where(twin.id == row.twin_id, _compare(json_, twin.parameters, cond.name, cond)))
        tests = [[getattr(row.value, _OPS[cond.op])(cond.value)], long]
    if per_twin:
        return exists().where(row.twin_id == Twin.id, row.name == cond.name, or_(*(and_(*t) for t in tests)))
    return or_(*(Twin.id.in_(select(row.twin_id).where(row.name == cond.name, *t)) for t in tests))


def parameter_key(json_: Json, name: str) -> tuple[ColumnElement[Any], Any]:
    """A parameter as a group key, the text the JSON path showed (``Json.label``), and the index's row of it
    to join (None when the name is longer than the index holds): strings and the store's text of numbers
    and booleans come from the row; long text, objects and arrays from the twin's JSON."""
    if len(name) > MAX_NAME:
        return json_.label(Twin.parameters, name), None
    row = aliased(TwinParameter)
    twin = aliased(Twin)
    from_json = select(json_.label(twin.parameters, name)).where(twin.id == row.twin_id).scalar_subquery()
    key = func.coalesce(row.value, row.label,
                        case((row.kind.in_(("string", "object", "array")), from_json), else_=None))
    return key, row
