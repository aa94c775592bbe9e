"""Cold pages once the engine says it is ready: what a person waits for on the first visit after a start.

On a copy of the demo's data (``twin demo --data-dir DIR``), served by ``twin serve``, each round starts the
engine afresh and times, from outside:

- the start: spawn to ``/health`` (liveness) and to ``/health/ready`` (readiness) answering 200;
- asked before ready: ``GET /edr/collections`` and the flood view's answer (``GET .../views/flood``) sent the
  moment the engine first answers, while it still warms (they wait for what they need: never refused);
- cold, once ready: ``GET /edr/collections`` as the demo's user, and one page of the portal in Chromium (the
  flood view, its print-ready report, or the map; a fresh engine for each, so each is the first page after
  the start), the browser's cache off, until the page marks itself ready (``twin:ready``);
- each beside a static page served by the same engine in the same round (``/ui/static/favicon.svg``: for
  the listing fetched as the listing is, for a page navigated to its load event): the ratio says what the
  page costs above what the machine and the engine's HTTP stack cost at that moment; and each page once
  more right after (a second visit, the browser's cache on): what is left of "cold" once the engine is warm.

Two conditions, in turn: idle (nothing of this bench's beyond the engine under test; other work on the
machine is reported as its load average), and under the load of ``bench/mixed_load.py`` (its data dir, its
``twin serve`` and ``--clients`` of its clients mixing writes, reads, stream batches, STAC, EDR, /health and
synchronous graphs in a process of their own) for the whole round. Goals: pages 1.5 s, the listing 100 ms.

Usage: python bench/cold_pages.py --demo DIR [--rounds 3] [--clients 50] [--pages view,report,map]
                                  [--conditions idle,loaded]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from portal import ARGS, every_page, first_loads, ready_ms, sign_in, token  # noqa: E402  (beside this script)

from helpers import free_port  # noqa: E402

STATIC = "/ui/static/favicon.svg"
PAGES = {"view": ("flood view", 1500.0), "report": ("flood view, print-ready report", 1500.0),
         "map": ("map", 1500.0)}
LISTING_GOAL = 100.0


def get_ms(url: str, bearer: str | None = None) -> tuple[float, int]:
    """Milliseconds for one GET, its body read whole, and its status."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {bearer}"} if bearer else {})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        error.read()
        status = error.code
    return (time.perf_counter() - started) * 1000, status


def until(check: Callable[[], bool], process: subprocess.Popen[bytes], started: float, timeout: float = 600) -> float:
    """Seconds from ``started`` until ``check()`` holds (asked every 20 ms)."""
    while True:
        try:
            if check():
                return time.perf_counter() - started
        except (OSError, urllib.error.URLError):
            pass
        if process.poll() is not None:
            raise SystemExit(f"twin serve exited with {process.returncode}")
        if time.perf_counter() - started > timeout:
            raise SystemExit("twin serve did not become ready in time")
        time.sleep(0.02)


def answers(url: str, ok: Callable[[Any], bool] = lambda body: True) -> Callable[[], bool]:
    def check() -> bool:
        import json

        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return response.status == 200 and ok(json.loads(response.read()))
        except urllib.error.HTTPError:
            return False
    return check


def ready(url: str) -> Callable[[], bool]:
    """``/health/ready`` answers 200; on an engine without it (before readiness existed: 404), ``/health``
    names nothing warming, as that engine said it was warm."""
    def check() -> bool:
        _, status = get_ms(f"{url}/health/ready")
        if status == 404:
            return answers(f"{url}/health", lambda body: "warming" not in body and "engine" not in body)()
        return status == 200
    return check


@contextmanager
def serving(data_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], float]]:
    """``twin serve`` on ``data_dir``; yields its URL, the process and when it was spawned."""
    port = free_port()
    env = {**os.environ, "TWIN_DATA_DIR": str(data_dir), "TWIN_LOG_LEVEL": "warning"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "twinengine.cli.main", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        yield f"http://127.0.0.1:{port}", process, started
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def static_page_ms(page: Any, url: str) -> float:
    """A static file of the engine navigated to its load event, the browser's cache off."""
    page.goto(url + STATIC)
    return float(page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                               " return n.loadEventEnd || n.responseEnd; }"))


def one_start(demo: Path, tokens: dict[str, str], which: str, early: bool) -> dict[str, float]:
    """One start of the engine on a fresh copy of the demo's data: its timeline, then ``which`` page cold."""
    from playwright.sync_api import sync_playwright

    out: dict[str, float] = {"load": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="twin-bench-cold-") as tmp:
        data_dir = Path(tmp) / "data"
        shutil.copytree(demo, data_dir)
        with serving(data_dir) as (url, process, started):
            out["live s"] = until(answers(f"{url}/health"), process, started)
            out["up s"] = until(answers(f"{url}/health", lambda body: body.get("engine") != "starting"), process,
                                started)
            if early:  # asked the moment the engine answers, while it warms: they wait, and are answered
                asked: dict[str, tuple[float, int]] = {}
                view = f"{url}/api/v1/twins/{tokens['live']}/views/flood"
                threads = [threading.Thread(target=lambda k=k, u=u: asked.__setitem__(k, get_ms(u, tokens["uma"])))
                           for k, u in (("early listing", f"{url}/edr/collections"), ("early view", view))]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                for key, (ms, status) in asked.items():
                    out[key] = ms if status == 200 else float("nan")
            out["ready s"] = until(ready(url), process, started)
            out["static fetch"], _ = get_ms(url + STATIC)
            out["listing"], status = get_ms(f"{url}/edr/collections", tokens["uma"])
            assert status == 200, status
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                sign_in(page, url, tokens["uma"])
                paths = {"view": f"/ui/twins/{tokens['live']}/views/flood",
                         "report": f"/ui/twins/{tokens['live']}/views/flood?print", "map": "/ui/map"}
                cold = first_loads(page, {"static page": lambda: static_page_ms(page, url),
                                          which: lambda: ready_ms(page, url + paths[which])})
                cold[f"{which} warm"] = ready_ms(page, url + paths[which])  # again, as a second visit
                browser.close()
            out.update(cold)
    return out


LOAD = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from mixed_load import loaded
timings = asyncio.run(loaded(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])))
print(sum(len(v) for v in timings.seconds.values()), timings.errors)
"""


@contextmanager
def mixed_load(clients: int, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """bench/mixed_load.py's data dir, ``twin serve`` and ``clients`` of its clients, running for ``seconds``
    (a process of their own), on this machine beside the engine under test."""
    from mixed_load import prepare
    from mixed_load import serving as mixed_serving

    from twinengine.config import Settings

    with tempfile.TemporaryDirectory(prefix="twin-bench-mixed-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "sqlite")
        user = prepare(settings)
        with mixed_serving(settings, "default") as url:
            process = subprocess.Popen([sys.executable, "-c", LOAD, str(REPO / "bench"), url, user, str(clients),
                                        str(seconds)], stdout=subprocess.PIPE, text=True)
            try:
                time.sleep(2)  # the clients connected and mixing
                yield process
            finally:
                process.terminate()
                process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, required=True, help="the data folder of a `twin demo` run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50, help="mixed_load.py's clients for the loaded condition")
    parser.add_argument("--pages", default="view,report,map")
    parser.add_argument("--conditions", default="idle,loaded")
    args = parser.parse_args()
    pages = args.pages.split(",")
    with tempfile.TemporaryDirectory(prefix="twin-bench-cold-tokens-") as tmp:  # tokens recorded in a copy's store
        demo = Path(tmp) / "demo"  # the demo's data with a token in its store: each start copies this
        shutil.copytree(args.demo, demo)
        tokens = {"uma": token(demo, "uma", "user")}
        scratch = Path(tmp) / "scratch"
        shutil.copytree(demo, scratch)
        with serving(scratch) as (url, process, started):
            until(answers(f"{url}/health", lambda body: body.get("engine") != "starting"), process, started)
            tokens["live"] = every_page(url, tokens["uma"])["flood view"].split("/")[3]
        results: dict[str, list[dict[str, float]]] = {}
        for condition in args.conditions.split(","):
            with mixed_load(args.clients, 24 * 3600) if condition == "loaded" else nullcontext():
                results[condition] = rows = []
                for round_ in range(args.rounds):
                    for which in pages:
                        row = one_start(demo, tokens, which, early=which == pages[0])
                        row["page"] = pages.index(which)
                        rows.append(row)
                        print(f"{condition:<7} round {round_ + 1} {which:<7} " + "  ".join(
                            f"{k} {v:.2f}" if k.endswith(" s") or k == "load" else f"{k} {v:.0f}"
                            for k, v in row.items() if k != "page"), flush=True)
        report(results, pages, args.clients)


def report(results: dict[str, list[dict[str, float]]], pages: list[str], clients: int) -> None:
    def med(rows: list[dict[str, float]], key: str) -> float:
        values = [r[key] for r in rows if key in r and r[key] == r[key]]
        return statistics.median(values) if values else float("nan")

    print(f"\ncold pages after a start, medians over rounds ({os.cpu_count()} cores); 'loaded': bench/mixed_load.py "
          f"with {clients} clients on its own engine beside it")
    print(f"{'condition':<9}{'measure':<44}{'ours ms':>10}{'static ms':>11}{'ratio':>8}{'goal ms':>9}  {'load avg':>8}")
    for condition, rows in results.items():
        load = f"{min(r['load'] for r in rows):.1f}-{max(r['load'] for r in rows):.1f}"
        listing, fetch = med(rows, "listing"), med(rows, "static fetch")
        print(f"{condition:<9}{'GET /edr/collections (demo user), cold':<44}{listing:>10.0f}{fetch:>11.1f}"
              f"{listing / fetch:>8.1f}{LISTING_GOAL:>9.0f}  {load:>8}")
        for which in pages:
            these = [r for r in rows if r["page"] == pages.index(which)]
            label, goal = PAGES[which]
            ours, static = med(these, which), med(these, "static page")
            print(f"{condition:<9}{label + ', cold':<44}{ours:>10.0f}{static:>11.1f}{ours / static:>8.1f}{goal:>9.0f}"
                  f"  {load:>8}")
            print(f"{condition:<9}{'  the same page again (second visit)':<44}{med(these, f'{which} warm'):>10.0f}")
        for key, label in (("early listing", "GET /edr/collections asked before ready"),
                           ("early view", "flood view's answer asked before ready")):
            print(f"{condition:<9}{label:<44}{med(rows, key):>10.0f}")
        print(f"{condition:<9}{'start: /health 200 / engine up / ready (s)':<44}"
              f"{med(rows, 'live s'):>10.2f}{med(rows, 'up s'):>8.2f}{med(rows, 'ready s'):>8.2f}")


if __name__ == "__main__":
    main()
