"""Inside a worker (in the app's sandbox): does each ``module:attr`` entrypoint a manifest names exist, and can
the engine call it as it will? A function on arrival is called ``fn(ctx, records)``; a model's entrypoint is
called with no arguments and returns its training task.

Kept free of the engine's heavier modules: the worker imports it next to the app's code.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import traceback
from typing import Any

__all__ = ["CALLS", "entrypoint_problem"]

# How the engine calls each kind of entrypoint: (placeholder arguments, the call as the message shows it).
CALLS: dict[str, tuple[tuple[Any, ...], str]] = {
    "function": ((None, None), "fn(ctx, records)"),
    "model": ((), "fn() (it returns the model's training task)"),
    "assimilation_step": ((None, None, None, None), "fn(state, parameters, forcing, dt)"),
    "observation_operator": ((None, None), "fn(state, parameters)"),
    "observation_error": ((None, None), "fn(value, parameters)"),
    "calibration_model": ((None, None), "fn(parameters, forcing)"),
}


def entrypoint_problem(kind: str, entrypoint: str) -> str | None:
    """Why ``entrypoint`` cannot serve as a ``kind`` entrypoint, or None when it can."""
    module_name, _, attr = entrypoint.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            return f"no module {module_name!r} in the app"
        return f"importing module {module_name!r} failed: {_last_line(exc)}"
    except BaseException as exc:  # the module's own code failed: say how, and where
        return f"importing module {module_name!r} failed: {_last_line(exc)}{_where(exc)}"
    if not hasattr(module, attr):
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                 and getattr(v, "__module__", module_name) == module_name]
        close = difflib.get_close_matches(attr, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else (f" (it defines {', '.join(sorted(names))})"
                                                              if names else "")
        return f"module {module_name!r} has no attribute {attr!r}{hint}"
    target = getattr(module, attr)
    arguments, call = CALLS[kind]
    if not callable(target):
        return f"{entrypoint} is {type(target).__name__}, not a function; the engine calls it as {call}"
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # a builtin or extension without a signature: nothing to check
        return None
    try:
        signature.bind(*arguments)
    except TypeError as exc:
        return f"{entrypoint}{signature} cannot be called as {call}: {exc}"
    return None


def _last_line(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]


def _where(exc: BaseException) -> str:
    """`` (at file.py:12)`` of the innermost frame of the failure, where there is one."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {last.filename.split('/twin/app/', 1)[-1]}:{last.lineno})"  # the app's code in its sandbox
