"""The portal's run page: every run links its crate; a rerun (the demo reran each kind of run) shows its diff
against its original."""

from __future__ import annotations

from typing import Any

import pytest

from browser import Site

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(900)]


def test_a_rerun_shows_its_diff_and_every_run_its_crate(portal: Any, site: Site) -> None:
    crates = site.facts["crates"]
    original, rerun = crates["workflow"]["run"], crates["workflow"]["rerun"]
    uma = portal("uma")
    page = uma.goto(f"/ui/runs/{rerun}")
    verdict = page.wait_for_selector(".rerun-verdict")
    assert verdict.inner_text() == f"A rerun of {original}: identical"
    assert page.get_attribute(f".rerun-verdict a[href='/ui/runs/{original}']", "href")
    rows = uma.text("main")
    assert "result.json" in rows and "Outputs against the original" in rows
    assert page.get_attribute(".run-crate a", "href") == f"/api/v1/runs/{rerun}/crate"
    uma.check("rerun")
    page = uma.goto(f"/ui/runs/{original}")
    page.wait_for_selector(".run-crate a")
    assert page.query_selector(".rerun-verdict") is None
    uma.check("original")
