"""Functions the engine runs on arrival of gauge records: turn a reading into the twin's reported state."""

from __future__ import annotations

from typing import Any

from river_reach.catchment import Catchment, RatingCurve
from twinengine.app import FunctionContext


def gauge_to_state(ctx: FunctionContext, records: list[dict[str, Any]]) -> None:
    """One gauge reading → rain, level, discharge (through the twin's rating curve), the storage that discharge
    implies, and the alert flag.

    The alert compares the level with the threshold users desired; without one there is no alert. The storage
    is written as ``storage_from_level``, never as ``storage``: that one is the assimilation's analysis, and one
    property keeps one writer. A forecast starts from the newer of the two (twinapp.yaml's ``initial_state``).
    """
    p = ctx.parameters
    rating = RatingCurve(p.get("rating_a", 18.0), p.get("rating_b", 1.6), p.get("datum_m", 0.2))
    catchment = Catchment.from_parameters(p)
    desired = ctx.state.desired.get("alert_threshold")
    threshold = float(desired.value) if desired is not None else None
    for record in records:
        level = record.get("level")
        values: dict[str, Any] = {}
        if record.get("rain") is not None:
            values["rain"] = max(float(record["rain"]), 0.0)
        if level is not None:
            values["level"] = float(level)
            values["discharge"] = round(rating.discharge(float(level)), 4)
            values["storage_from_level"] = round(catchment.storage_for(values["discharge"]), 3)
            values["alert"] = threshold is not None and float(level) > threshold
        if values:
            ctx.update_state(timestamp=record["time"], message=f"gauge {record.get('station')}", **values)
