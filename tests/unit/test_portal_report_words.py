"""The flood view's and its report's words, run in Node on the portal's modules: where a forecast started, state
properties in people's words, an ensemble's member runs folded into its box for paper, and what a plot's PNG
carries beside its lines (whose it is, the time zone, a legend)."""

from __future__ import annotations

from typing import Any

from test_portal_words import run


def test_where_a_run_started_and_state_properties_read_as_words() -> None:
    """The page says a run's start as the engine words it (``StartRead.text``, one sentence on every surface)."""
    start = {"revision": 99, "text": "started from revision 99 (storage 13.83 mm at 2026-03-02 00:00 UTC)"}
    said = run(("pages/view.js", "startWords", [start]), ("pages/view.js", "startWords", [None]),
               ("pages/view.js", "propWords", ["forecast_peak_level"]))
    assert said == [start["text"], "", "forecast peak level"]


def test_an_ensembles_members_fold_into_its_box_for_paper() -> None:
    members = [f"twin:run/run-{i}" for i in range(16)]
    doc: dict[str, Any] = {
        "entity": {"twin:graph/abc": {}}, "agent": {"twin:identity/uma": {}},
        "activity": {"twin:run/ens-1": {"prov:type": "twin:WorkflowRun"}, **{m: {} for m in members}},
        "wasInformedBy": {f"_:i{i}": {"prov:informed": "twin:run/ens-1", "prov:informant": m}
                          for i, m in enumerate(members)},
        "used": {"_:u": {"prov:activity": "twin:run/ens-1", "prov:entity": "twin:graph/abc"}}}
    folded, alone = run(("pages/view.js", "foldMembers", [doc]),
                        ("pages/view.js", "foldMembers", [{**doc, "wasInformedBy": {}}]))
    assert list(folded["activity"]) == ["twin:run/ens-1"]
    assert folded["activity"]["twin:run/ens-1"]["prov:type"] == "twin:Ensemble of 16 member runs"
    assert "wasInformedBy" not in folded and folded["used"] == doc["used"] and folded["entity"] == doc["entity"]
    assert len(alone["activity"]) == 17  # nothing to fold: the document as it was


def test_a_plots_png_says_whose_it_is_its_time_zone_and_its_legend() -> None:
    plot = {"series": [{"label": "time (UTC)"}, {"label": "level (m)", "stroke": "#1f5f99"},
                       {"label": "forecast, mean of 16 members", "stroke": "#2e8b57", "dash": [6, 3]},
                       {"label": "switched off", "stroke": "#000", "show": False}]}
    caption, skill, legend = run(("plot.js", "pngCaption", ["demo-reach", True]),
                                 ("plot.js", "pngCaption", ["demo-reach", False]),
                                 ("plot.js", "legendEntries", [plot]))
    assert (caption, skill) == ("demo-reach · times in UTC", "demo-reach")
    assert legend == [["level (m)", "#1f5f99", False], ["forecast, mean of 16 members", "#2e8b57", True]]
