"""The relationships chapter: the reaches of a river, linked upstream to downstream by ``flows_into``, and
what lies downstream of the first one within three hops, with each reach's current level."""

from __future__ import annotations

import itertools
from datetime import timedelta

from twinengine.client import Client
from twinengine.demo.context import DemoContext
from twinengine.errors import Conflict, TwinNotFound

__all__ = ["river_network"]

REACHES = [f"reach-{i:02d}" for i in range(1, 6)]
HOPS = 3


def _ensure_reaches(ctx: DemoContext, uma: Client) -> list[str]:
    """The reaches the fleet chapter made; any missing are created here (with a level), so this chapter also
    runs alone. Returns the names it created."""
    lon, lat = ctx.app_package.GAUGE
    created = []
    for i, name in enumerate(REACHES):
        try:
            uma.get_twin(name)
        except TwinNotFound:
            params = {"station": f"RR-{i + 1:02d}", "longitude": lon + 0.05 * i, "latitude": lat - 0.03 * i}
            uma.create_twin(ctx.facts["app"], name, params, description=f"Reach {i + 1} of the river (simulated)")
            uma.report(name, level=round(1.2 + 0.15 * i, 2), message="first reading")
            created.append(name)
    return created


def river_network(ctx: DemoContext) -> None:
    uma = ctx.client("uma")
    created = _ensure_reaches(ctx, uma)
    linked = []
    for upstream, downstream in itertools.pairwise(REACHES):
        try:
            row = uma.link(upstream, "flows_into", downstream)
            linked.append(row)
        except Conflict:  # a data dir the demo ran on before: the river is linked already
            continue
    ctx.say(f"uma linked the river: {' → '.join(REACHES)} (flows_into, acyclic, one downstream reach each)"
            + (f"; created {', '.join(created)} first" if created else ""))
    page = uma.related(REACHES[0], type="flows_into", depth=HOPS, state=True)
    rows = []
    for twin in page.items:
        level = twin.state.reported.get("level") if twin.state else None
        text = f"{level.value:.2f} {level.unit}" if level else "no level yet"
        rows.append({"name": twin.name, "hops": twin.depth, "level": level.value if level else None})
        ctx.say(f"  downstream of {REACHES[0]}, {twin.depth} hop{'s' * (twin.depth > 1)}: {twin.name}, level {text}")
    if linked:  # the graph is versioned: before these links, nothing was downstream
        before = uma.related(REACHES[0], type="flows_into", depth=HOPS, at=linked[0].valid_from - timedelta(seconds=1))
        ctx.say(f"  and as of just before the links were made: {len(before.items)} reaches downstream")
    ctx.facts["river_network"] = {"reaches": REACHES, "downstream": rows}
    ctx.summary.append(("river network", f"{len(REACHES)} reaches linked by flows_into; {len(rows)} downstream of "
                                         f"{REACHES[0]} within {HOPS} hops (`twin related {REACHES[0]} --type "
                                         f"flows_into --depth {HOPS} --state`)"))
