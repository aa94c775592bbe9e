"""The openEO standard processes the engine offers: the official specs, the library's implementations.

Specs come from the openEO processes specification 2.0.0-rc.2 (vendored under ``workflows/openeo/spec``,
Apache-2.0), so ``/processes`` serves what clients and the official test suite check against; the
implementations come from openeo-processes-dask, adapted to the specification's semantics on plain values
(``workflows.plain``). A process the engine cannot honour is not offered (``NOT_OFFERED`` says why).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable
from importlib import resources
from typing import Any

from twinengine.errors import ProcessParameterInvalid
from twinengine.workflows.context import active
from twinengine.workflows.plain import NULL_PASSTHROUGH, PLAIN, is_plain, plain_value

__all__ = ["NOT_OFFERED", "SPEC_VERSION", "adapt", "implementations", "official_spec", "official_specs"]

SPEC_VERSION = "2.0.0-rc.2"

# Processes the library implements (or declares) that the engine does not offer, and why.
NOT_OFFERED: dict[str, str] = {
    "apply_neighborhood_intertwin": "not an openEO standard process (a project variant of apply_neighborhood)",
    "fit_regr_random_forest": "needs the library's ML extra (xgboost), not installed",
    "predict_random_forest": "needs the library's ML extra (xgboost), not installed",
    "load_ml_model": "the engine's models live in its registry (ml/), not in openEO ML model files",
    "save_ml_model": "the engine's models live in its registry (ml/), not in openEO ML model files",
    "fit_curve": "the library's implementation needs a dimension parameter the specification removed",
    "predict_curve": "the library's implementation needs data the specification removed",
    "load_result": "the library's implementation reads from its own result store, not the engine's",
    "load_uploaded_files": "the engine has no user file storage",
    "load_geojson": "vector cubes are not served by the engine's result formats",
    "load_url": "the engine reads only the collections it knows (no arbitrary URLs)",
    "run_udf_externally": "UDFs run in the engine's sandbox, not on external services",
    "cab": "not an openEO standard process", "ddmc": "not an openEO standard process",
    "fapar": "not an openEO standard process", "fcover": "not an openEO standard process",
    "lai": "not an openEO standard process", "rqadeforestation": "not an openEO standard process",
    "sen2like": "not an openEO standard process",
}

log = logging.getLogger("twinengine.workflows")


@functools.cache
def official_specs() -> dict[str, dict[str, Any]]:
    """Every process of the vendored specification (stable and proposals), by id."""
    root = resources.files("twinengine.workflows.openeo").joinpath("spec")
    specs: dict[str, dict[str, Any]] = {}
    for folder in (root, root.joinpath("proposals")):
        for item in folder.iterdir():
            if item.name.endswith(".json"):
                spec = json.loads(item.read_text(encoding="utf-8"))
                specs[str(spec["id"])] = spec
    return specs


def official_spec(process_id: str) -> dict[str, Any] | None:
    return official_specs().get(process_id)


def implementations() -> dict[str, tuple[dict[str, Any], Callable[..., Any]]]:
    """(spec, implementation) of each standard process the engine offers, by id."""
    quiet = logging.getLogger("openeo_processes_dask.process_implementations")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it warns that its optional ML processes are missing; we do not offer them
    try:
        import openeo_processes_dask.process_implementations as impls
        import openeo_processes_dask.specs as library_specs
    finally:
        quiet.setLevel(level)
    from twinengine.workflows import extra_processes

    found: dict[str, tuple[dict[str, Any], Callable[..., Any]]] = {}
    for name in library_specs.__all__:
        pid = str(getattr(library_specs, name)["id"])
        func = getattr(impls, pid, None) or getattr(impls, "_" + pid, None)
        if func is None or not callable(func) or pid in NOT_OFFERED:
            continue
        spec = official_spec(pid) or getattr(library_specs, name)
        found[pid] = (spec, adapt(pid, func))
    for pid, func in extra_processes.IMPLEMENTATIONS.items():
        spec = official_spec(pid)
        if spec is None:
            raise RuntimeError(f"no specification for the engine's process {pid!r}")
        found[pid] = (spec, adapt(pid, func))
    return found


def _length(value: Any) -> int:
    size = getattr(value, "size", None)
    if isinstance(size, int):
        return size
    return len(value) if isinstance(value, list | tuple) else 1


def _elements(process_id: str, kwargs: dict[str, Any]) -> int:
    if process_id == "array_create":
        repeat = kwargs.get("repeat", 1)
        times = repeat if isinstance(repeat, int) and not isinstance(repeat, bool) else 1
        return _length(kwargs.get("data") or []) * max(times, 0)
    return _length(kwargs.get("array1") or []) + _length(kwargs.get("array2") or [])


_GROWING = ("array_create", "array_concat")  # processes whose result may be far larger than their input


def _check_elements(process_id: str, kwargs: dict[str, Any]) -> None:
    """Refuse, before allocating it, an array larger than the run's element cap: ``repeat: 10**9`` would
    otherwise take the engine's memory."""
    ctx = active()
    limit = ctx.max_array_elements if ctx is not None else None
    if limit is None:
        return
    count = _elements(process_id, kwargs)
    if count > limit:
        raise ProcessParameterInvalid(f"{process_id}: the array would hold {count} elements, more than the {limit} "
                                      "allowed (workflow_max_array_elements)")


def adapt(process_id: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """The library's implementation for arrays and cubes; the specification's semantics on plain values."""
    plain = PLAIN.get(process_id)
    plain_params = set(inspect.signature(plain).parameters) if plain else set()
    passthrough = NULL_PASSTHROUGH.get(process_id, ())

    @functools.wraps(func)
    def process(*args: Any, **kwargs: Any) -> Any:
        if process_id in _GROWING:
            _check_elements(process_id, kwargs)
        if args or kwargs.get("axis") is not None or not all(callable(v) or is_plain(v) for v in kwargs.values()):
            return func(*args, **kwargs)
        values = {k: v if callable(v) else plain_value(v) for k, v in kwargs.items()}
        if plain is not None:
            return _in_range(plain(**{k: v for k, v in values.items() if k in plain_params}))
        if any(name in values and values[name] is None for name in passthrough):
            return None
        if process_id == "power":
            values = _power_operands(values)
        try:
            return _in_range(plain_value(func(**values)))
        except OverflowError:  # float arithmetic past its range: Python raises where numpy says inf
            raise ValueError(_BEYOND) from None

    return process


_INT_BITS = 63  # beyond a signed 64-bit integer, a plain number is computed as a float64
_BEYOND = "the result is beyond the range of a 64-bit float (about 1.8e308)"


def _power_operands(values: dict[str, Any]) -> dict[str, Any]:
    """Integer operands of ``power`` whose exact result would outgrow 64 bits go as floats: Python's exact
    power has no bound (``10 ** 10**9`` takes minutes and gigabytes) and its digits cannot even be written."""
    base, p = values.get("base"), values.get("p")
    if type(base) is int and type(p) is int and p > 0 and abs(base) > 1 \
            and (abs(base).bit_length() - 1) * p >= _INT_BITS:
        return {**values, "base": _as_float(base)}
    return values


def _as_float(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        raise ValueError(_BEYOND) from None


def _in_range(value: Any) -> Any:
    """A plain result that JSON and every client can hold: an integer beyond 64 bits becomes a float (or a
    ValueError, which fails the node naming its process, where no float holds it)."""
    if type(value) is int and value.bit_length() > _INT_BITS:
        return _as_float(value)
    return value
