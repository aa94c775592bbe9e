"""A collection's field drawn for the map (EDR cube, ``f=png``): the variable's fixed legend and, when no time
is named, the time the map should open on.

A map that opens on a dry hour with nothing drawn tells its reader nothing; without ``datetime`` the engine
draws the most informative step (``render.informative_time``: the peak of a quantity with a floor, else the
latest step with data) and names it in ``X-Datetime``, so the portal's slider moves there.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from twinengine.access.legend import legend_for
from twinengine.access.query import TimeFilter
from twinengine.access.render import RenderedField, informative_time, render_png
from twinengine.access.service import DataAccess, Query, run_query
from twinengine.auth.principal import Principal
from twinengine.errors import InvalidParameterValue

__all__ = ["SCAN_VALUES", "draw_field"]

SCAN_VALUES = 1_000_000  # values read at most to find the peak; a larger cube opens on its latest step


def _instant(text: str) -> TimeFilter:
    when = np.datetime64(text.rstrip("Z"), "ns")
    return TimeFilter(when, when, text)


def _latest(access: DataAccess, collection_id: str, name: str) -> TimeFilter | None:
    axes = access.planner(collection_id).axes(name)
    if axes is None or axes.ts is None or not axes.ts.size:
        return None
    latest = axes.ts.max()
    return TimeFilter(latest, latest, str(np.datetime_as_string(latest, unit="s")) + "Z")


def draw_field(access: DataAccess, *, principal: Principal, collection_id: str, query: Query,
               scale: tuple[float, float] | None) -> RenderedField:
    """The cube ``query`` (one parameter) drawn on the variable's legend; without ``datetime``, at the time the
    map should open on."""
    if query.parameters is None or len(query.parameters) != 1:
        raise InvalidParameterValue("parameter-name", "png draws one parameter: name it in parameter-name")
    name = query.parameters[0]
    ds = access.source.open(collection_id)
    attrs = dict(ds[name].attrs) if name in ds.variables else {}
    if query.datetime is None and query.instance is None:
        whole = run_query(access, principal=principal, collection_id=collection_id, query=query, deferred=True)
        steps = whole.coverages[0].axes.get("t") if whole.coverages else None
        if steps is not None and steps.size > 1:
            cells = int(np.prod([v.size for v in whole.coverages[0].ranges.values()]))
            if cells <= SCAN_VALUES:
                chosen = informative_time(whole, floor=legend_for(name, attrs).floor)
                instant = _instant(chosen) if chosen is not None else None
            else:
                instant = _latest(access, collection_id, name)
            if instant is not None:
                query = replace(query, datetime=instant)
        else:
            return render_png(whole, scale=scale, attrs=attrs)
    extraction = run_query(access, principal=principal, collection_id=collection_id, query=query, deferred=True)
    return render_png(extraction, scale=scale, attrs=attrs)
