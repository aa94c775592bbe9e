"""``@app_process``: a function of an app package declared as an openEO process of the app's namespace.

The spec comes from the signature, type hints and docstring. Publishing indexes these functions (in a
sandboxed worker); a workflow run calls them in the app's warm worker with materialised arguments.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

__all__ = ["SPEC_ATTR", "app_process", "declared_processes"]

SPEC_ATTR = "__openeo_process__"

_TYPES: dict[Any, dict[str, Any]] = {float: {"type": "number"}, int: {"type": "integer"}, str: {"type": "string"},
                                     bool: {"type": "boolean"}, list: {"type": "array"}, dict: {"type": "object"}}


def _schema(annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation) or annotation
    if origin in _TYPES:
        return dict(_TYPES[origin])
    name = getattr(annotation, "__name__", str(annotation))
    if "DataArray" in name or "Dataset" in name:
        return {"type": "object", "subtype": "datacube"}
    return {}


def app_process(func: Callable[..., Any] | None = None, *, id: str | None = None, summary: str | None = None,
                description: str | None = None, parameters: dict[str, dict[str, Any]] | None = None,
                returns: dict[str, Any] | None = None, cacheable: bool = True) -> Any:
    """Declare a function of an app package as an openEO process (spec from its signature and docstring).

    ``parameters`` maps parameter names to extra spec fields (``schema``, ``description``) that override
    what the type hints say.
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(fn)
        doc = inspect.getdoc(fn) or ""
        params = []
        for name, param in inspect.signature(fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"app process {fn.__name__}: *args/**kwargs cannot be described as openEO "
                                "parameters")
            entry: dict[str, Any] = {"name": name, "description": name, "schema": _schema(hints.get(name))}
            if param.default is not inspect.Parameter.empty:
                entry["optional"] = True
                entry["default"] = param.default
            entry.update((parameters or {}).get(name, {}))
            params.append(entry)
        spec = {"id": id or fn.__name__, "summary": summary or (doc.splitlines()[0] if doc else fn.__name__),
                "description": description or doc or fn.__name__, "categories": ["app"], "parameters": params,
                "returns": returns or {"description": "result", "schema": _schema(hints.get("return"))},
                "x-cacheable": cacheable}
        setattr(fn, SPEC_ATTR, spec)
        return fn

    return wrap(func) if func is not None else wrap


def declared_processes(modules: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """``process id -> ("module:attr", spec)`` of the ``@app_process`` functions defined in ``modules``."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for module_name, module in sorted(modules.items()):
        for attr, value in vars(module).items():
            spec = getattr(value, SPEC_ATTR, None)
            if callable(value) and isinstance(spec, dict) and getattr(value, "__module__", "") == module_name:
                found[str(spec["id"])] = (f"{module_name}:{attr}", dict(spec))
    return found
