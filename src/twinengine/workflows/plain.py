"""Standard processes on plain JSON values, with the openEO specification's semantics.

openeo-processes-dask implements the processes for arrays and cubes (NaN as no-data, booleans as 0/1
floats). On plain values (numbers, strings, booleans, ``null``, lists) the specification asks for more:
``null`` propagates, comparisons answer booleans, mixed types compare false, empty arrays are arrays.
``adapt`` keeps the library's implementation for cubes and arrays and uses these on plain values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np

from twinengine.errors import ProcessParameterInvalid, ProcessParameterMissing

__all__ = ["NULL_PASSTHROUGH", "PLAIN", "is_plain", "plain_value"]


def is_plain(value: Any) -> bool:
    """A JSON value (or a typed literal such as a date): not an array, cube or lazy collection."""
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, np.generic):
        return True
    if isinstance(value, np.ndarray):
        return value.ndim == 0
    if isinstance(value, list | tuple):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(is_plain(v) for v in value.values())
    return not hasattr(value, "dims") and not hasattr(value, "dask") and not hasattr(value, "shape")


def plain_value(value: Any) -> Any:
    """numpy scalars, 0-d and small arrays, Dask arrays → Python values."""
    if hasattr(value, "compute") and not hasattr(value, "dims"):
        value = value.compute()
    if isinstance(value, np.ndarray):
        return plain_value(value.item()) if value.ndim == 0 else [plain_value(v) for v in value.tolist()]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [plain_value(v) for v in value]
    return value


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _nodata(x: Any) -> bool:
    return x is None


# -- comparisons and logic ------------------------------------------------------------------------------

def _same(x: Any, y: Any, *, delta: float | None = None, case_sensitive: bool = True) -> bool:
    """Strict equality of the specification: number 1 equals 1.0, never "1" or true."""
    if _number(x) and _number(y):
        if delta is not None and math.isfinite(x) and math.isfinite(y):
            return bool(abs(x - y) <= delta)
        return bool(x == y)
    if isinstance(x, bool) and isinstance(y, bool):
        return x is y
    if isinstance(x, str) and isinstance(y, str):
        return x == y if case_sensitive else x.casefold() == y.casefold()
    return False


def eq(x: Any, y: Any, delta: float | None = None, case_sensitive: bool = True) -> bool | None:
    if _nodata(x) or _nodata(y):
        return None
    return _same(x, y, delta=delta, case_sensitive=case_sensitive)


def neq(x: Any, y: Any, delta: float | None = None, case_sensitive: bool = True) -> bool | None:
    same = eq(x, y, delta, case_sensitive)
    return None if same is None else not same


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool | None]:
    def compare(x: Any, y: Any) -> bool | None:
        if _nodata(x) or _nodata(y):
            return None
        if not (_number(x) and _number(y)):
            return False
        return bool(op(x, y))

    return compare


gt = _ordered(lambda a, b: a > b)
gte = _ordered(lambda a, b: a >= b)
lt = _ordered(lambda a, b: a < b)
lte = _ordered(lambda a, b: a <= b)


def between(x: Any, min: Any, max: Any, exclude_max: bool = False) -> bool | None:
    if _nodata(x):
        return None
    if not (_number(x) and _number(min) and _number(max)):
        return False
    return bool(min <= x < max) if exclude_max else bool(min <= x <= max)


def and_(x: bool | None, y: bool | None) -> bool | None:
    if x is False or y is False:
        return False
    return None if x is None or y is None else True


def or_(x: bool | None, y: bool | None) -> bool | None:
    if x is True or y is True:
        return True
    return None if x is None or y is None else False


def xor(x: bool | None, y: bool | None) -> bool | None:
    return None if x is None or y is None else bool(x) != bool(y)


def not_(x: bool | None) -> bool | None:
    return None if x is None else not x


def any_(data: list[Any], ignore_nodata: bool = True) -> bool | None:
    values = [v for v in data if v is not None]
    if ignore_nodata or not values:
        return any(values)
    return True if True in values else (None if len(values) < len(data) else False)


def all_(data: list[Any], ignore_nodata: bool = True) -> bool | None:
    values = [v for v in data if v is not None]
    if ignore_nodata or not values:
        return all(values)
    return False if False in values else (None if len(values) < len(data) else True)


# -- type checks ----------------------------------------------------------------------------------------

def is_nan(x: Any) -> bool:
    return _nan(x)


def is_nodata(x: Any) -> bool:
    return x is None


def is_infinite(x: Any) -> bool:
    return isinstance(x, float) and math.isinf(x)


def is_valid(x: Any) -> bool:
    return not (x is None or (isinstance(x, float) and not math.isfinite(x)))


# -- math with special cases ------------------------------------------------------------------------------

def mod(x: Any, y: Any) -> Any:
    """The remainder with the sign of the divisor; x mod 0 is +-Infinity (NaN for 0), x mod +-Infinity is x."""
    if x is None or y is None:
        return None
    if _nan(x) or _nan(y) or math.isinf(x):
        return math.nan
    if y == 0:
        return math.nan if x == 0 else math.copysign(math.inf, x)
    if math.isinf(y):
        return x
    return float(np.mod(x, y)) if isinstance(x, float) or isinstance(y, float) else x % y


def int_(x: Any) -> Any:
    if x is None or _nan(x):
        return None
    return x if math.isinf(x) else math.trunc(x)


def round_(x: Any, p: int = 0) -> Any:
    """Half to even on the decimal digits (0.35 → 0.4), as the specification's examples show."""
    if x is None or not math.isfinite(x):
        return x
    rounded = Decimal(repr(x)).quantize(Decimal(1).scaleb(-p), rounding=ROUND_HALF_EVEN)
    return int(rounded) if p <= 0 else float(rounded)


def sgn(x: Any) -> Any:
    if x is None or _nan(x):
        return x
    return 0 if x == 0 else int(math.copysign(1, x))


def clip(x: Any, min: Any, max: Any) -> Any:
    if x is None:
        return None
    if _number(min) and _number(max) and min > max:
        from openeo_processes_dask.process_implementations.exceptions import MinMaxSwapped

        raise MinMaxSwapped("The minimum value should be lower than or equal to the maximum value.")
    if _nan(x) or _nan(min) or _nan(max):
        return math.nan
    return min if x < min else max if x > max else x


# -- reducers over arrays -----------------------------------------------------------------------------------

def _reduce(data: list[Any], ignore_nodata: bool) -> list[Any] | None:
    """The values to reduce, or None when the answer is no-data (empty, all no-data, or no-data not ignored)."""
    values = [v for v in data if v is not None]
    if not values or (not ignore_nodata and len(values) < len(data)):
        return None
    return values


def sum_(data: list[Any], ignore_nodata: bool = True) -> Any:
    values = _reduce(data, ignore_nodata)
    return None if values is None else sum(values)


def product(data: list[Any], ignore_nodata: bool = True) -> Any:
    values = _reduce(data, ignore_nodata)
    return None if values is None else math.prod(values)


def _numpy(name: str, **kwargs: Any) -> Callable[..., Any]:
    def reduce(data: list[Any], ignore_nodata: bool = True) -> Any:
        values = _reduce(data, ignore_nodata)
        if values is None:
            return None
        return plain_value(getattr(np, name)(np.asarray(values, dtype=float), **kwargs))

    return reduce


def _sample(name: str) -> Callable[..., Any]:
    inner = _numpy(name, ddof=1)

    def reduce(data: list[Any], ignore_nodata: bool = True) -> Any:
        values = _reduce(data, ignore_nodata)
        return None if values is None or len(values) < 2 else inner(values)

    return reduce


def extrema(data: list[Any], ignore_nodata: bool = True) -> list[Any]:
    values = _reduce(data, ignore_nodata)
    if values is None:
        return [None, None]
    if any(_nan(v) for v in values):
        return [math.nan, math.nan]
    return [min(values), max(values)]


def _extreme(index: int) -> Callable[..., Any]:
    def reduce(data: list[Any], ignore_nodata: bool = True) -> Any:
        return extrema(data, ignore_nodata)[index]

    return reduce


def first(data: list[Any], ignore_nodata: bool = True) -> Any:
    values = [v for v in data if v is not None] if ignore_nodata else list(data)
    return values[0] if values else None


def last(data: list[Any], ignore_nodata: bool = True) -> Any:
    values = [v for v in data if v is not None] if ignore_nodata else list(data)
    return values[-1] if values else None


def _cumulative(op: Callable[[Any, Any], Any]) -> Callable[..., list[Any]]:
    def accumulate(data: list[Any], ignore_nodata: bool = True) -> list[Any]:
        out: list[Any] = []
        total: Any = None
        broken = False
        for value in data:
            if value is None or broken:
                broken = broken or not ignore_nodata
                out.append(None)
                continue
            total = value if total is None else op(total, value)
            out.append(total)
        return out

    return accumulate


def quantiles(data: list[Any], probabilities: Any = None, q: int | None = None,
              ignore_nodata: bool = True) -> list[Any]:
    from openeo_processes_dask.process_implementations.exceptions import (
        QuantilesParameterConflict,
        QuantilesParameterMissing,
    )

    if probabilities is not None and q is not None:
        raise QuantilesParameterConflict("quantiles takes either probabilities or q, not both")
    if probabilities is None and q is None:
        raise QuantilesParameterMissing("quantiles needs probabilities or q")
    intervals = probabilities if isinstance(probabilities, int) and not isinstance(probabilities, bool) else q
    probs = [i / intervals for i in range(1, intervals)] if intervals is not None else list(probabilities)
    values = _reduce(data, ignore_nodata)
    if values is None:
        return [None] * len(probs)
    return [_type7(sorted(values), float(p)) for p in probs]


def _type7(ordered: list[Any], p: float) -> Any:
    """Hyndman and Fan's type 7, weighted so that infinite values stay infinite (numpy gives NaN there)."""
    if any(_nan(v) for v in ordered):
        return math.nan
    h = (len(ordered) - 1) * p
    low = math.floor(h)
    frac = h - low
    if frac == 0 or low + 1 >= len(ordered):
        return ordered[low]
    return ordered[low] * (1 - frac) + ordered[low + 1] * frac


def _sortable(data: list[Any], asc: bool, nodata: bool | None) -> list[int]:
    valid = [i for i, v in enumerate(data) if v is not None]
    missing = [i for i, v in enumerate(data) if v is None]
    order = sorted(valid, key=lambda i: data[i], reverse=not asc)
    if nodata is None:
        return order
    return order + missing if nodata else missing + order


def order(data: list[Any], asc: bool = True, nodata: bool | None = None) -> list[int]:
    return _sortable(data, asc, nodata)


def sort(data: list[Any], asc: bool = True, nodata: bool | None = None) -> list[Any]:
    return [data[i] for i in _sortable(data, asc, nodata)]


def count(data: list[Any], condition: Any = None, context: Any = None) -> int:
    if condition is None:
        return sum(1 for v in data if is_valid(v))
    if condition is True:
        return len(data)
    if callable(condition):
        return sum(1 for v in data if condition(named_parameters={"x": v, "context": context}) is True)
    raise ProcessParameterInvalid("count: condition must be null, true or a process")


# -- arrays --------------------------------------------------------------------------------------------------

def _unavailable(message: str) -> Exception:
    from openeo_processes_dask.process_implementations.exceptions import ArrayElementNotAvailable

    return ArrayElementNotAvailable(message)


def array_element(data: list[Any], index: int | None = None, label: Any = None,
                  return_nodata: bool = False) -> Any:
    if index is None and label is None:
        raise ProcessParameterMissing("array_element needs index or label")
    if index is not None and label is not None:
        raise ProcessParameterInvalid("array_element takes index or label, not both")
    if label is not None:
        if return_nodata:
            return None
        raise ProcessParameterInvalid("array_element: the array is not labeled; use index")
    if index is not None and 0 <= index < len(data):
        return data[index]
    if return_nodata:
        return None
    raise _unavailable(f"array_element: no element at index {index} (the array has {len(data)})")


def _position(data: list[Any], value: Any) -> list[int]:
    if value is None or isinstance(value, list | dict):
        return []
    return [i for i, v in enumerate(data) if not isinstance(v, list | dict) and v is not None and _same(v, value)]


def array_find(data: list[Any], value: Any, reverse: bool = False) -> int | None:
    found = _position(data, value)
    return (found[-1] if reverse else found[0]) if found else None


def array_contains(data: list[Any], value: Any) -> bool:
    return bool(_position(data, value))


def array_append(data: list[Any], value: Any, label: Any = None) -> list[Any]:
    if label is not None:
        raise ProcessParameterInvalid("array_append: the array is not labeled; a label cannot be given")
    return [*data, value]


def array_concat(array1: list[Any], array2: list[Any]) -> list[Any]:
    return [*array1, *array2]


def array_create(data: list[Any] | None = None, repeat: int = 1) -> list[Any]:
    return list(data or []) * repeat


def array_labels(data: list[Any]) -> list[int]:
    return list(range(len(data)))


def array_modify(data: list[Any], values: list[Any], index: int, length: int = 0) -> list[Any]:
    if index > len(data):
        raise _unavailable(f"array_modify: index {index} is beyond the array (length {len(data)})")
    return [*data[:index], *values, *data[index + length:]]


def rearrange(data: list[Any], order: list[int]) -> list[Any]:
    return [data[i] for i in order]


def array_interpolate_linear(data: list[Any]) -> list[Any]:
    """No-data and NaN between two numbers are interpolated; the ends stay as they are."""
    known = [i for i, v in enumerate(data) if _number(v) and not _nan(v)]
    out = list(data)
    for left, right in itertools.pairwise(known):
        for i in range(left + 1, right):
            frac = (i - left) / (right - left)
            out[i] = data[left] * (1 - frac) + data[right] * frac
    return out


def array_apply(data: list[Any], process: Callable[..., Any], context: Any = None) -> list[Any]:
    return [process(named_parameters={"x": v, "index": i, "label": None, "context": context})
            for i, v in enumerate(data)]


def array_filter(data: list[Any], condition: Callable[..., Any], context: Any = None) -> list[Any]:
    return [v for i, v in enumerate(data)
            if condition(named_parameters={"x": v, "index": i, "label": None, "context": context}) is True]


def if_(value: Any, accept: Any, reject: Any = None) -> Any:
    return accept if value is True else reject


def text_concat(data: list[Any], separator: Any = "") -> str:
    return _text(separator).join(_text(v) for v in data)


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Numeric processes whose listed parameters pass a no-data value (null) through unchanged.
NULL_PASSTHROUGH: dict[str, tuple[str, ...]] = {
    **{pid: ("x",) for pid in ("absolute", "arccos", "arcosh", "arcsin", "arctan", "arsinh", "artanh", "ceil",
                               "cos", "cosh", "floor", "ln", "sin", "sinh", "sqrt", "tan", "tanh", "log",
                               "linear_scale_range")},
    **{pid: ("x", "y") for pid in ("add", "subtract", "multiply", "divide", "normalized_difference")},
    "arctan2": ("y", "x"), "exp": ("p",), "power": ("base", "p"),
}

PLAIN: dict[str, Callable[..., Any]] = {
    "eq": eq, "neq": neq, "gt": gt, "gte": gte, "lt": lt, "lte": lte, "between": between,
    "and": and_, "or": or_, "xor": xor, "not": not_, "any": any_, "all": all_,
    "is_nan": is_nan, "is_nodata": is_nodata, "is_infinite": is_infinite, "is_valid": is_valid,
    "mod": mod, "int": int_, "round": round_, "sgn": sgn, "clip": clip,
    "sum": sum_, "product": product, "mean": _numpy("mean"), "median": _numpy("median"),
    "sd": _sample("std"), "variance": _sample("var"), "min": _extreme(0), "max": _extreme(1), "extrema": extrema,
    "first": first, "last": last, "quantiles": quantiles, "order": order, "sort": sort, "count": count,
    "cumsum": _cumulative(lambda a, b: a + b), "cumproduct": _cumulative(lambda a, b: a * b),
    "cummin": _cumulative(lambda a, b: b if b < a else a), "cummax": _cumulative(lambda a, b: b if b > a else a),
    "array_element": array_element, "array_find": array_find, "array_contains": array_contains,
    "array_append": array_append, "array_concat": array_concat, "array_create": array_create,
    "array_labels": array_labels, "array_modify": array_modify, "rearrange": rearrange,
    "array_interpolate_linear": array_interpolate_linear, "text_concat": text_concat,
    "array_apply": array_apply, "array_filter": array_filter, "if": if_,
}
