"""The ``echo`` process: what OGC's executable test suite executes, as pygeoapi describes it.

Its description is pygeoapi's ``echo`` (inputs ``echoInput`` and ``pause``, output ``echoOutput``) without the
enumerations of values, which the test suite's own requests do not keep to (it sends ``teststring``). It runs as
an engine process (namespace ``ogc``) in a run like any other: ``pause`` waits that many seconds first, so a job
can be seen before its results exist.
"""

from __future__ import annotations

import time
from typing import Any

from twinengine.errors import ProcessParameterInvalid

__all__ = ["ECHO", "ECHO_SPEC", "MAX_PAUSE", "echo"]

MAX_PAUSE = 60.0

ECHO: dict[str, Any] = {
    "id": "echo",
    "title": "Echo Process",
    "description": "Testable Echo process: echoInput comes back as echoOutput, after pause seconds.",
    "version": "1.0.0",
    "jobControlOptions": ["sync-execute", "async-execute", "dismiss"],
    "outputTransmission": ["value", "reference"],
    "inputs": {
        "echoInput": {"title": "Echo value", "description": "Value to be echoed back.", "minOccurs": 1,
                      "maxOccurs": 1, "schema": {"type": "string"}},
        "pause": {"title": "Pause value", "description": "Seconds to wait before answering.", "minOccurs": 0,
                  "maxOccurs": 1, "schema": {"type": "number", "minimum": 0, "maximum": MAX_PAUSE}},
    },
    "outputs": {"echoOutput": {"title": "Echoed value", "schema": {"type": "string"}}},
}

ECHO_SPEC: dict[str, Any] = {
    "id": "echo",
    "summary": "Echo a value (OGC API - Processes' test process)",
    "description": "Returns `{echoOutput: echoInput}`, after waiting `pause` seconds.",
    "categories": ["ogc"],
    "parameters": [
        {"name": "echoInput", "description": "Value to be echoed back.", "schema": {"type": "string"}},
        {"name": "pause", "description": "Seconds to wait first.", "optional": True, "default": None,
         "schema": [{"type": "number", "minimum": 0, "maximum": MAX_PAUSE}, {"type": "null"}]},
    ],
    "returns": {"description": "The outputs, by id.", "schema": {"type": "object"}},
}


def echo(echoInput: Any, pause: Any = None) -> dict[str, Any]:
    if not isinstance(echoInput, str):
        raise ProcessParameterInvalid("echoInput: a string is required")
    if pause is not None:
        if isinstance(pause, bool) or not isinstance(pause, int | float) or not 0 <= pause <= MAX_PAUSE:
            raise ProcessParameterInvalid(f"pause: a number of seconds from 0 to {MAX_PAUSE:g} is required")
        _wait(float(pause))
    return {"echoOutput": echoInput}


def _wait(seconds: float) -> None:
    """Sleep, stopping early when the run is canceled (checked every tenth of a second)."""
    from twinengine.workflows.context import _CURRENT

    ctx = _CURRENT.get()
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(0.1, left))
        if ctx is not None and ctx.compute_progress is not None:
            ctx.compute_progress(0, 1)  # raises Canceled once the run is canceled
