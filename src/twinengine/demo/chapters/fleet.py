"""The fleet chapter: five reaches along the river, tagged and placed, report their levels; one request
gives the fleet's mean level, another the reaches above their own alert level, a third the reaches whose
gauge has gone quiet (their level older than the app's gap check allows)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from twinengine.demo.context import DemoContext
from twinengine.errors import TwinNameTaken

__all__ = ["river_fleet"]

REACHES = 5
TAG = "demo-river"
# Levels and alert thresholds (m) of reach-01..05, from the mountains to the plain.
LEVELS = (1.2, 1.9, 2.4, 1.7, 2.9)
THRESHOLDS = (1.8, 1.8, 2.6, 2.0, 2.5)
QUIET = 3  # reach-04's gauge last reported an hour ago


def river_fleet(ctx: DemoContext) -> None:
    uma, app = ctx.client("uma"), ctx.facts["app"]
    lon, lat = ctx.app_package.GAUGE
    names = []
    for i in range(REACHES):
        name = f"reach-{i + 1:02d}"
        stretch = "upper" if i < 2 else "lower"
        where = {"type": "Point", "coordinates": [round(lon + 0.04 * i, 4), round(lat - 0.03 * i, 4)]}
        try:
            uma.create_twin(app, name, {"station": f"RR-{i + 11:02d}"}, tags=[TAG, stretch], location=where,
                            description=f"Reach {i + 1} of the demo river")
        except TwinNameTaken:  # an engine kept from an earlier demo: place the reach again
            uma.update_twin(name, tags=[TAG, stretch], location=where)
        uma.desire(name, alert_threshold=THRESHOLDS[i])
        uma.report(name, level=LEVELS[i], message="gauge reading",
                   timestamp=datetime.now(UTC) - timedelta(hours=1) if i == QUIET else None)
        names.append(name)
    ctx.say(f"uma created {names[0]}..{names[-1]} along the river, tagged {TAG} (upper/lower), each reporting "
            "its level")
    (whole,) = uma.fleet_aggregate("level", tags=[TAG], quantiles=[0.5]).groups
    by_stretch = {g.key: g.mean for g in uma.fleet_aggregate("level", tags=[TAG], by="tag").groups
                  if g.key != TAG}
    above = [t.name for t in uma.iter_fleet(tags=[TAG], state=["level>@desired.alert_threshold"])]
    ctx.say(f"fleet mean level {whole.mean:.2f} m over {whole.count} reaches (median {whole.quantiles['0.5']:.2f} m; "
            + ", ".join(f"{k} {v:.2f} m" for k, v in sorted(by_stretch.items()) if v is not None) + ")")
    ctx.say(f"above their own alert level (one query, level>@desired.alert_threshold): {', '.join(above) or 'none'}")
    quiet = [t.name for t in uma.iter_fleet(tags=[TAG], stale=["level"])]
    ctx.say(f"gone quiet (one query, stale=level: no level within the app's gap check, 15 min + 5 min): "
            f"{', '.join(quiet) or 'none'}")
    ctx.facts["fleet"] = {"twins": names, "mean_level": whole.mean, "above_alert": above, "stale_level": quiet}
    ctx.summary.append(("fleet", f"{whole.count} reaches, mean level {whole.mean:.2f} m, above alert: "
                                 f"{', '.join(above) or 'none'}; level stale: {', '.join(quiet) or 'none'} "
                                 f"(`twin list --stale level`)"))
