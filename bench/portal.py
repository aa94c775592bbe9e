"""The portal in a real browser (Debian's chromium through Playwright), each figure beside a baseline
measured in the same run, in the same tab, taking turns round by round:

- first page interactive: from navigation start to the page built from the API (``twin:ready``), for the
  twins list (each twin at a glance), for a twin's page (state, a history plot, forks, grants) and for its app's
  flood view and that view's print-ready report, beside a blank page: the navigation of ``/health`` to its load
  event; warm (median of the rounds) and cold: each page's first load since the engine started (once
  ``/health`` names nothing warming), the browser's cache off and no page of the portal loaded before (the
  session is opened through the API);
- a history plot of 100,000 points: read through the API (``/properties/level/history?limit=100000``)
  and drawn with the portal's own plot module (uPlot on a canvas) until the next frame is painted,
  beside drawing an empty plot;
- a map layer of a 1,000 x 1,000 grid: the EDR cube drawn by the engine (``f=png``), fetched (the browser's
  cache off, so every round asks the engine; the engine's decoded-chunk cache is warm after the first
  round, as it is in service), decoded and laid on the Leaflet map until the image has loaded, beside the
  same for a 10 x 10 grid.

With ``--demo DIR`` (the data folder ``twin demo --data-dir DIR`` left behind; served from a copy) it measures
instead what the map asks first on the demo's data: ``GET /edr/collections`` as the demo's user and as the
admin (who sees every lake file, the unreadable ones included), cold (the first call after start, once
``/health`` names nothing warming: the engine opens the listing in the background) and warm (median),
beside the EDR landing page (same authentication, same JSON path) in the same rounds, and the map page ready
(``twin:ready``, its default layer drawn) beside a blank page, warm and cold (as above); then every other page
of the portal on the demo's twins, cold (each page's first load, the browser's cache off) and warm (median),
as the demo's user and, for the admin pages, as the admin.

The data (a twin with 100,000 reported levels, written through the twins service in one process because
100,000 HTTP writes would take minutes, and the two gridded collections) is built once under ``--dir``
and reused; the engine runs as ``twin serve`` on loopback.

Usage: python bench/portal.py [--repeat 7] [--dir ~/.cache/twinengine-bench/portal] [--demo DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers import RIVER_REACH, free_port, serve_engine  # noqa: E402
from twinengine.auth.principal import SYSTEM, Principal, Role  # noqa: E402
from twinengine.auth.service import issue_token  # noqa: E402
from twinengine.client import Client  # noqa: E402
from twinengine.config import Settings  # noqa: E402
from twinengine.errors import TwinNotFound  # noqa: E402
from twinengine.runtime import Runtime  # noqa: E402
from twinengine.twins import service as twins  # noqa: E402
from twinengine.twins.schemas import PropertyWrite  # noqa: E402

POINTS = 100_000
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def grid(path: Path, n: int, times: int = 3) -> None:
    lat = np.linspace(35.0, 60.0, n)
    lon = np.linspace(-10.0, 25.0, n)
    rng = np.random.default_rng(n)
    values = rng.gamma(0.8, 2.0, (times, n, n)).astype("float32")
    ds = xr.Dataset({"rain": (("time", "lat", "lon"), values, {"units": "mm h-1"})},
                    coords={"time": np.datetime64("2026-03-01T00", "ns") + np.arange(times) * np.timedelta64(1, "h"),
                            "lat": ("lat", lat, {"units": "degrees_north"}),
                            "lon": ("lon", lon, {"units": "degrees_east"})})
    chunk = min(n, 500)
    ds.to_zarr(path, mode="w", consolidated=False, encoding={"rain": {"chunks": (1, chunk, chunk)}})


def build(data_dir: Path) -> None:
    """A twin with ``POINTS`` reported levels and two collections (1,000² and 10²), once (resumed if cut off)."""
    if (data_dir / "built").is_file():
        return
    from fastapi.testclient import TestClient

    from twinengine.api import create_app

    runtime = Runtime.from_settings(Settings(data_dir=data_dir))
    runtime.start()
    principal = Principal(name="uma", role=Role.USER)
    try:
        with runtime.db.session() as session:
            try:
                head = twins.get_twin(session, principal=SYSTEM, ref="bench-reach").head_revision
            except TwinNotFound:
                head = None
        if head is None:
            with runtime.db.session() as session:
                dev = issue_token(session, runtime.issuer, principal=SYSTEM, name="ada", role=Role.DEVELOPER,
                                  ttl=timedelta(days=1)).token
                user = issue_token(session, runtime.issuer, principal=SYSTEM, name="uma", role=Role.USER,
                                   ttl=timedelta(days=1)).token
            with TestClient(create_app(runtime=runtime)) as http:
                Client("http://testserver", dev, http=http).publish_app(RIVER_REACH)
                Client("http://testserver", user, http=http).create_twin("river-reach@0.1.0", "bench-reach",
                                                                       {"station": "RR-01"})
            head = 0
        start = datetime(2026, 1, 1, tzinfo=UTC)
        print(f"writing {POINTS - head:,} revisions through the twins service (once)...", flush=True)
        for first in range(head, POINTS, 2000):
            with runtime.db.session() as session:
                for i in range(first, min(first + 2000, POINTS)):
                    level = 1.2 + 0.8 * np.sin(i / 500) + 0.05 * np.sin(i / 7)
                    twins.write_state(session, principal=principal, ref="bench-reach", desired={}, reported={
                        "level": PropertyWrite(value=round(float(level), 4), timestamp=start + timedelta(minutes=i))})
        collections = data_dir / "collections"
        collections.mkdir(exist_ok=True)
        grid(collections / "grid-1000.zarr", 1000)
        grid(collections / "grid-10.zarr", 10)
    finally:
        runtime.close()
    (data_dir / "built").write_text("ok\n")


def token(data_dir: Path, name: str = "uma", role: str = "user") -> str:
    out = subprocess.run([sys.executable, "-m", "twinengine.cli.main", "token", "create", "--data-dir", str(data_dir),
                          "--name", name, "--role", role, "--expires", "1d"], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip().splitlines()[-1]


def ready_ms(page: Any, url: str) -> float:
    page.goto(url)
    page.wait_for_selector(".page:not([aria-busy])")
    return float(page.evaluate("() => performance.getEntriesByName('twin:ready').at(-1).startTime"))


def sign_in(page: Any, url: str, token: str) -> None:
    """A session cookie from the API, no page of the portal loaded: its scripts and styles stay out of the
    browser's cache until the cold loads."""
    response = page.context.request.post(f"{url}/api/v1/session", data={"token": token})
    assert response.ok, response.status


def first_loads(page: Any, loads: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Each page's first load since the engine started, the browser's cache off (DevTools' "Disable cache"):
    what someone arriving with an empty cache waits for."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    try:
        return {key: load() for key, load in loads.items()}
    finally:
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": False})
        cdp.detach()


def blank_ms(page: Any, url: str) -> float:
    page.goto(url)
    return float(page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                               " return n.loadEventEnd || n.responseEnd; }"))


PLOT = """async (points) => {
  const { timeSeries } = await import('/ui/static/js/plot.js');
  const { api } = await import('/ui/static/js/api.js');
  const slot = document.createElement('div'); slot.style.width = '1200px'; document.body.append(slot);
  const t0 = performance.now();
  let x = new Float64Array(0), y = [];
  if (points) {
    const h = await api('/api/v1/twins/bench-reach/properties/level/history', { params: { limit: points } });
    x = Float64Array.from(h.items, (v) => Date.parse(v.timestamp) / 1000); y = h.items.map((v) => v.value);
  }
  const t1 = performance.now();
  const plot = await timeSeries(slot, { series: [{ label: 'level', x, y }], title: 'bench' });
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const t2 = performance.now();
  plot.destroy(); slot.remove();
  return [t1 - t0, t2 - t1, x.length];
}"""

LAYER = """async (id) => {
  const select = document.querySelector('.map-tools select');
  const status = document.querySelector('.field-status');
  status.textContent = '';
  const t0 = performance.now();
  select.value = id; select.dispatchEvent(new Event('change'));
  while (!/cells drawn/.test(status.textContent)) await new Promise((r) => setTimeout(r, 2));
  const t1 = performance.now();
  const img = document.querySelector('img.field-layer');
  return [t1 - t0, img.naturalWidth * img.naturalHeight];
}"""


def timed_get(url: str, token: str) -> float:
    """Milliseconds for one GET, its body read whole."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def wait_warm(url: str, timeout: float = 120) -> float:
    """Seconds until ``/health`` names nothing still warming (the EDR listing, opened after start)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        with urllib.request.urlopen(f"{url}/health", timeout=30) as response:
            if "warming" not in json.loads(response.read()):
                break
        time.sleep(0.05)
    return time.perf_counter() - started


ADMIN_PAGES = {"admin page": "/ui/admin", "compute sites and usage": "/ui/compute"}


def _get_json(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def every_page(url: str, user: str) -> dict[str, str]:
    """The portal's pages on the demo's own twins, found through the API as its user: the live twin (its
    flood view and streams), the first twin and its what-if fork (compare), and its latest run."""
    twins = {t["name"]: t for t in _get_json(f"{url}/api/v1/twins?limit=200", user)["items"]}
    live = next(n for n in twins if n.startswith("demo-reach-live"))
    first = next(n for n in twins if n.startswith("demo-reach") and not twins[n].get("origin")
                 and n != live and "-ml" not in n)
    fork = next(n for n, t in twins.items() if (t.get("origin") or {}).get("twin_name") == first)
    runs = _get_json(f"{url}/api/v1/runs?twin={twins[first]['id']}&limit=1", user)["items"]
    pages = {"twins list": "/ui/", "catalog": "/ui/catalog", "app": f"/ui/apps/{twins[first]['app_name']}",
             "twin page": f"/ui/twins/{live}", "flood view": f"/ui/twins/{live}/views/flood",
             "flood view, print-ready report": f"/ui/twins/{live}/views/flood?print",
             "compare with a what-if": f"/ui/twins/{first}/compare/{fork}",
             "workflows": f"/ui/twins/{first}/workflows", "streams (live tail)": f"/ui/twins/{live}/streams",
             "models": f"/ui/twins/{live}/models", "map": "/ui/map", "data lake": "/ui/lake",
             "subscriptions": "/ui/subscriptions"}
    if runs:
        pages["a run (logs, provenance)"] = f"/ui/runs/{runs[0]['id']}"
    return pages


def pages_cold_and_warm(page: Any, url: str, pages: dict[str, str], repeat: int) -> dict[str, tuple[float, float]]:
    """Each page's first load (cache off) and its warm median, ready as the portal marks it."""
    cold = first_loads(page, {label: (lambda path=path: ready_ms(page, url + path)) for label, path in pages.items()})
    warm: dict[str, list[float]] = {label: [] for label in pages}
    for _ in range(repeat):
        for label, path in pages.items():
            warm[label].append(ready_ms(page, url + path))
    return {label: (cold[label], statistics.median(warm[label])) for label in pages}


def demo_bench(demo: Path, repeat: int) -> None:
    """``/edr/collections`` and the map page on a copy of the demo's data."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="twin-bench-demo-") as tmp:
        data_dir = Path(tmp) / "data"
        shutil.copytree(demo, data_dir)
        tokens = {who: token(data_dir, who, role) for who, role in (("uma", "user"), ("admin", "admin"))}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        rows: dict[str, list[float]] = {k: [] for k in ("landing", "uma", "admin", "blank", "map")}
        with serve_engine(data_dir, port, TWIN_LOG_LEVEL="error", start_timeout=240):
            warmed = wait_warm(url)
            cold = {who: timed_get(f"{url}/edr/collections", tokens[who]) for who in ("uma", "admin")}
            for _ in range(repeat * 3):
                rows["landing"].append(timed_get(f"{url}/edr/", tokens["uma"]))
                for who in ("uma", "admin"):
                    rows[who].append(timed_get(f"{url}/edr/collections", tokens[who]))
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                sign_in(page, url, tokens["uma"])
                first = first_loads(page, {"blank": lambda: blank_ms(page, f"{url}/health"),
                                           "map": lambda: ready_ms(page, f"{url}/ui/map")})
                for round_ in range(repeat + 1):  # the first round warms the browser's caches, not counted
                    sample = {"blank": blank_ms(page, f"{url}/health"), "map": ready_ms(page, f"{url}/ui/map")}
                    if round_:
                        for key, value in sample.items():
                            rows[key].append(value)
                pages = every_page(url, tokens["uma"])
                every = {"uma": pages_cold_and_warm(page, url, pages, repeat)}
                admin = browser.new_page(viewport={"width": 1280, "height": 800})
                sign_in(admin, url, tokens["admin"])
                every["admin"] = pages_cold_and_warm(admin, url, ADMIN_PAGES, repeat)
                browser.close()

    def med(key: str) -> float:
        return statistics.median(rows[key])

    print(f"\nthe demo's data, {repeat * 3} calls / {repeat} page loads, medians (machine: {os.cpu_count()} cores)")
    print(f"{'measure':<48}{'ours ms':>10}{'baseline ms':>13}{'ratio':>8}  target")
    for label, ours, base, target in (
            ("GET /edr/collections as the demo's user, warm", med("uma"), med("landing"), "<= 100 ms"),
            ("GET /edr/collections as the admin, warm", med("admin"), med("landing"), "<= 100 ms"),
            ("GET /edr/collections as the demo's user, cold", cold["uma"], med("landing"), "<= 100 ms"),
            ("GET /edr/collections as the admin, cold", cold["admin"], med("landing"), "<= 100 ms"),
            ("map page ready, default layer drawn", med("map"), med("blank"), "<= 1500 ms"),
            ("map page ready, default layer drawn, cold", first["map"], first["blank"], "<= 1500 ms")):
        print(f"{label:<48}{ours:>10.1f}{base:>13.1f}{ours / max(base, 0.1):>8.1f}  {target}")
    print("baselines: the EDR landing page (/edr/) for the listing; a blank page (/health) for the map page")
    print(f"cold: the first calls after start, once /health named nothing warming ({warmed * 1000:.0f} ms after "
          "the engine answered: the EDR listing is opened in the background); the map page's first load (after "
          "the calls above), the browser's cache off, beside a blank page's")
    print(f"\nevery page on the demo's data, ready (twin:ready), the browser's cache off for the cold load; "
          f"warm: median of {repeat}")
    print(f"{'page':<48}{'cold ms':>10}{'warm ms':>10}  target (cold)")
    worst = 0.0
    for who, timed in every.items():
        for label, (cold_ms, warm_ms) in timed.items():
            worst = max(worst, cold_ms)
            print(f"{label + (' (admin)' if who == 'admin' else ''):<48}{cold_ms:>10.1f}{warm_ms:>10.1f}  <= 1500 ms")
    print(f"slowest page cold: {worst:.0f} ms ({'meets' if worst <= 1500 else 'misses'} the 1,500 ms goal)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=Path.home() / ".cache" / "twinengine-bench" / "portal")
    parser.add_argument("--demo", type=Path, default=None, help="the data folder of a `twin demo` run")
    args = parser.parse_args()
    if args.demo is not None:
        demo_bench(args.demo, args.repeat)
        return
    from playwright.sync_api import sync_playwright

    build(args.dir)
    user = token(args.dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rows: dict[str, list[float]] = {k: [] for k in ("blank", "twins", "twin", "view", "report", "read100k",
                                                    "plot100k", "plot0", "layer1000", "layer10")}
    views = {"twins": "/ui/", "twin": "/ui/twins/bench-reach", "view": "/ui/twins/bench-reach/views/flood",
             "report": "/ui/twins/bench-reach/views/flood?print"}
    with serve_engine(args.dir, port, TWIN_LOG_LEVEL="warning"), sync_playwright() as p:
        warmed = wait_warm(url)
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        sign_in(page, url, user)
        loads = {key: (lambda path=path: ready_ms(page, url + path)) for key, path in views.items()}
        first = first_loads(page, {"blank": lambda: blank_ms(page, f"{url}/health"), **loads})
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        for round_ in range(args.repeat + 1):  # the first round warms caches and is not counted
            sample = {"blank": blank_ms(page, f"{url}/health"), "twins": ready_ms(page, f"{url}/ui/"),
                      "twin": ready_ms(page, f"{url}/ui/twins/bench-reach"),
                      "view": ready_ms(page, f"{url}/ui/twins/bench-reach/views/flood"),
                      "report": ready_ms(page, f"{url}/ui/twins/bench-reach/views/flood?print")}
            ready_ms(page, f"{url}/ui/")
            read, draw, n = page.evaluate(PLOT, POINTS)
            assert n == POINTS, n
            _, empty, _ = page.evaluate(PLOT, 0)
            sample.update(read100k=read, plot100k=draw, plot0=empty)
            ready_ms(page, f"{url}/ui/map")
            cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})  # every image fetched, not reused
            big, cells = page.evaluate(LAYER, "grid-1000")
            assert cells == 1_000_000, cells
            small, _ = page.evaluate(LAYER, "grid-10")
            cdp.send("Network.setCacheDisabled", {"cacheDisabled": False})
            sample.update(layer1000=big, layer10=small)
            if round_:
                for key, value in sample.items():
                    rows[key].append(value)
        browser.close()

    def med(key: str) -> float:
        return statistics.median(rows[key])

    print(f"\nportal in chromium, {args.repeat} rounds, medians (machine: {os.cpu_count()} cores)")
    print(f"{'measure':<44}{'ours ms':>10}{'baseline ms':>13}{'ratio':>8}  target")
    for label, ours, base, target in (
            ("first page interactive (twins list)", "twins", "blank", "< 1000 ms"),
            ("a twin's page interactive (state, plot...)", "twin", "blank", ""),
            ("its flood view interactive", "view", "blank", "< 1500 ms"),
            ("the view's print-ready report", "report", "blank", "< 1500 ms"),
            ("100,000-point history plot drawn", "plot100k", "plot0", "< 500 ms"),
            ("  + reading those points through the API", "read100k", "plot0", ""),
            ("1,000 x 1,000 grid map layer", "layer1000", "layer10", "< 1000 ms")):
        print(f"{label:<44}{med(ours):>10.1f}{med(base):>13.1f}{med(ours) / max(med(base), 0.1):>8.1f}  {target}")
    print("baselines: a blank page (/health to its load event); an empty plot; a 10 x 10 grid's layer")
    print(f"\ncold: each page's first load since the engine started, the browser's cache off, in this order "
          f"({warmed * 1000:.0f} ms after the engine answered, /health named nothing warming)")
    print(f"{'measure':<44}{'ours ms':>10}{'baseline ms':>13}{'ratio':>8}  target")
    for label, key, target in (("first page interactive (twins list), cold", "twins", "< 1000 ms"),
                               ("a twin's page interactive, cold", "twin", ""),
                               ("its flood view interactive, cold", "view", "< 1500 ms"),
                               ("the view's print-ready report, cold", "report", "< 1500 ms")):
        cold, blank = first[key], first["blank"]
        print(f"{label:<44}{cold:>10.1f}{blank:>13.1f}{cold / max(blank, 0.1):>8.1f}  {target}")


if __name__ == "__main__":
    main()
