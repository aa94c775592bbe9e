"""The compute page in a real browser (Debian's chromium through Playwright) against a real ``twin serve``:
an admin sees the sites with their status words (a Dask site nobody answers at is ``down``, with why),
what a user's run used in the usage tables, the bar chart by site, and a quota with its use; a user gets
no Compute link."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser import Portal, Site, chromium, sign_token
from helpers import admin_token, free_port, serve_engine
from twinengine.client import Client
from twinengine.config import Settings

GRAPH = {"process_graph": {"sum": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": True}}}


@pytest.fixture(scope="module")
def compute_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One engine for the module: its tests only look."""
    chromium()
    tmp_path = tmp_path_factory.mktemp("compute-site")
    data_dir = tmp_path / "data"
    port = free_port()
    with serve_engine(data_dir, port, start_timeout=120):
        url = f"http://127.0.0.1:{port}"
        tokens = {"admin": admin_token(Settings(data_dir=data_dir)), "uma": sign_token(data_dir, "uma", "user")}
        with Client(url, tokens["admin"]) as admin:
            admin.compute.add_site("far-cluster", "dask", address=f"tcp://127.0.0.1:{free_port()}", cores=8,
                                   memory_bytes=2**33)
            admin.compute.set_quota("uma", 5.0, site="*", period="month")
        with Client(url, tokens["uma"]) as uma:
            run = uma.workflows.submit(GRAPH, sync=True, options={"site": "local"})
            assert run.status == "finished", run.error
        shots = Path(os.environ.get("TWIN_TEST_SHOTS", tmp_path / "shots"))
        shots.mkdir(parents=True, exist_ok=True)
        yield Site(url=url, data_dir=data_dir, tokens=tokens, facts={}, shots=shots)


@pytest.fixture
def browser(compute_site: Site, chromium_browser: Any) -> Any:
    return chromium_browser


def test_an_admin_sees_sites_usage_and_quotas(browser: Any, compute_site: Site) -> None:
    tab = Portal(browser, compute_site, "compute-admin")
    try:
        tab.sign_in(compute_site.tokens["admin"])
        page: Any = tab.page
        page.click("nav a:has-text('Compute')")
        tab.ready()
        sites = tab.text("section[aria-label='Sites']")
        far = next(line for line in sites.splitlines() if line.startswith("far-cluster"))
        assert "down" in far and "does not answer" in far, sites
        local = next(line for line in sites.splitlines() if line.startswith("local"))
        assert "healthy" in local
        usage = tab.text("section[aria-label='Usage by identity']")
        row = next(line for line in usage.splitlines() if line.startswith("uma"))
        assert row.split("\t")[1].strip() == "1", usage  # uma's one run
        header = page.eval_on_selector_all("section[aria-label='Usage by identity'] th",
                                           "els => els.map(e => e.innerText)")
        assert header[-4:] == ["read (MB)", "written (MB)", "transferred (MB)", "stored (MB)"]
        with Client(compute_site.url, compute_site.tokens["admin"]) as admin:
            [mine] = [g for g in admin.compute.usage(by="identity").groups if g.key == "uma"]
        cells = [cell.strip() for cell in row.split("\t")]
        shown = [float(cell) for cell in cells[-4:]]  # four significant digits
        assert shown == pytest.approx([b / 1e6 for b in (mine.bytes_read, mine.bytes_written, mine.bytes_transferred,
                                                         mine.bytes_stored)], rel=1e-3), (cells, mine)
        assert mine.bytes_written > 0  # the run wrote its result
        chart = "section[aria-label='Usage by site'] svg[aria-label='core-seconds by site']"
        assert page.locator(f"{chart} rect").count() == 1  # local: the one site that ran something
        quotas = tab.text("section[aria-label='Quotas']")
        assert any(line.startswith("uma") and "month" in line and "5" in line for line in quotas.splitlines())
        tab.check("compute")
    finally:
        tab.close()


def test_a_user_has_no_compute_link(browser: Any, compute_site: Site) -> None:
    tab = Portal(browser, compute_site, "compute-user")
    try:
        tab.sign_in(compute_site.tokens["uma"])
        assert tab.page.locator("nav a:has-text('Compute')").count() == 0
    finally:
        tab.close()
