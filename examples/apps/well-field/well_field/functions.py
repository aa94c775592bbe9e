"""Functions the engine runs on arrival of well readings: each reading becomes its well's reported state."""

from __future__ import annotations

from typing import Any

from twinengine.app import FunctionContext


def readings_to_state(ctx: FunctionContext, records: list[dict[str, Any]]) -> None:
    """One reading → ``head[<well>]`` (and ``pumping[<well>]``): the keyed properties of that well only."""
    for record in records:
        well = record.get("well")
        if not well:
            continue
        values: dict[str, Any] = {}
        if record.get("head") is not None:
            values[f"head[{well}]"] = float(record["head"])
        if record.get("pumping") is not None:
            values[f"pumping[{well}]"] = bool(record["pumping"])
        if values:
            ctx.update_state(timestamp=record["time"], message=f"well {well}", **values)
