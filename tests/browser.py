"""The portal in a real browser: Debian's chromium driven by Playwright's Python package, against a real
``twin serve`` over the data ``twin demo`` leaves behind. Every page visited is screenshotted and checked
with axe-core (vendored from npm) and for Content-Security-Policy violations."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from helpers import REPO, free_port, need_modules, serve_engine, unavailable
from twinengine.cli.main import app as cli_app

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AXE = REPO / "tests" / "e2e" / "vendor" / "axe.min.js"
SHOTS_KEY = pytest.StashKey[Path]()
READY = ".page:not([aria-busy])"


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        unavailable("browser", "Debian's chromium is not installed (apt-get install chromium)")
    need_modules("browser", "playwright", hint="pip install playwright")
    return str(path)


@dataclass
class Site:
    """A ``twin serve`` over the demo's data, the tokens of its people, and what the demo reported."""

    url: str
    data_dir: Path
    tokens: dict[str, str]
    facts: dict[str, Any]
    shots: Path
    seconds: dict[str, float] = field(default_factory=dict)


def sign_token(data_dir: Path, name: str, role: str) -> str:
    """Signed locally by the CLI over the data dir (not read from admin.token)."""
    result = CliRunner().invoke(cli_app, ["token", "create", "--data-dir", str(data_dir), "--name", name, "--role",
                                          role, "--expires", "1d"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Site]:
    chromium()
    root = tmp_path_factory.mktemp("portal")
    data_dir = root / "data"
    reuse = os.environ.get("TWIN_TEST_PORTAL_DEMO")  # a folder with data/ and facts.json of an earlier demo run
    if reuse:  # a shortcut while working on the portal: an earlier demo's data, not this run's
        shutil.copytree(Path(reuse) / "data", data_dir)
        facts, demo_seconds = json.loads((Path(reuse) / "facts.json").read_text()), 0.0
    else:  # the run's one demo (tests/demo_fixtures.py), copied: the engine serving it writes to it
        from demo_fixtures import demo_copy

        run = request.getfixturevalue("demo_run")
        demo_copy(run, data_dir)
        facts, demo_seconds = run.facts, run.seconds
    tokens = {name: sign_token(data_dir, name, role) for name, role in
              (("uma", "user"), ("ada", "developer"), ("eve", "user"), ("admin", "admin"))}
    shots = root / "screenshots"
    shots.mkdir()
    request.config.stash[SHOTS_KEY] = shots
    port = free_port()
    with serve_engine(data_dir, port, start_timeout=240):
        yield Site(url=f"http://127.0.0.1:{port}", data_dir=data_dir, tokens=tokens, facts=facts, shots=shots,
                   seconds={"demo": demo_seconds})


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    """One Chromium per test process, shared by every browser test in it: Playwright's sync API runs one
    instance at a time in a thread, so a test starting its own beside this one would fail."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def browser(site: Site, chromium_browser: Any) -> Any:
    return chromium_browser


def wider_than_the_screen(page: Any) -> list[str]:
    """The first five elements of the page's main part that poke out of the screen, unless a box around them
    clips or scrolls them (tag and class): what a phone's reader would have to scroll sideways for."""
    found: list[str] = page.evaluate("""() => {
        const clipped = (e) => { for (let p = e.parentElement; p && p.id !== 'main'; p = p.parentElement)
            if (getComputedStyle(p).overflowX !== 'visible') return true; return false; };
        return [...document.querySelectorAll('main *')]
          .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !clipped(e))
          .map(e => e.tagName + '.' + e.getAttribute('class')).slice(0, 5); }""")
    return found


class Portal:
    """One person's browser tab on the portal, with the checks every page gets."""

    def __init__(self, browser: Any, site: Site, name: str, *, width: int = 1280, height: int = 800) -> None:
        self.site = site
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.name = name
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.visited = 0

    def _console(self, message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or (message.type == "error" and "status of 401" not in text
                                                 and "status of 403" not in text and "status of 404" not in text
                                                 and "status of 422" not in text):
            self.problems.append(f"console {message.type}: {text}")

    def sign_in(self, token: str) -> None:
        self.page.goto(f"{self.site.url}/ui/signin")
        self.page.fill("#token", token)
        self.page.click("form button[type=submit]")
        self.page.wait_for_selector("[data-page=home]" + ":not([aria-busy])")

    def goto(self, path: str) -> Any:
        self.page.goto(f"{self.site.url}{path}")
        return self.ready()

    def ready(self) -> Any:
        self.page.wait_for_selector(READY, timeout=30_000)
        return self.page

    def wait_for(self, selector: str, timeout: int = 30_000) -> Any:
        """Wait for ``selector``; when it does not come, fail with what the page says instead (an error page, a
        section that could not be read) and what the browser reported, not only the selector."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            return self.page.wait_for_selector(selector, timeout=timeout)
        except PlaywrightTimeout:
            self.shot("missing")
            said = self.text("main")[-3000:] if self.page.locator("main").count() else "(no main element)"
            raise AssertionError(f"{selector} did not appear within {timeout / 1000:g} s on {self.page.url}; "
                                 f"the page says:\n{said}\nbrowser problems: {self.problems}") from None

    def text(self, selector: str = "main") -> str:
        return str(self.page.inner_text(selector))

    def shot(self, label: str) -> Path:
        self.visited += 1
        path = self.site.shots / f"{self.name}-{self.visited:02d}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def check(self, label: str) -> None:
        """Screenshot the page, then: no serious accessibility violation (axe-core), no CSP violation."""
        self.shot(label)
        if not self.page.evaluate("() => Boolean(window.axe)"):
            self.page.evaluate(AXE.read_text())  # through the DevTools protocol: the page's CSP stays on
        violations = self.page.evaluate("""() => axe.run(document, {resultTypes: ['violations']}).then(r =>
            r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
             .map(v => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')}`))""")
        assert violations == [], f"{label}: accessibility violations {violations}"
        assert self.problems == [], f"{label}: {self.problems}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def portal(browser: Any, site: Site, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Open tabs with ``portal(name, token)``; each is closed after the test."""
    opened: list[Portal] = []

    def open_tab(token_of: str, **size: int) -> Portal:
        tab = Portal(browser, site, f"{request.node.name}-{token_of}", **size)
        tab.sign_in(site.tokens[token_of])
        opened.append(tab)
        return tab

    yield open_tab
    for tab in opened:
        tab.close()
