"""``twin app validate``'s trial of an assimilation step: the step is called once, in the app's sandboxed worker,
on a sample state as the cycles call it, and its answer is checked as theirs are. Importing the entrypoint finds
a step that cannot be called; only a call finds one that returns an incomplete state (which would otherwise
fail at the first cycle of the first twin).

The sample: each state entry midway between its declared minimum and maximum, or ``spread`` inside the one
bound it has, or ``spread`` itself; the parameters' defaults; every forcing 0; one step of ``dt``. An app whose
step raises on it is told so only when the defaults give every required parameter (otherwise the sample, not
the step, may be what is wrong).
"""

from __future__ import annotations

from twinengine.catalog.assimilation_spec import AssimilationSpec
from twinengine.catalog.manifest import Manifest
from twinengine.errors import Problem
from twinengine.twins.validation import apply_defaults
from twinengine.workers.process import WorkerCrashed, WorkerError
from twinengine.workers.protocol import ProtocolError
from twinengine.workers.service import AppWorkers

__all__ = ["sample_state", "step_problems"]

TRIAL = "twinengine.twin_assimilation.worker_side:trial"
LOC = "assimilation.step.entrypoint"


def sample_state(manifest: Manifest, spec: AssimilationSpec) -> list[float]:
    """A plausible value of every state entry, from its declared bounds and the first ensemble's spread."""
    spread = spec.per_entry(spec.spread, 1.0)
    out = []
    for i, entry in enumerate(spec.state):
        declared = manifest.state[entry.split("[", 1)[0]]
        low, high = declared.minimum, declared.maximum
        if low is not None and high is not None:
            out.append((low + high) / 2.0)
        elif low is not None:
            out.append(low + spread[i])
        elif high is not None:
            out.append(high - spread[i])
        else:
            out.append(spread[i])
    return out


def step_problems(app: AppWorkers, manifest: Manifest) -> list[Problem]:
    """The problem of the app's step called once on a sample state (none when its answer would serve)."""
    spec = manifest.assimilation
    if spec is None:
        return []
    state = sample_state(manifest, spec)
    parameters = apply_defaults(manifest.parameters, {})
    required = manifest.parameters.get("required") or []
    complete = all(name in parameters for name in required)
    forcing = dict.fromkeys(spec.step.forcing, 0.0)
    try:
        got = app.process(TRIAL, {"step": spec.step.entrypoint, "names": list(spec.state),
                                  "parameters": parameters, "forcing": forcing,
                                  "dt": spec.step.dt.total_seconds(), "state": state, "form": spec.step.state_form})
    except WorkerError as exc:
        return [Problem(LOC, f"calling the step once failed: {exc.remote}")]
    except (WorkerCrashed, ProtocolError) as exc:
        return [Problem(LOC, f"calling the step once failed: the app's worker failed: {exc}")]
    problem = got.get("problem") if isinstance(got, dict) else "the worker's answer is malformed"
    if problem is None or (got.get("raised") and not complete):
        return []
    shown = ", ".join(f"{name}={value:g}" for name, value in list(zip(spec.state, state, strict=True))[:4])
    more = f" and {len(state) - 4} more" if len(state) > 4 else ""
    return [Problem(LOC, f"{spec.step.entrypoint} called once as the cycles call it (state_form "
                         f"{spec.step.state_form}; a sample state {shown}{more}, the parameters' defaults, every "
                         f"forcing 0, dt {spec.step.dt.total_seconds():g} s): {problem}")]
