"""Units with a datum and unusual prefixes through the CLI and the API: ``twin app validate`` and ``twin app
publish`` warn (and go on) about a unit read through an unusual prefix, saying what it was read as, and a
declared datum is shown beside the unit in the app, its streams and a property's history."""

from __future__ import annotations

from pathlib import Path

from helpers import LiveEngine, make_app

MANIFEST = {
    "streams": {"gauges": {"fields": {"time": {"type": "timestamp"},
                                      "level": {"type": "float", "unit": "m asl"},
                                      "flow": {"type": "float", "unit": "m3/hh"}}}},
    "state": {"head": {"type": "number", "unit": "m", "datum": "EGM2008"}},
}


def test_unusual_units_warn_and_datums_are_shown_beside_units(live: LiveEngine, tmp_path: Path) -> None:
    folder = make_app(tmp_path, name="datum-app", manifest=MANIFEST)
    out = live.twin("app", "validate", "--no-import", str(folder))
    assert "warning" in out and "streams.gauges.fields.flow.unit" in out and "hectohour" in out
    assert "valid" in out
    report = live.twin_json("app", "validate", "--no-import", str(folder))
    assert report["valid"] is True and [w["loc"] for w in report["warnings"]] == ["streams.gauges.fields.flow.unit"]

    published = live.twin("app", "publish", str(folder))
    assert "published" in published and "cubic metre per hectohour" in published
    shown = live.twin("app", "show", "datum-app")
    assert "m (EGM2008)" in shown and "level (m (asl))" in shown
    with live.client() as admin:
        admin.create_twin("datum-app", "gauge", {"station": "G1"})
        admin.write_state("gauge", reported={"head": 12.5})
        history = admin.history("gauge", "head")
        assert (history.unit, history.datum) == ("m", "EGM2008")
        level = {s.name: s for s in admin.streams.list("gauge")}["gauges"].fields["level"]
        assert (level.unit, level.datum) == ("m", "asl")
