"""What a user without a grant learns from EDR about a twin's collection: the answers for the twin's collection
and for an id nobody knows, side by side on one ``twin serve``, and what the owner's answer costs beside them.

``uma`` owns a twin and keeps its gauge readings (``--stations`` stations x ``--hours`` hourly rows) as a
dataset of the twin in the lake (the collection ``reach.gauges``), beside ``--others`` collections of her own;
``xb1`` holds no grant. In each of ``--rounds`` rounds, in turns: ``xb1`` asks the twin's collection and an
unknown id (``/edr/collections/{id}`` and ``/locations/RR-01``), ``uma`` asks her own. Printed per route:
the status codes, whether the two refusals are the same bytes but for the id, and the median time of each
with the ratio hidden / unknown (the store lookups that decide a grant are what may differ).

Usage: python bench/hidden_collections.py [--rounds 200] [--others 20] [--stations 5] [--hours 240]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx2 as httpx
import yaml
from served import TwinServe  # beside this script

from twinengine.bootstrap import prepare_store
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.runtime import Runtime

HIDDEN, UNKNOWN = "reach.gauges", "reach.nothing-here"


def app_folder(root: Path) -> Path:
    folder = root / "gauge-app"
    (folder / "gauge_app").mkdir(parents=True)
    (folder / "gauge_app" / "__init__.py").write_text('"""A twin that only holds a level."""\n')
    (folder / "twinapp.yaml").write_text(yaml.safe_dump({
        "manifest_version": 1, "name": "gauge-app", "version": "1.0.0", "title": "Gauge", "description": "A gauge.",
        "domain": "testing", "keywords": ["bench"], "authors": [{"name": "Bench"}], "license": "MIT",
        "parameters": {"type": "object", "properties": {}}, "state": {"level": {"type": "number", "unit": "m"}}}))
    return folder


def table(stations: int, hours: int) -> bytes:
    rows = ["station,lon,lat,time,level [m]"]
    for s in range(stations):
        rows += [f"RR-{s + 1:02d},{8 + s / 10},{46 + s / 20},2026-03-{1 + h // 24:02d}T{h % 24:02d}:00:00Z,{h / 100}"
                 for h in range(hours)]
    return ("\n".join(rows) + "\n").encode()


def timed(http: httpx.Client, path: str) -> tuple[float, int, bytes]:
    start = time.perf_counter()
    answer = http.get(path)
    return time.perf_counter() - start, answer.status_code, answer.content


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--others", type=int, default=20)
    parser.add_argument("--stations", type=int, default=5)
    parser.add_argument("--hours", type=int, default=240)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(data_dir=root / "data")
        runtime = Runtime.from_settings(settings)
        try:
            admin_token = prepare_store(runtime.db, runtime.issuer, settings)
        finally:
            runtime.close()
        with TwinServe(settings) as url, Client(url, admin_token) as admin:
            tokens = {who: admin.create_token(who, role).token
                      for who, role in (("dev", "developer"), ("uma", "user"), ("xb1", "user"), ("pat", "provider"))}
            with Client(url, tokens["pat"]) as pat:
                pat.lake.add_endpoint("disk", "file", str(settings.data_dir / "lake" / "disk"))
            with Client(url, tokens["dev"]) as dev:
                dev.publish_app(app_folder(root))
            data = root / "gauges.csv"
            data.write_bytes(table(args.stations, args.hours))
            with Client(url, tokens["uma"]) as uma:
                uma.create_twin("gauge-app", "reach", {})
                uma.lake.add_dataset("reach:gauges", twin="reach")
                uma.lake.upload(data, "reach:gauges/gauges.csv", endpoint="disk", dataset="reach:gauges")
                for i in range(args.others):
                    uma.lake.add_dataset(f"uma:own-{i}")
                    uma.lake.upload(data, f"uma:own-{i}/gauges.csv", endpoint="disk", dataset=f"uma:own-{i}")
            clients = {who: httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens[who]}"}, timeout=60)
                       for who in ("uma", "xb1")}
            routes = {"collection": "/edr/collections/{cid}", "location": "/edr/collections/{cid}/locations/RR-01"}
            times: dict[tuple[str, str], list[float]] = {(r, k): [] for r in routes for k in ("hidden", "unknown",
                                                                                              "owner")}
            seen: dict[tuple[str, str], tuple[int, bytes]] = {}
            try:
                for path in routes.values():  # one of each first: nothing is timed cold
                    for who, cid in (("xb1", HIDDEN), ("xb1", UNKNOWN), ("uma", HIDDEN)):
                        clients[who].get(path.format(cid=cid))
                for _ in range(args.rounds):
                    for name, path in routes.items():
                        for kind, who, cid in (("hidden", "xb1", HIDDEN), ("unknown", "xb1", UNKNOWN),
                                               ("owner", "uma", HIDDEN)):
                            seconds, status, body = timed(clients[who], path.format(cid=cid))
                            times[(name, kind)].append(seconds)
                            seen[(name, kind)] = (status, body)
            finally:
                for http in clients.values():
                    http.close()
    print(f"{args.rounds} rounds, a twin's station table of {args.stations} x {args.hours} rows beside "
          f"{args.others} collections of the owner's; medians:")
    for name in routes:
        hidden, unknown, owner = (statistics.median(times[(name, k)]) for k in ("hidden", "unknown", "owner"))
        same = seen[(name, "hidden")][1].replace(HIDDEN.encode(), UNKNOWN.encode()) == seen[(name, "unknown")][1]
        print(f"  {name:<10} without a grant: {seen[(name, 'hidden')][0]} {hidden * 1000:6.2f} ms; unknown id: "
              f"{seen[(name, 'unknown')][0]} {unknown * 1000:6.2f} ms (x{hidden / unknown:.2f}); same bytes but "
              f"the id: {same}; the owner: {seen[(name, 'owner')][0]} {owner * 1000:6.2f} ms")


if __name__ == "__main__":
    main()
