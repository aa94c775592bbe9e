"""The data lake's chapter: store the river-reach twin's data on two endpoints under a replication rule, watch
the rule converge, and find the items again through the STAC API with pystac-client. The twin's data is kept as
datasets of the twin: it keeps the twin's grants in the lake, in STAC and as EDR collections.

``store_result`` is what later chapters call to keep their outputs (the workflows chapter's forecasts) in the
same replicated container; it returns the file's ``scope:name``.
"""

from __future__ import annotations

import csv
import time
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from twinengine.client import Client
from twinengine.daemons import lake_conveyor, lake_judge, lake_reaper
from twinengine.demo.context import DemoContext
from twinengine.errors import DidConflict, DuplicateRule
from twinengine.lake.collections import collection_id

__all__ = ["BBOX", "CONTAINER", "SCOPE", "keep_for_twin", "lake_find", "lake_store", "store_result"]

SCOPE = "river-reach"
CONTAINER = f"{SCOPE}:observations"
BBOX = (7.0, 46.0, 8.5, 47.0)  # the simulated catchment's box (degrees)
MEDIA = {".csv": "text/csv", ".nc": "application/x-netcdf", ".png": "image/png", ".json": "application/json"}


def _provider(ctx: DemoContext) -> Client:
    if "pat" not in ctx.tokens:
        ctx.tokens["pat"] = ctx.client("admin").create_token("pat", "provider", expires_in="1d").token
        ctx.say("admin issued a token to pat (provider), who runs the storage")
    return ctx.client("pat")


def _settle(ctx: DemoContext, rule_id: str, timeout: float = 120.0) -> Any:
    """Run the judge, conveyor and reaper passes (what ``twin serve`` runs in the background) until the rule is
    no longer replicating; the bar shows the share of its locks that are OK."""
    runtime, uma = ctx.runtime, ctx.client("uma")
    advance = ctx.track("replicating", 100)
    shown, deadline = 0, time.monotonic() + timeout
    rule = uma.lake.rule(rule_id)
    while time.monotonic() < deadline:
        with runtime.db.session() as session:
            lake_judge.run_once(session, tuning=runtime.lake.tuning)
        lake_conveyor.run_once(runtime.db, runtime.lake, limit=8)
        lake_reaper.run_once(runtime.db, runtime.lake)
        rule = uma.lake.rule(rule_id)
        advance(int(rule.percent) - shown)
        shown = int(rule.percent)
        if rule.state.value != "REPLICATING":
            break
    return rule


def store_result(ctx: DemoContext, path: Path, *, name: str, start: datetime, end: datetime,
                 meta: dict[str, Any] | None = None, title: str | None = None) -> str:
    """Keep ``path`` as dataset ``river-reach:<name>`` (one file) in the replicated observations container, so
    the rule places its second copy and STAC finds it. The data is derived from the twin, so the dataset is the
    twin's: those who may read the twin read it (and only they), as they read its state. Returns the file's DID."""
    uma, twin = ctx.client("uma"), ctx.facts.get("twin_name")
    dataset = f"{SCOPE}:{name}"
    uma.lake.add_dataset(dataset, bbox=BBOX, start_time=start.isoformat(), end_time=end.isoformat(),
                         meta={"title": title or name, "twin": twin, **(meta or {})}, twin=twin)
    did = f"{dataset}/{path.name}"
    uma.lake.upload(path, did, endpoint="site-a", dataset=dataset, media_type=MEDIA.get(path.suffix))
    uma.lake.attach(CONTAINER, [dataset])
    return did


def keep_for_twin(ctx: DemoContext, path: Path, *, scope: str, name: str, twin: str, title: str) -> str:
    """Keep ``path``, data derived from ``twin``, as the twin's dataset ``scope:<twin>-<name>`` (one file) on
    site-a: those who may read the twin read it, nobody else, and in a collection format it is the collection
    ``scope.<twin>-<name>`` (never a file in the engine-wide collections folder, which every role reads).
    Returns the collection's id."""
    uma = ctx.client("uma")
    dataset = f"{scope}:{twin}-{name}"
    uma.lake.add_dataset(dataset, meta={"title": title, "twin": twin}, twin=twin)
    uma.lake.upload(path, f"{dataset}/{path.name}", endpoint="site-a", dataset=dataset,
                    media_type=MEDIA.get(path.suffix))
    return collection_id(scope, f"{twin}-{name}")


def _level_csv(ctx: DemoContext, folder: Path) -> tuple[Path, datetime, datetime, int]:
    uma, name = ctx.client("uma"), ctx.facts["twin_name"]
    levels = uma.history(name, "level", limit=100_000).items
    rain = {v.timestamp: v.value for v in uma.history(name, "rain", limit=100_000).items}
    path = folder / f"{name}-levels.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["time", "level_m", "rain_mm_h"])
        for value in levels:
            writer.writerow([value.timestamp.isoformat(), value.value, rain.get(value.timestamp)])
    return path, levels[0].timestamp, levels[-1].timestamp, len(levels)


def _rain_field(ctx: DemoContext, folder: Path) -> tuple[Path, datetime, datetime]:
    """A small gridded rainfall field over the catchment: the gauge's rain with a smooth spatial pattern."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    uma, name = ctx.client("uma"), ctx.facts["twin_name"]
    rain = uma.history(name, "rain", limit=100_000).items
    times = pd.to_datetime([v.timestamp.replace(tzinfo=None) for v in rain])
    lat, lon = np.linspace(BBOX[1], BBOX[3], 9), np.linspace(BBOX[0], BBOX[2], 13)
    pattern = 0.6 + 0.8 * np.exp(-((lat[:, None] - 46.5) ** 2 / 0.08 + (lon[None, :] - 7.6) ** 2 / 0.3))
    field = np.array([float(v.value) for v in rain], dtype="float32")[:, None, None] * pattern[None, :, :]
    ds = xr.Dataset({"rain": (("time", "lat", "lon"), field.astype("float32"),
                              {"units": "mm h-1", "long_name": "rainfall rate", "standard_name": "rainfall_rate"})},
                    coords={"time": times, "lat": lat, "lon": lon},
                    attrs={"title": f"Rainfall over the {name} catchment", "source": "twinengine demo"})
    path = folder / f"{name}-rain.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    return path, rain[0].timestamp, rain[-1].timestamp


def lake_store(ctx: DemoContext) -> None:
    """Two endpoints (sites A and B), the twin's level history and a rainfall field uploaded to site A, and a rule
    keeping two copies of everything in the container; the judge and conveyor make it so."""
    pat, uma = _provider(ctx), ctx.client("uma")
    root = ctx.runtime.data_dir / "lake"
    existing = {e.name for e in pat.lake.endpoints().items}
    for name, site in (("site-a", "A"), ("site-b", "B")):
        if name not in existing:
            pat.lake.add_endpoint(name, "file", str(root / name), attributes={"site": site, "tier": "1",
                                                                              "type": "disk"})
    ctx.say("pat added storage endpoints site-a (site=A) and site-b (site=B), both tier=1 disks")
    with suppress(DidConflict):  # a second demo run in the same data dir finds the container there already
        uma.lake.add_dataset(CONTAINER, container=True, meta={
            "title": "River reach observations", "license": "CC-BY-4.0", "keywords": ["river", "gauge", "rain"],
            "description": "Level histories and rainfall fields of river-reach twins, kept in two copies."})
    staging = ctx.runtime.data_dir / "exports"
    staging.mkdir(parents=True, exist_ok=True)
    name = ctx.facts["twin_name"]
    csv_path, first, last, rows = _level_csv(ctx, staging)
    levels = store_result(ctx, csv_path, name=f"{name}-levels", start=first, end=last,
                          meta={"kind": "observations", "rows": rows}, title=f"Level history of {name}")
    nc_path, start, end = _rain_field(ctx, staging)
    rain = store_result(ctx, nc_path, name=f"{name}-rain", start=start, end=end, meta={"kind": "rainfall"},
                        title=f"Rainfall field over {name}")
    ctx.say(f"uma uploaded {levels} ({rows} rows) and {rain} to site-a, checksummed while they streamed, as "
            f"datasets of {name}: whoever may read the twin reads them, nobody else")
    try:
        rule_id = uma.lake.add_rule(CONTAINER, copies=2, endpoints="tier=1&type=disk", comment="two sites, always").id
    except DuplicateRule as again:  # a second run in the same data dir: the first run's rule keeps the copies
        rule_id = again.details[0]["rule"]
    started = time.perf_counter()
    rule = _settle(ctx, rule_id)
    seconds = time.perf_counter() - started
    files = [uma.lake.get(levels), uma.lake.get(rain)]
    copies = {f.did: sorted(r.endpoint for r in f.replicas if r.state.value == "AVAILABLE") for f in files}
    ctx.facts["lake"] = {"rule": rule.id, "rule_state": rule.state.value, "locks_ok": rule.locks_ok,
                         "files": {f.did: {"sha256": f.sha256, "adler32": f.adler32, "bytes": f.bytes,
                                           "replicas": copies[f.did]} for f in files},
                         "collection_ids": [c for c in ctx.runtime.collections.ids() if c.startswith(SCOPE)]}
    ctx.say(f"rule {rule.id[:8]} (2 copies on 'tier=1&type=disk') is {rule.state.value} after {seconds:.1f} s: "
            f"{rule.locks_ok} locks OK, every file on {', '.join(sorted({e for c in copies.values() for e in c}))}")
    ctx.summary.append(("data lake", f"{len(files)} files in {CONTAINER}, rule {rule.state.value} "
                                     f"({rule.locks_ok} copies on site-a and site-b, verified by sha256)"))


def lake_find(ctx: DemoContext) -> None:
    """Find the twin's datasets again with pystac-client, as any STAC user would."""
    from pystac_client import Client as StacClient

    name = ctx.facts["twin_name"]
    stac = StacClient.open(f"{ctx.url}/stac/", headers={"Authorization": f"Bearer {ctx.tokens['uma']}"})
    start = ctx.options.start
    found = list(stac.search(collections=["observations"], bbox=list(BBOX), max_items=100,
                             datetime=f"{start.isoformat()}/{(start + timedelta(hours=ctx.options.hours)).isoformat()}",
                             filter=f"twin = '{name}'", filter_lang="cql2-text").items())
    rows = []
    for item in sorted(found, key=lambda i: i.id):
        for key, asset in item.assets.items():
            rows.append({"item": item.id, "asset": key, "checksum": asset.extra_fields.get("file:checksum"),
                         "alternates": sorted(asset.extra_fields.get("alternate", {})),
                         "cube": "cube:dimensions" in item.properties})
    ctx.facts.setdefault("lake", {})["stac_items"] = rows
    described = ", ".join(f"{r['item']}/{r['asset']}" + (" (datacube)" if r["cube"] else "") for r in rows)
    ctx.say(f"pystac-client found {len(found)} items of {name} in /stac/ (bbox, time and a CQL2 filter): "
            f"{described}; each asset has its file:checksum and an alternate href on site-b")
    ctx.summary.append(("STAC", f"{len(found)} items found with pystac-client at {ctx.url}/stac/"))
