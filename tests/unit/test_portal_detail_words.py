"""Words behind the portal's details, run in Node on its modules: a provenance node's name (a dataset without a
version named alone, a revision by its twin), what a what-if changed, and the properties a subscription can
watch (never a desired-only setting)."""

from __future__ import annotations

from test_portal_words import run

DOC = {"entity": {"twin:twin/tw-1": {"prov:type": "twin:Twin", "twin:name": "demo-reach"}}}


def test_provenance_nodes_are_named_whole_in_words() -> None:
    said = run(("prov.js", "provParts", ["twin:collection/rain-forecast", {
                   "prov:type": "twin:Dataset", "twin:collection": "rain-forecast"}]),
               ("prov.js", "provParts", ["twin:collection/rain/abc", {
                   "prov:type": "twin:Dataset", "twin:collection": "rain", "twin:version": "abc"}]),
               ("prov.js", "provParts", ["twin:twin/tw-1/revision/99", {
                   "prov:type": "twin:StateRevision", "twin:role": "initial state"}, DOC]),
               ("prov.js", "provParts", ["twin:graph/" + "ab" * 32, {"prov:type": "twin:ProcessGraph"}]),
               ("prov.js", "provLabel", ["twin:run/ens-91aa7d12385386b4", {"prov:type": "twin:WorkflowRun"}]))
    assert said == [["Dataset", "rain-forecast"], ["Dataset", "rain @ abc"],
                    ["StateRevision", "revision 99 of demo-reach (initial state)"], ["ProcessGraph", "ab" * 6],
                    "WorkflowRun · ens-91aa7d12385386b4"]


def test_a_what_if_says_what_it_changed() -> None:
    run_read = {"parameters": {"storage_mm": 33, "alert_level": 6, "bbox": {"west": 7.7}},
                "start": {"parameters": {"storage_mm": {"source": "request"}}}}
    own = {"parameters": {"storage_mm": 0.524, "alert_level": 1.8},
           "start": {"parameters": {"storage_mm": {"source": "state"}}}}
    said = run(("whatifs.js", "changedWords", [run_read, ["storage_mm", "alert_level"]]),
               ("whatifs.js", "changedWords", [own, ["storage_mm", "alert_level"]]),
               ("whatifs.js", "changedWords", [own, []]))
    assert said == ["storage_mm 33, alert_level 6", "storage_mm 0.524 (the twin's), alert_level 1.8", "as the twin is"]


def test_a_subscription_watches_only_what_the_twin_reports() -> None:
    manifest = {"state": {"level": {"type": "number"}, "alert": {"type": "boolean"},
                          "alert_threshold": {"type": "number", "desired_only": True},
                          "head": {"type": "number", "key": "well"}}}
    said = run(("pages/subscriptions.js", "watchable", [manifest]),
               ("pages/subscriptions.js", "watchable", [manifest, True]))
    assert said == [["level", "alert"], ["level"]]


def test_the_app_s_bookkeeping_is_named_once_and_left_out_of_tables_plots_and_conditions() -> None:
    """pulsar-rfi keeps each channel's memory of being flagged (64 numbers) in its state for its own next call:
    a person reading the twin's page should not have to read past it, nor be offered it to plot or watch."""
    manifest = {"state": {"level": {"type": "number"}, "channel_memory": {"type": "array", "internal": True},
                          "calls": {"type": "integer", "internal": True}}}
    state = {"reported": {"level": {"value": 1}, "channel_memory": {"value": [0.1] * 64}, "calls": {"value": 3}},
             "desired": {}}
    said = run(("pages/twin.js", "shownProperties", [state, manifest]),
               ("pages/twin.js", "numericProps", [manifest]),
               ("pages/subscriptions.js", "watchable", [manifest]))
    assert said == [{"names": ["level"], "hidden": ["channel_memory", "calls"]}, ["level"], ["level"]]


def test_a_stream_offer_s_window_says_which_fields_it_serves() -> None:
    said = run(("pages/dataspace.js", "windowWords", [{"key": "RR-01", "key_field": "station",
                                                       "fields": ["time", "level"], "last": 21600}]))
    assert said == [" of station RR-01 of the last 6 hours (fields time, level)"]


def test_a_stream_offer_of_several_sources_names_them_as_the_catalog_does() -> None:
    from twinengine.dataspace.catalog import window_words

    windows = [{"keys": ["RR-01", "RR-03"], "key_field": "station"},
               {"keys": [f"S{i:02d}" for i in range(15)], "key_field": "sensor", "quality": ["good"]}]
    said = run(*(("pages/dataspace.js", "windowWords", [w]) for w in windows))
    assert said == [window_words(w) for w in windows]
    assert said[0] == " of station RR-01 and RR-03"
    assert said[1] == (" of sensor S00, S01, S02, S03, S04, S05, S06, S07, S08, S09, S10, S11 and 3 more "
                       "flagged good")


def test_a_negotiation_offers_the_steps_its_side_may_take_now() -> None:
    cases = [{"role": "provider", "state": "REQUESTED"}, {"role": "provider", "state": "ACCEPTED"},
             {"role": "provider", "state": "VERIFIED"}, {"role": "provider", "state": "OFFERED"},
             {"role": "consumer", "state": "OFFERED"}, {"role": "consumer", "state": "AGREED"},
             {"role": "consumer", "state": "REQUESTED", "pending": "request"},
             {"role": "consumer", "state": "FINALIZED"}]
    said = run(*(("pages/dataspace.js", "negotiationSteps", [c]) for c in cases))
    assert said == [["agree", "counter", "terminate"], ["agree", "terminate"], ["finalize", "terminate"],
                    ["terminate"], ["accept", "counter", "terminate"], ["verify", "terminate"], [], []]


def test_a_transfer_offers_the_steps_its_side_may_take_now() -> None:
    cases = [{"role": "provider", "state": "REQUESTED"}, {"role": "consumer", "state": "REQUESTED"},
             {"role": "consumer", "state": "STARTED", "pending": "push"}, {"role": "provider", "state": "STARTED",
                                                                             "pending": "complete"},
             {"role": "provider", "state": "SUSPENDED"}, {"role": "consumer", "state": "COMPLETED"}]
    said = run(*(("pages/dataspace.js", "transferSteps", [c]) for c in cases))
    assert said == [["start", "terminate"], ["terminate"], ["suspend", "complete", "terminate"], ["terminate"],
                    ["start", "terminate"], []]


def test_an_area_of_a_policy_is_said_by_its_extent() -> None:
    policy = {"permission": [{"action": "use", "constraint": [{
        "leftOperand": "spatialCoordinates", "operator": "isPartOf",
        "rightOperand": "POLYGON((7 46, 8.5 46, 8.5 47, 7 47, 7 46))"}]}]}
    said = run(("pages/dataspace.js", "policyWords", [policy]))
    assert said == ["queries within longitude 7 to 8.5, latitude 46 to 47 (a polygon of 5 corners)"]
