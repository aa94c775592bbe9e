"""The portal's screenshots in docs/ui.md, taken again: ``twin serve`` over the demo's data (a fresh ``twin demo
--hours 48``, or ``--demo DIR``, served from a copy), Debian's chromium through Playwright at 1366 x 900, each
page as the person first sees it, saved as a palette PNG (256 colours: the portal's flat colours survive, and a
page stays under about 150 KB).

Usage: python bench/portal_screenshots.py [--demo DIR] [--out docs/images]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers import free_port, serve_engine  # noqa: E402
from twinengine.client import Client  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
SIZE = {"width": 1366, "height": 900}
A4 = {"width": 794, "height": 1123}  # CSS pixels at 96 per inch
READY = ".page:not([aria-busy])"


def token(data_dir: Path, name: str, role: str) -> str:
    out = subprocess.run([sys.executable, "-m", "twinengine.cli.main", "token", "create", "--data-dir", str(data_dir),
                          "--name", name, "--role", role, "--expires", "1d"], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip().splitlines()[-1]


def demo(folder: Path) -> dict[str, Any]:
    """``twin demo`` into ``folder/data``; its facts (twin names, runs) as it printed them. 48 hours of
    gauges leave enough for the verification chapter's hindcasts, whose skill the trust picture shows."""
    out = subprocess.run([sys.executable, "-m", "twinengine.cli.main", "--json", "demo", "--data-dir",
                          str(folder / "data"), "--hours", "48"], capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "200"})
    facts: dict[str, Any] = json.loads(out.stdout)
    return facts


def save(png: bytes, path: Path) -> int:
    """The screenshot as a 256-colour PNG; returns its size in bytes."""
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    image.save(path, format="PNG", optimize=True)
    return path.stat().st_size


def shots(url: str, facts: dict[str, Any], uma: str) -> list[tuple[str, str, Callable[[Any], None] | None]]:
    """(file name, address, what to do before the picture) for each page docs/ui.md shows."""
    name = facts["twin"]["name"]
    verified = facts["streams"]["twin"] if "verification" in facts else name  # its hindcasts, checked
    with Client(url, uma) as client:
        run = next(r for r in client.workflows.runs(twin=name, status="finished", limit=50).items
                   if r.workflow == "forecast")

    def drawn(page: Any) -> None:
        page.wait_for_selector(".map[data-field]:not([data-drawing])")

    def skill(page: Any) -> None:
        page.wait_for_selector("section.skill .plot canvas")
        page.evaluate("() => document.querySelector('section.skill').scrollIntoView({block: 'start'})")

    def provenance(page: Any) -> None:
        page.wait_for_selector("svg.prov")
        page.evaluate("() => document.querySelector('svg.prov').scrollIntoView({block: 'center'})")

    def flood(page: Any) -> None:
        page.wait_for_selector("[data-panel=level] canvas")

    return [("portal-twins.png", "/ui/", None),
            ("portal-flood-view.png", f"/ui/twins/{name}/views/flood", flood),
            ("portal-map.png", "/ui/map", drawn),
            ("portal-skill.png", f"/ui/twins/{verified}/views/flood", skill),
            ("portal-provenance.png", f"/ui/runs/{run.id}", provenance),
            ("portal-report.png", f"/ui/twins/{name}/views/flood?print", flood)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, help="a folder with data/ and facts.json of an earlier demo run")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="twin-shots-") as tmp:
        folder = Path(tmp)
        if args.demo:
            shutil.copytree(args.demo / "data", folder / "data")
            facts = json.loads((args.demo / "facts.json").read_text())
        else:
            facts = demo(folder)
        data_dir = folder / "data"
        uma = token(data_dir, "uma", "user")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with serve_engine(data_dir, port, TWIN_LOG_LEVEL="error", start_timeout=240), sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
            page = browser.new_page(viewport=SIZE)
            page.goto(f"{url}/ui/signin")
            page.fill("#token", uma)
            page.click("form button[type=submit]")
            page.wait_for_selector("[data-page=home]" + ":not([aria-busy])")
            for file, path, before in shots(url, facts, uma):
                paper = path.endswith("?print")  # the report as it prints: an A4 page's width, all of it
                page.set_viewport_size(A4 if paper else SIZE)
                page.goto(f"{url}{path}")
                page.wait_for_selector(READY, timeout=60_000)
                if before:
                    before(page)
                page.wait_for_timeout(400)  # plots and maps take their width after the page is ready
                if paper:
                    page.emulate_media(media="print")
                    png = page.screenshot(full_page=True)
                    page.emulate_media(media="screen")
                else:
                    png = page.screenshot()
                print(f"{file}: {save(png, args.out / file) // 1024} KB")
            browser.close()


if __name__ == "__main__":
    main()
