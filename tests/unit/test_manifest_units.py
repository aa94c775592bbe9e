"""Units in the manifest: a vertical datum beside a unit (``datum``, or ``m asl`` read as unit and datum), and
warnings, not errors, for units that parse only through an unusual prefix."""

from __future__ import annotations

from pathlib import Path

from helpers import RIVER_REACH, make_app
from twinengine.catalog.validate import check_app_dir, manifest_warnings

GAUGES = {"gauges": {"fields": {"time": {"type": "timestamp"},
                                "level": {"type": "float", "unit": "m a.s.l."},
                                "flow": {"type": "float", "unit": "m3/hh"}}}}


def test_a_datum_goes_beside_the_unit_and_m_asl_is_read_as_unit_m_with_datum_asl(tmp_path: Path) -> None:
    folder = make_app(tmp_path, manifest={"streams": GAUGES, "state": {
        "head": {"type": "number", "unit": "m", "datum": "EGM2008"},
        "stage": {"type": "number", "unit": "m AOD"}}})
    manifest, problems = check_app_dir(folder)
    assert problems == [] and manifest is not None
    assert (manifest.state["head"].unit, manifest.state["head"].datum) == ("m", "EGM2008")
    assert (manifest.state["stage"].unit, manifest.state["stage"].datum) == ("m", "AOD")
    level = manifest.streams["gauges"].fields["level"]
    assert (level.unit, level.datum) == ("m", "asl")
    assert manifest.model_dump(mode="json")["state"]["head"]["datum"] == "EGM2008"  # what the API shows


def test_a_bad_datum_is_refused_with_its_path(tmp_path: Path) -> None:
    folder = make_app(tmp_path, manifest={"state": {
        "twice": {"type": "number", "unit": "m asl", "datum": "EGM2008"},
        "alone": {"type": "number", "datum": "EGM2008"},
        "long": {"type": "number", "unit": "m", "datum": "x" * 65},
        "label": {"type": "string", "unit": "m asl"}}})
    manifest, problems = check_app_dir(folder)
    assert manifest is None
    found = {p.loc: p.msg for p in problems}
    assert "give the datum once" in found["state.twice"]
    assert "give the unit too" in found["state.alone"]
    assert "64" in found["state.long.datum"]
    assert "cannot have a unit" in found["state.label"]


def test_a_unit_read_through_an_unusual_prefix_is_a_warning_saying_what_it_was_read_as(tmp_path: Path) -> None:
    folder = make_app(tmp_path, manifest={"streams": GAUGES, "outputs": {"volume": {"unit": "m3/hh"}}})
    manifest, problems = check_app_dir(folder)
    assert problems == [] and manifest is not None  # valid: a warning does not stop validation or publishing
    warnings = {w.loc: w.msg for w in manifest_warnings(manifest)}
    assert set(warnings) == {"streams.gauges.fields.flow.unit", "outputs.volume.unit"}
    assert "'m3/hh' is read as cubic metre per hectohour" in warnings["outputs.volume.unit"]
    reference, _ = check_app_dir(RIVER_REACH)
    assert reference is not None and manifest_warnings(reference) == []
