"""A view's summary template: named values, one arithmetic step, choices and format specs; never code."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from pydantic import ValidationError

from helpers import RIVER_REACH
from twinengine.catalog.validate import check_manifest_data
from twinengine.catalog.view_text import Scalar, TemplateError, parse, render, summary_properties
from twinengine.catalog.views import View
from twinengine.ui.summaries import duration_words

FLOOD = ("Flood alert {state.alert?ON|OFF} at {twin.name}: level {state.level:.2f} m, "
         "{abs(state.level - desired.alert_threshold):.2f} m {state.level > desired.alert_threshold?above|below} "
         "the {desired.alert_threshold:g} m threshold; {forecast.exceeding} of {forecast.members} ensemble members "
         "exceed it within {forecast.horizon}; last reading {state.level.age}")
VALUES: dict[str, Scalar] = {
    "state.alert": True, "twin.name": "RR-01", "state.level": 2.72, "desired.alert_threshold": 1.8,
    "forecast.exceeding": 16, "forecast.members": 16, "forecast.horizon": "48 h", "state.level.age": "14 min ago"}


def test_the_flood_sentence_is_filled_from_named_values() -> None:
    assert render(FLOOD, VALUES) == ("Flood alert ON at RR-01: level 2.72 m, 0.92 m above the 1.8 m threshold; "
                                     "16 of 16 ensemble members exceed it within 48 h; last reading 14 min ago")


def test_a_clause_whose_values_are_missing_is_left_out() -> None:
    values: dict[str, Scalar] = {k: v for k, v in VALUES.items() if not k.startswith("forecast.")}
    values |= {"state.level": 1.2, "state.alert": False}
    assert render(FLOOD, values) == ("Flood alert OFF at RR-01: level 1.20 m, 0.60 m below the 1.8 m threshold; "
                                     "last reading 14 min ago")
    assert render(FLOOD, {"state.level.age": "3 h ago"}) == "Last reading 3 h ago"  # a sentence still
    assert render(FLOOD, {}) == ""


def test_braces_arithmetic_and_specs() -> None:
    assert render("{{literal}} {skill.coverage:.0%} {state.x * 100:.1f}; {state.x / 0}", {
        "skill.coverage": 0.88, "state.x": 0.5}) == "{literal} 88% 50.0"
    assert render("{state.level.__class__}", {"state.level": 1.0}) == ""  # a name, never an attribute
    assert render("{state.word:.2f} {state.flag}", {"state.word": "high", "state.flag": False}) == "high no"


@pytest.mark.parametrize("template", [
    "{__import__('os').system('true')}", "{state.level.__class__}x{", "{os.environ}", "{state.level:{x}}",
    "{state.level.real.imag.a.b.c}", "}", "{state.level:!r}", "{state.a ? {b} | c}", "{lambda: 1}",
    "{" + "state.x} {" * 41 + "state.x}",
])
def test_anything_but_the_small_language_is_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        parse(template)


def test_a_view_refuses_a_bad_template_naming_it() -> None:
    with pytest.raises(ValidationError, match="summary") as caught:
        View.model_validate({"title": "t", "summary": "level {state.level:.2f", "panels": {
            "t": {"kind": "table", "title": "t", "properties": ["level"]}}})
    assert "not closed" in str(caught.value)


def test_the_properties_a_summary_reads_are_named_for_the_catalogue() -> None:
    assert summary_properties(FLOOD) == ["alert", "level", "alert_threshold"]
    assert summary_properties(None) == []


@pytest.mark.parametrize(("span", "words"), [(timedelta(seconds=5), "5 s"), (timedelta(minutes=14), "14 min"),
                                             (timedelta(hours=3, minutes=5), "3 h 5 min"),
                                             (timedelta(hours=48), "48 h"), (timedelta(days=4, hours=2), "4 days 2 h")])
def test_spans_are_said_as_people_say_them(span: timedelta, words: str) -> None:
    assert duration_words(span) == words


def test_the_catalogue_names_a_summary_that_reads_an_undeclared_property() -> None:
    data = yaml.safe_load((RIVER_REACH / "twinapp.yaml").read_text())
    data["views"]["flood"]["summary"] = "Level {state.level:.2f} m; depth {state.depth} m"
    data["views"]["flood"]["skill"] = {"property": "alert"}
    manifest, problems = check_manifest_data(data)
    assert manifest is not None
    found = {p.loc: p.msg for p in problems}
    assert "'depth' is not declared" in found["views.flood.summary"]
    assert "a time series plots numbers" in found["views.flood.skill.property"]
    assert len(found) == 2
    data["views"]["flood"]["summary"] = "Level {state.level:.2f m"
    manifest, problems = check_manifest_data(data)
    assert manifest is None and any(p.loc.startswith("views.flood.summary") and "not closed" in p.msg
                                    for p in problems)
