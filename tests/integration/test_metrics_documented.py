"""Every Prometheus metric the engine declares, or a running engine exposes, is documented metric by metric in
docs/deploy.md (name, type, labels, meaning), so an operator's dashboard is built from the docs."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import REPO, Engine

DOCS = (REPO / "docs" / "deploy.md").read_text()
DECLARED = re.compile(r"""(?:MetricFamily|Counter|Histogram|Gauge|Summary)\(\s*["'](twin_[a-z0-9_]+)["']""")


def documented() -> set[str]:
    section = DOCS[DOCS.index("**Metrics.**"):DOCS.index("**Traces.**")]
    return set(re.findall(r"^\| `(twin_[a-z0-9_]+)` \|", section, flags=re.MULTILINE))


def test_every_declared_metric_is_documented() -> None:
    declared = {name for path in (REPO / "src" / "twinengine").rglob("*.py")
                for name in DECLARED.findall(path.read_text())}
    assert declared and declared <= documented(), sorted(declared - documented())


def test_every_exposed_metric_is_documented(engine: Engine) -> None:
    engine.http.get("/api/v1/twins", headers=engine.headers(engine.admin_token))
    scraped = engine.http.get("/metrics", headers=engine.headers(engine.admin_token))
    assert scraped.status_code == 200
    # a counter's samples end in _total; counters and histograms also say when they started (_created)
    families = {(name.removesuffix("_total") if kind == "counter" else name).removesuffix("_created")
                for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", scraped.text, flags=re.MULTILINE)}
    assert {"twin_build_info", "twin_http_requests", "twin_loop_running"} <= families
    assert families <= documented(), sorted(families - documented())
    assert re.search(r'^twin_build_info\{python="[^"]+",version="[^"]+"\} 1\.0$', scraped.text, flags=re.MULTILINE)


def test_the_table_names_no_metric_the_engine_lacks() -> None:
    declared = {name for path in (REPO / "src" / "twinengine").rglob("*.py")
                for name in DECLARED.findall(path.read_text())}
    assert documented() <= declared, sorted(documented() - declared)
    assert Path(REPO / "docs" / "configuration.md").read_text().count("TWIN_OTLP_ENDPOINT") == 1
