"""Uncertainty carried by stream record fields: a standard deviation, quantiles, or ensemble members.

A float or integer field declares the forms its values may carry (``uncertainty: std``, or a list); a record
then gives such a field as ``{"value": 2.1, "uncertainty": {"std": 0.3}}``. The field keeps the value (so
checks, functions and graphs read it as before) and the record keeps what it carried in one ``_uncertainty``
column, field → forms. That column has one Arrow type whatever a stream declares, so the log, Parquet
segments and Arrow reads hold it unchanged, and records from before a declaration read as carrying none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from twinengine.catalog.manifest import UNCERTAINTY_FIELD, Stream, StreamField
from twinengine.errors import Problem, join_loc
from twinengine.quality.uncertainty import Uncertainty

__all__ = ["FORMS_TYPE", "UNCERTAINTY", "UNCERTAINTY_TYPE", "check_column", "column_of", "declares",
           "plain_records", "split", "variables"]

UNCERTAINTY = UNCERTAINTY_FIELD
FORMS_TYPE = pa.struct([("std", pa.float64()), ("quantiles", pa.map_(pa.string(), pa.float64())),
                        ("members", pa.list_(pa.float64()))])
UNCERTAINTY_TYPE = pa.map_(pa.string(), FORMS_TYPE)
UNCERTML = "http://www.uncertml.org/statistics/"
REALISATION = "http://www.uncertml.org/samples/realisation"


def declares(stream: Stream) -> bool:
    """Does any field of the stream declare uncertainty (so its records have the ``_uncertainty`` column)?"""
    return any(f.uncertainty for f in stream.fields.values())


def _forms_problems(where: str, name: str, declared: StreamField, raw: Any) -> tuple[dict[str, Any] | None,
                                                                                   list[Problem]]:
    """An uncertainty as given, checked for its shape and against the forms the field declares."""
    try:
        parsed = Uncertainty.model_validate(raw)
    except ValidationError as exc:
        return None, [Problem(join_loc([where, "uncertainty", *e["loc"]]), e["msg"]) for e in exc.errors()]
    allowed = declared.uncertainty
    problems = [Problem(f"{where}.uncertainty.{form.value}",
                        f"field {name!r} declares uncertainty as {', '.join(f.value for f in allowed)} only")
                for form in parsed.forms() if form not in allowed]
    return parsed.plain(), problems


def split(where: str, name: str, declared: StreamField, value: Any) -> tuple[Any, dict[str, Any] | None,
                                                                            list[Problem]]:
    """A field's value apart from what it carries: ``{"value": v, "uncertainty": u}`` gives (v, u, problems);
    anything else is the value itself (the caller checks it against the field's type)."""
    if not isinstance(value, dict):
        return value, None, []
    if not declared.uncertainty:
        hint = " (it declares no uncertainty; add e.g. 'uncertainty: std' to it in twinapp.yaml)" \
            if declared.type.value in ("float", "integer") else ""
        return None, None, [Problem(where, f"an object is not a {declared.type.value}{hint}")]
    problems = [Problem(f"{where}.{key}", "not part of a value with its uncertainty (value, uncertainty)")
                for key in value if key not in ("value", "uncertainty")]
    if value.get("value") is None:
        problems.append(Problem(f"{where}.value", "required: the value the uncertainty is of"))
    raw = value.get("uncertainty")
    if raw is None:
        return value.get("value"), None, problems
    forms, more = _forms_problems(where, name, declared, raw)
    return value.get("value"), forms, problems + more


def _entries(carried: dict[str, dict[str, Any]] | None) -> list[tuple[str, dict[str, Any]]] | None:
    if not carried:
        return None
    return [(name, {"std": forms.get("std"),
                    "quantiles": list(forms["quantiles"].items()) if forms.get("quantiles") is not None else None,
                    "members": forms.get("members")}) for name, forms in carried.items()]


def column_of(carried: Sequence[dict[str, dict[str, Any]] | None]) -> pa.Array:
    """The ``_uncertainty`` column of records: per record field → forms (as ``Uncertainty.plain()``), or None."""
    if not any(carried):
        return pa.nulls(len(carried), type=UNCERTAINTY_TYPE)
    return pa.array([_entries(c) for c in carried], type=UNCERTAINTY_TYPE)


def _plain(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if not value:
        return None
    return {name: {form: v for form, v in forms.items() if v is not None} for name, forms in value.items()}


def plain_records(table: pa.Table) -> list[dict[str, Any]]:
    """``table.to_pylist()`` with each record's ``_uncertainty`` as ``{field: {form: ...}}`` (or None)."""
    if UNCERTAINTY not in table.column_names:
        return list(table.to_pylist())
    records: list[dict[str, Any]] = table.to_pylist(maps_as_pydicts="strict")
    for record in records:
        record[UNCERTAINTY] = _plain(record[UNCERTAINTY])
    return records


def check_column(stream: Stream, column: pa.ChunkedArray | pa.Array) -> tuple[pa.Array | None, list[Problem]]:
    """An ``_uncertainty`` column of an Arrow body: of the canonical type, naming declared fields and forms
    only, each form well formed. Problems name the record and field (``records[3].level.uncertainty.std``)."""
    try:
        array = column.cast(UNCERTAINTY_TYPE, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None, [Problem(f"columns.{UNCERTAINTY}", f"type {column.type} cannot be read as {UNCERTAINTY_TYPE} "
                                                        "(field name → std, quantiles, members)")]
    problems: list[Problem] = []
    for i, carried in enumerate(array.to_pylist()):  # maps as (key, value) pairs: a repeated key is refused
        seen: set[str] = set()
        for name, forms in carried or []:
            where = f"records[{i}].{name}"
            declared = stream.fields.get(name)
            if declared is None or not declared.uncertainty:
                problems.append(Problem(where, "not a field of this stream that declares uncertainty"))
                continue
            if name in seen:
                problems.append(Problem(where, "given twice in _uncertainty"))
                continue
            seen.add(name)
            given = {k: v for k, v in (forms or {}).items() if v is not None}
            if "quantiles" in given:
                levels = [level for level, _ in given["quantiles"]]
                if len(set(levels)) != len(levels):
                    problems.append(Problem(f"{where}.uncertainty.quantiles", "a quantile level is given twice"))
                    continue
                given["quantiles"] = dict(given["quantiles"])
            problems += _forms_problems(where, name, declared, given)[1]
        if len(problems) >= 20:
            break
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array, problems


def _floats(array: pa.Array) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(array.fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)


Variable = tuple[tuple[str, ...], np.ndarray[Any, Any], dict[str, Any]]


def variables(column: pa.ChunkedArray | pa.Array) -> dict[str, dict[str, Variable]]:
    """Per field, its uncertainty as dataset variables along ``record``, NaN where a record carries none:
    ``level_std``, one ``level_q05`` per quantile level (``quantile`` = 0.05) and ``level_members`` (record,
    level_member). Each names its statistic with an UncertML ``ref`` (NetCDF-U), so the value can list them
    in CF's ``ancillary_variables``."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(array)
    names = sorted(set(array.keys.to_pylist())) if n else []
    out: dict[str, dict[str, Variable]] = {}
    for name in names:
        found = pc.map_lookup(array, pa.scalar(name, type=pa.string()), "first")
        std, quantiles, members = found.flatten()  # each child null where the record carries nothing for name
        made: dict[str, Variable] = {}
        if std.null_count < n:
            made[f"{name}_std"] = (("record",), _floats(std), {"ref": UNCERTML + "standard-deviation"})
        if quantiles.null_count < n:
            grid: dict[float, np.ndarray[Any, np.dtype[np.float64]]] = {}
            for i, row in enumerate(quantiles.to_pylist()):
                for level, value in row or []:
                    grid.setdefault(float(level), np.full(n, np.nan))[i] = np.nan if value is None else value
            for level in sorted(grid):
                made[f"{name}_q{repr(level).removeprefix('0.')}"] = (
                    ("record",), grid[level], {"ref": UNCERTML + "quantile", "quantile": level})
        if members.null_count < n:
            lengths = np.asarray(pc.list_value_length(members).fill_null(0).to_numpy(zero_copy_only=False))
            width = int(lengths.max())
            values = np.full((n, width), np.nan)
            values[np.arange(width)[None, :] < lengths[:, None]] = _floats(pc.list_flatten(members))
            made[f"{name}_members"] = (("record", f"{name}_member"), values, {"ref": REALISATION})
        out[name] = made
    return out
