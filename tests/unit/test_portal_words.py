"""The portal's own words and files, run in Node on its modules: CSV as RFC 4180 writes it, values as words
(never raw JSON), ages as people say them, the skill per lead time in sentences, and a run's provenance as the
relations of its PROV-JSON document."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from helpers import REPO

JS = REPO / "src" / "twinengine" / "ui" / "static" / "js"
SCRIPT = """
const [dir, calls] = [process.argv[1], JSON.parse(process.argv[2])];
(async () => {
  const out = [];
  for (const [file, name, args] of calls) {
    const module = await import(require("url").pathToFileURL(`${dir}/${file}`).href);
    out.push(module[name](...args));
  }
  console.log(JSON.stringify(out));
})();
"""


def run(*calls: tuple[str, str, list[Any]]) -> list[Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs): the portal's modules cannot run here")
    done = subprocess.run([node, "-e", SCRIPT, str(JS), json.dumps(calls)], capture_output=True, text=True,
                          timeout=60, check=True)
    return list(json.loads(done.stdout))


def test_csv_quotes_what_needs_quoting_and_ends_lines_in_crlf() -> None:
    [text] = run(("dom.js", "csvText", [["twin", "note"], [["reach-1", 'said "high", then low'], ["r2", None],
                                                           ["r3", "two\nlines"]]]))
    assert text == 'twin,note\r\nreach-1,"said ""high"", then low"\r\nr2,\r\nr3,"two\nlines"\r\n'


def test_values_read_as_words_and_ages_as_people_say_them() -> None:
    now = 1_764_000_000_000  # 2025-11-24 16:00:00 UTC, in ms
    words, ago_14, ago_3h, ago_days, just, name = run(
        ("dom.js", "words", [{"mean": 1.25, "members": [1, 2, 3], "peak": {"at": "t", "value": 3}}]),
        ("dom.js", "ago", ["2025-11-24T15:46:00Z", now]),
        ("dom.js", "ago", ["2025-11-24T12:55:00Z", now]),
        ("dom.js", "ago", ["2025-11-20T14:00:00Z", now]),
        ("dom.js", "ago", ["2025-11-24T15:59:30Z", now]),
        ("dom.js", "fileName", ["Level at the outlet gauge (m)", "csv"]))
    assert words == "mean: 1.25, members: (1, 2, 3), peak: (at: t, value: 3)"
    assert (ago_14, ago_3h, ago_days, just) == ("14 min ago", "3 h 5 min ago", "4 days 2 h ago", "just now")
    assert name == "Level-at-the-outlet-gauge-m.csv"


def test_the_skill_per_lead_reads_as_sentences() -> None:
    leads = [
        {"lead_seconds": 21600, "n": 28, "coverage": 0.88, "interval_level": 0.9, "nse": 0.914, "kge": None,
         "crps": 0.0412, "rmse": 0.1, "workflow": "forecast", "model_version": "2", "members": 16},
        {"lead_seconds": 21600, "n": 30, "coverage": None, "interval_level": None, "nse": 0.5, "kge": None,
         "crps": None, "rmse": 0.3, "workflow": "forecast", "model_version": "1", "members": None},
        {"lead_seconds": 3600, "n": 3, "coverage": None, "interval_level": None, "nse": None, "kge": None,
         "crps": None, "rmse": 0.05, "workflow": None, "model_version": None, "members": None},
    ]
    [picked] = run(("trust.js", "byLead", [leads]))
    assert [(g["lead_seconds"], g["n"]) for g in picked] == [(3600, 3), (21600, 28)]  # an ensemble's first
    six, one = run(("trust.js", "leadSentence", [picked[1], "m"]), ("trust.js", "leadSentence", [picked[0], "m"]))
    assert six == ("6-h forecasts were within the 90 % band 88 % of the time (NSE 0.91, CRPS 0.0412 m, 28 checked; "
                   "workflow forecast, model version 2, 16 members)")
    assert one == "1-h forecasts were checked against what was observed (RMSE 0.05 m, 3 checked)"
    old, recent = run(("trust.js", "skillWindow", ["2025-09-01T00:00:00Z", 30, 1_764_000_000_000]),
                      ("trust.js", "skillWindow", ["2025-11-24T15:00:00Z", 30, 1_764_000_000_000]))
    assert old["words"] == "the 30 days up to 2025-09-01 00:01 UTC" and old["until"] == "2025-09-01T00:01:00.000Z"
    assert recent["words"] == "the last 30 days" and recent["until"] == "2025-11-24T16:00:00.000Z"


def test_provenance_relations_run_from_inputs_through_the_run_to_outputs() -> None:
    doc = {"entity": {"twin:graph/abc": {"prov:type": "twin:ProcessGraph"}, "twin:result/run-1/result.json": {}},
           "activity": {"twin:run/run-1": {"prov:type": "twin:WorkflowRun"}},
           "agent": {"twin:identity/uma": {"prov:type": "prov:Person"}},
           "used": {"_:u1": {"prov:activity": "twin:run/run-1", "prov:entity": "twin:graph/abc"}},
           "wasGeneratedBy": {"_:g1": {"prov:entity": "twin:result/run-1/result.json",
                                       "prov:activity": "twin:run/run-1"}},
           "wasAssociatedWith": {"_:a1": {"prov:activity": "twin:run/run-1", "prov:agent": "twin:identity/uma"}}}
    edges, label = run(("prov.js", "provEdges", [doc]),
                       ("prov.js", "provLabel", ["twin:result/run-1/result.json", {"prov:type": "twin:RunResult"}]))
    assert edges == [["twin:graph/abc", "twin:run/run-1", "used by"],
                     ["twin:run/run-1", "twin:result/run-1/result.json", "generated"],
                     ["twin:identity/uma", "twin:run/run-1", "ran"]]
    assert label == "RunResult · run-1/result.json"


def test_a_paused_function_reads_as_why_since_when_and_the_command_that_resumes_it() -> None:
    """What the streams page shows of a function the API answers as paused, and nothing for a running one."""
    fn = {"name": "gauge", "paused": True, "paused_at": "2026-03-01T00:05:00.123456Z",
          "paused_reason": "3 batches in a row failed; the last: KeyError: 'depth' (at fail_app/fns.py:5)"}
    running, said, unrecorded = run(("paused.js", "pausedWords", ["well", {"name": "gauge", "paused": False}]),
                                    ("paused.js", "pausedWords", ["well", fn]),
                                    ("paused.js", "pausedWords", ["well", {"name": "gauge", "paused": True}]))
    assert running is None
    assert said == {"title": "Function gauge is paused", "since": "since 2026-03-01 00:05:00Z",
                    "reason": fn["paused_reason"], "command": "twin stream resume well gauge"}
    assert unrecorded["reason"] == "no reason was recorded" and unrecorded["since"] == ""
