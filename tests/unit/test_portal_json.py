"""The portal reads the API's JSON as the API writes it: stream records and float state may hold the tokens
NaN, Infinity and -Infinity (documented in docs/streams.md), which ``JSON.parse`` refuses; the stream tail
broke on the first such record. Run in Node on the portal's own module."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from helpers import REPO

API_JS = REPO / "src" / "twinengine" / "ui" / "static" / "js" / "api.js"
SCRIPT = """
const source = require("fs").readFileSync(process.argv[1], "utf8");
import("data:text/javascript;base64," + Buffer.from(source).toString("base64")).then(({ parseJson }) => {
  const out = [];
  for (const text of JSON.parse(process.argv[2])) {
    try { out.push({ value: parseJson(text) }); } catch (error) { out.push({ error: error.name }); }
  }
  console.log(JSON.stringify(out));
});
"""


def parsed(*texts: str) -> list[dict[str, object]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs): the portal's modules cannot run here")
    done = subprocess.run([node, "-e", SCRIPT, str(API_JS), json.dumps(texts)], capture_output=True, text=True,
                          timeout=60, check=True)
    return list(json.loads(done.stdout))


def test_non_finite_tokens_are_read_as_missing_values_and_strings_are_left_alone() -> None:
    page = ('{"items": [{"_offset": 0, "level": NaN, "rain": Infinity, "low": -Infinity, "station": "NaN", '
            '"note": "a \\"quoted\\" Infinity, NaN"}, {"_offset": 1, "strain": [1.5, NaN]}], "count": 2}')
    assert parsed(page, '{"level": 1.5}', "not json", '{"level": NaNa}') == [
        {"value": {"items": [{"_offset": 0, "level": None, "rain": None, "low": None, "station": "NaN",
                              "note": 'a "quoted" Infinity, NaN'}, {"_offset": 1, "strain": [1.5, None]}],
                   "count": 2}},
        {"value": {"level": 1.5}},
        {"error": "SyntaxError"},
        {"error": "SyntaxError"},
    ]
