"""Inside an app's worker: advance every member of an ensemble with the app's model step and apply its
observation operators, in one call from the engine (a call per member would cost a round trip each).

The engine sends plain lists and draws every random number itself (model noise included), so an analysis
depends on its seed only. Kept free of the engine's heavier modules: the worker imports it beside the app.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

__all__ = ["advance"]


def _resolve(entrypoint: str) -> Callable[..., Any]:
    module_name, _, attr = entrypoint.partition(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
    return found


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)  # numpy scalars
        except (TypeError, ValueError):
            raise TypeError(f"{where} returned {type(value).__name__}, not a number") from None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{where} returned {number}, not a finite number")
    return number


def advance(*, step: str, names: list[str], members: list[list[float]], parameters: dict[str, Any],
            forcing: list[dict[str, float]], dt: float, noise: list[list[list[float]]],
            operators: dict[str, str], errors: dict[str, list[str | float]]) -> dict[str, Any]:
    """Members after ``len(forcing)`` steps of ``dt`` seconds (``noise[k][i]`` added after step k to member
    i), each member's value of every operator-observed quantity, and the std of each error entrypoint's
    observation: {"members", "observed": {name: [per member]}, "errors": {name: std}}."""
    fn = _resolve(step)
    out: list[list[float]] = []
    for i, member in enumerate(members):
        state = dict(zip(names, member, strict=True))
        for k, drive in enumerate(forcing):
            new = fn(dict(state), parameters, dict(drive), dt)
            if not isinstance(new, dict):
                raise TypeError(f"{step} returned {type(new).__name__}, not a mapping of the state")
            missing = [n for n in names if n not in new]
            if missing:
                raise KeyError(f"{step} returned no value for {', '.join(missing)}")
            state = {n: _number(new[n], f"{step} ({n})") + noise[k][i][j] for j, n in enumerate(names)}
        out.append([state[n] for n in names])
    observed: dict[str, list[float]] = {}
    for name, entrypoint in operators.items():
        operator = _resolve(entrypoint)
        observed[name] = [_number(operator(dict(zip(names, member, strict=True)), parameters), entrypoint)
                          for member in out]
    stds: dict[str, float] = {}
    for name, pair in errors.items():
        where, value = str(pair[0]), float(pair[1])
        std = _number(_resolve(where)(value, parameters), where)
        if std <= 0:
            raise ValueError(f"{where} gave the std {std} for {name}; an observation error is positive")
        stds[name] = std
    return {"members": out, "observed": observed, "errors": stds}
