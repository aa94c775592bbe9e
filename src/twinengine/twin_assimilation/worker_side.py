"""Inside an app's worker: advance every member of an ensemble with the app's model step, apply its
observation operators, and run whole assimilation cycles (steps, operators, the filter), many in one call
from the engine: a call per cycle, let alone per member, would cost a round trip each.

The engine sends the observations of every cycle at once and the seed; each random number is drawn from a
generator seeded by (seed, cycle number, purpose), so an analysis depends on its seed only, whichever
process draws it and however many cycles one call runs. Members travel as numpy arrays (npy blobs back to
the engine). Kept free of the engine's heavier modules: the worker imports it beside the app; the filters
are the engine's own plain numpy (``twinengine.twin_assimilation.analysis``).
"""

from __future__ import annotations

import functools
import importlib
import math
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = ["advance", "cycles", "trial"]

PART_SECONDS = 0.1  # a part of the answer about this often: the engine writes it while the next cycles run
PART_BYTES = 512 * 1024  # ... or once its ensembles hold this much: a part must fit the worker's pipe (1 MiB),
# or the worker waits for the engine to read it (which needs the engine's interpreter, busy writing records)


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


def _checked(new: Any, names: list[str], step: str) -> np.ndarray:
    """The state the step returned, as a vector in ``names`` order; every value a finite number."""
    if not isinstance(new, dict):
        raise TypeError(f"{step} returned {type(new).__name__}, not a mapping of the state")
    try:
        values = [new[n] for n in names]
    except KeyError:
        raise KeyError(f"{step} returned no value for {', '.join(n for n in names if n not in new)}") from None
    if set(map(type, values)) == {float}:  # the usual answer (a list's tolist()): checked at once
        row = np.array(values, dtype=float)
        if np.isfinite(row).all():
            return row
    return np.array([_number(v, f"{step} ({n})") for n, v in zip(names, values, strict=True)], dtype=float)


def _checked_array(new: Any, size: int, step: str) -> np.ndarray:
    """The state an array-form step returned: a 1-D array of ``size`` finite numbers."""
    try:
        row = np.asarray(new, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{step} returned {type(new).__name__}, not an array of the state") from None
    if row.shape != (size,):
        raise ValueError(f"{step} returned an array of shape {row.shape}, not ({size},) (the state vector)")
    if not np.isfinite(row).all():
        raise ValueError(f"{step} returned a state with a value that is not a finite number")
    return row


def _checked_ensemble(new: Any, shape: tuple[int, ...], step: str) -> np.ndarray:
    """The ensemble an ensemble-form step returned: an (N, n) array of finite numbers, a member per row."""
    if not (type(new) is np.ndarray and new.dtype == np.float64):
        try:
            new = np.asarray(new, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"{step} returned {type(new).__name__}, not an array of the ensemble") from None
    if new.shape != shape:
        raise ValueError(f"{step} returned an array of shape {new.shape}, not {shape} (the ensemble: a member "
                         "per row, the state vector along the columns)")
    if not np.isfinite(new).all():
        raise ValueError(f"{step} returned a state with a value that is not a finite number")
    return np.asarray(new)


def _step_members(fn: Callable[..., Any], step: str, names: list[str], members: np.ndarray,
                  parameters: dict[str, Any], forcing: list[dict[str, float]], dt: float,
                  noise: np.ndarray | None, form: str = "mapping") -> np.ndarray:
    """Members after ``len(forcing)`` steps, ``noise[k, i]`` added after step k to member i (None: no model
    noise). ``form`` is how the app's step takes the members: one at a time as a mapping of the state's
    entries or as an array (an array answer of the right shape is taken as it is, and the ensemble checked
    for finite values once a step: the usual case costs no per-member checks), or all at once as an (N, n)
    array (ensemble: one call a step)."""
    out = np.array(members, dtype=float)
    size = len(names)
    if form == "ensemble":
        for k, drive in enumerate(forcing):
            out = _checked_ensemble(fn(out.copy(), parameters, dict(drive), dt), members.shape, step)
            if noise is not None:
                out += noise[k]
        return out
    for k, drive in enumerate(forcing):
        for i in range(out.shape[0]):
            if form == "array":
                new = fn(out[i].copy(), parameters, dict(drive), dt)
                out[i] = new if type(new) is np.ndarray and new.dtype == np.float64 and new.shape == (size,) \
                    else _checked_array(new, size, step)
            else:
                out[i] = _checked(fn(dict(zip(names, out[i].tolist(), strict=True)), parameters, dict(drive), dt),
                                  names, step)
        if form == "array" and not np.isfinite(out).all():
            raise ValueError(f"{step} returned a state with a value that is not a finite number")
        if noise is not None:
            out += noise[k]
    return out


def _observed(operators: dict[str, str], names: list[str], members: np.ndarray,
              parameters: dict[str, Any]) -> np.ndarray:
    """Each member's value of every operator-observed quantity: (N, q)."""
    if not operators:
        return np.empty((members.shape[0], 0))
    columns = []
    for entrypoint in operators.values():
        operator = _resolve(entrypoint)
        columns.append([_number(operator(dict(zip(names, m.tolist(), strict=True)), parameters), entrypoint)
                        for m in members])
    return np.asarray(columns, dtype=float).T.reshape(members.shape[0], len(operators))


def _error_std(where: str, value: float, parameters: dict[str, Any], name: str) -> float:
    std = _number(_resolve(where)(value, parameters), where)
    if std <= 0:
        raise ValueError(f"{where} gave the std {std} for {name}; an observation error is positive")
    return std


def advance(*, step: str, names: list[str], members: list[list[float]], parameters: dict[str, Any],
            forcing: list[dict[str, float]], dt: float, noise: list[list[list[float]]],
            operators: dict[str, str], errors: dict[str, list[str | float]], form: str = "mapping") -> dict[str, Any]:
    """Members after ``len(forcing)`` steps of ``dt`` seconds (``noise[k][i]`` added after step k to member
    i), each member's value of every operator-observed quantity, and the std of each error entrypoint's
    observation: {"members", "observed": {name: [per member]}, "errors": {name: std}}."""
    array = np.asarray(members, dtype=float).reshape(len(members), len(names))
    out = _step_members(_resolve(step), step, names, array, parameters, forcing, dt,
                        np.asarray(noise, dtype=float).reshape(len(forcing), len(members), len(names)), form)
    observed = _observed(operators, names, out, parameters)
    stds = {name: _error_std(str(pair[0]), float(pair[1]), parameters, name) for name, pair in errors.items()}
    return {"members": out.tolist(), "observed": {name: observed[:, j].tolist() for j, name in enumerate(operators)},
            "errors": stds}


def trial(*, step: str, names: list[str], parameters: dict[str, Any], forcing: dict[str, float], dt: float,
          state: list[float], form: str = "mapping") -> dict[str, Any]:
    """The step called once on a sample ``state`` as the cycles call it (``twin app validate``): {"problem":
    why its answer cannot serve as the new state, or None; "raised": whether the app's code raised}. Two
    members for the ensemble form (the state and the state doubled), one otherwise."""
    fn = _resolve(step)
    sample = np.asarray(state, dtype=float)
    members = np.stack([sample, 2.0 * sample]) if form == "ensemble" else sample[None, :]
    try:
        if form == "ensemble":
            answer = fn(members.copy(), dict(parameters), dict(forcing), dt)
        elif form == "array":
            answer = fn(sample.copy(), dict(parameters), dict(forcing), dt)
        else:
            answer = fn(dict(zip(names, sample.tolist(), strict=True)), dict(parameters), dict(forcing), dt)
    except Exception as exc:  # the app's code
        return {"problem": _failure("step", exc)["line"], "raised": True}
    try:
        if form == "ensemble":
            _checked_ensemble(answer, members.shape, step)
        elif form == "array":
            _checked_array(answer, len(names), step)
        else:
            _checked(answer, names, step)
    except (KeyError, TypeError, ValueError) as exc:
        return {"problem": str(exc.args[0]) if exc.args else str(exc), "raised": False}
    return {"problem": None, "raised": False}


class _Knobs:
    """The filter's tuning from its plain form (what ``Tuning.model_dump`` gives)."""

    def __init__(self, tuning: dict[str, Any]) -> None:
        self.inflation = self.steady = float(tuning.get("inflation", 1.0))
        spin_up = tuning.get("spin_up") or {}
        self.spin_cycles, self.spin_inflation = int(spin_up.get("cycles", 0)), float(spin_up.get("inflation", 1.0))
        self.additive = float(tuning.get("additive", 0.0))
        self.rotate = bool(tuning.get("rotate", False))
        self.radius: float | None = tuning.get("radius")
        self.period: float | None = tuning.get("period")
        self.threshold = float(tuning.get("threshold", 0.5))
        self.jitter = float(tuning.get("jitter", 1.0))
        self.background_std: float | None = tuning.get("background_std")

    def at(self, number: int) -> _Knobs:
        """Set for cycle ``number``: the spin-up inflation for the twin's first cycles, then the steady one."""
        self.inflation = self.spin_inflation if number <= self.spin_cycles else self.steady
        return self


def _failure(where: str, exc: BaseException) -> dict[str, Any]:
    line = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return {"where": where, "type": type(exc).__name__, "message": str(exc), "line": line[:2000]}


def cycles(*, step: str, names: list[str], parameters: dict[str, Any], dt: float, operators: dict[str, str],
           members: np.ndarray, log_weights: np.ndarray | None, method: str, tuning: dict[str, Any], seed: int,
           noise_std: np.ndarray, lower: np.ndarray, upper: np.ndarray, coords: np.ndarray,
           plan: Iterable[dict[str, Any]], form: str = "mapping", count: int | None = None,
           part: Callable[[dict[str, Any]], None] | None = None, part_seconds: float = PART_SECONDS,
           part_bytes: int = PART_BYTES) -> dict[str, Any]:
    """Run the cycles of ``plan`` in order, each from the previous one's analysis: the model steps (model noise
    from the generator (seed, number, 1)), the operators, the error functions, the filter (generator (seed,
    number, 2)) and the bounds. A cycle is {"number", "forcing": [per step], "columns", "values", "sd" (NaN
    where "errors" [[index, entrypoint, name]] gives it), "positions"}. Returns what the engine records of each
    cycle done: {"members": (K, N, n), "log_weights": [(N,) or None], "obs": (sum p, 3) background mean,
    expected spread and error std of each observation, "ess": [...], "error": None or where the first failed
    cycle failed (the cycles before it are returned)}.

    With ``part`` (the engine reads parts while this goes on), the cycles done are sent in parts of that form
    (``error`` None) about every ``part_seconds`` (sooner once its ensembles hold ``part_bytes``: a part that
    outgrows the worker's pipe waits for the engine to read it), and the parts shrink towards the end (a part is
    sent once it holds as many cycles as are left to run of the ``count`` planned), so that the engine, writing
    each part while the next ones run, has little left to write when the last cycle ends; the answer holds
    the cycles after the last part. The worker never waits for the engine between cycles; ``plan`` may still be
    arriving (an iterable: the engine plans the later cycles while the first ones run)."""
    from twinengine.twin_assimilation.analysis import Background, analyse

    fn = _resolve(step)
    knobs = _Knobs(tuning)
    noisy = bool(np.any(noise_std))  # without model error no generator is drawn from (nothing to add)
    bounded = bool(np.isfinite(lower).any() or np.isfinite(upper).any())
    current = np.asarray(members, dtype=float)
    weights = log_weights
    done = _Done(current.shape, len(names))
    error: dict[str, Any] | None = None
    since = time.perf_counter()
    count = len(plan) if count is None and isinstance(plan, list) else count
    for index, cycle in enumerate(plan):
        number = int(cycle["number"])
        try:
            noise = np.random.default_rng([seed, number, 1]).standard_normal(
                (len(cycle["forcing"]), *current.shape)) * noise_std if noisy else None
            background = _step_members(fn, step, names, current, parameters, cycle["forcing"], dt, noise, form)
            observed = _observed(operators, names, background, parameters)
            sd = np.array(cycle["sd"], dtype=float) if cycle["errors"] else np.asarray(cycle["sd"], dtype=float)
            for at, where, name in cycle["errors"]:
                sd[at] = _error_std(where, float(cycle["values"][at]), parameters, name)
        except Exception as exc:  # the app's code: the cycles before it are kept
            error = _failure("step", exc)
            break
        if sd.size:
            bg = Background(background, observed, np.asarray(cycle["values"], dtype=float), sd**2,
                            np.asarray(cycle["columns"], dtype=int), coords,
                            np.asarray(cycle["positions"], dtype=float), weights if method == "pf" else None)
            try:
                result = analyse(bg, method, knobs.at(number),
                                 functools.partial(np.random.default_rng, [seed, number, 2]))
            except Exception as exc:  # the filter's refusal (ValueError) names what is wrong
                error = _failure("filter", exc)
                break
            analysed, weights = result.members, result.log_weights
            done.obs.append((result.background_mean, result.expected, sd))
            done.ess.append(result.ess)
        else:
            analysed = background
            done.ess.append(None)
        current = np.clip(analysed, lower, upper) if bounded else analysed
        done.kept.append(current)
        done.weights.append(weights)
        left = None if count is None else count - index - 1
        if part is not None and left != 0 and (time.perf_counter() - since >= part_seconds
                                               or len(done.kept) * current.nbytes >= part_bytes
                                               or (left is not None and len(done.kept) >= left)):
            part(done.answer(None))
            done = _Done(current.shape, len(names))
            since = time.perf_counter()
    return done.answer(error)


class _Done:
    """The cycles run since the last part was sent."""

    def __init__(self, shape: tuple[int, ...], n: int) -> None:
        self.shape, self.n = shape, n
        self.kept: list[np.ndarray] = []
        self.weights: list[np.ndarray | None] = []
        self.obs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # a cycle's background mean, expected, std
        self.ess: list[float | None] = []

    def answer(self, error: dict[str, Any] | None) -> dict[str, Any]:
        """The cycles as the engine reads them: ``obs`` (sum p, 3), stacked once per part, not once a cycle."""
        obs = np.column_stack([np.concatenate(column) for column in zip(*self.obs, strict=True)]) if self.obs \
            else np.zeros((0, 3))
        return {"members": np.stack(self.kept) if self.kept else np.zeros((0, self.shape[0], self.n)),
                "log_weights": self.weights, "obs": obs, "ess": self.ess, "error": error}
