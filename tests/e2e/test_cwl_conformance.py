"""The CWL v1.2 conformance tests tagged ``required`` (kept as data under ``tests/data/cwl-v1.2`` with their
licence; none of them is tagged ``docker`` or ``networkaccess``, which are excluded all the same) run with
``cwltest`` through the engine's CWL path (``twin cwl run``: cwltool in a sandboxed worker, as packages run);
those the engine fails then run through cwltool alone with ``--no-container``, the same option the engine's
worker gives it, and must fail there too: the engine's path loses nothing of cwltool. Slow (minutes, one worker
per test, two at a time): CI runs it (``ci_only``); the counts are printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from helpers import OFFLINE, REPO, need_sandbox
from ogc_fixtures import cwl_python, cwl_site

TESTS = REPO / "tests" / "data" / "cwl-v1.2"
pytestmark = [pytest.mark.ci_only, pytest.mark.sandbox, pytest.mark.timeout(2400)]  # minutes of cwltest


SELECTED = ["--test", "conformance_tests.yaml", "--tags", "required", "--exclude-tags", "docker,networkaccess"]


def _cwltest(tool: list[str], report: Path, env: dict[str, str], only: list[int] | None = None
             ) -> tuple[set[str], set[str]]:
    """The short names of the tests that passed and of those that failed, by cwltest's JUnit report; ``only``:
    these tests by their number in the selection."""
    cwltest = cwl_python().parent / "cwltest"
    numbers = ["-n", ",".join(map(str, only))] if only else []
    subprocess.run([str(cwltest), *SELECTED, *numbers, "-j2", "--junit-xml", str(report), "--tool", tool[0], "--",
                    *tool[1:]], cwd=TESTS, env=env, capture_output=True, text=True, timeout=3600)
    passed, failed = set(), set()
    cases = list(ElementTree.parse(report).getroot().iter("testcase"))
    # the test's id is its "file" ("name" is its doc); with -n, cwltest 2.7 labels the k-th case with the k-th
    # test of the whole selection, while its result is the k-th one asked for: the names come from ``only``
    names = [str(case.get("file")) for case in cases] if not only else [_names(env)[n] for n in only]
    for name, case in zip(names, cases, strict=True):
        if case.find("skipped") is not None:
            continue
        (failed if case.find("failure") is not None or case.find("error") is not None else passed).add(name)
    return passed, failed


def _names(env: dict[str, str]) -> dict[int, str]:
    """Each selected test's short name by its number for cwltest's ``-n`` (``-s`` cannot name the first)."""
    listed = subprocess.run([str(cwl_python().parent / "cwltest"), *SELECTED, "-l"], cwd=TESTS, env=env,
                            capture_output=True, text=True, timeout=300, check=True)
    found = (re.match(r"\[(\d+)\] ([^:]+):", line) for line in listed.stdout.splitlines())
    return {int(match[1]): match[2] for match in found if match}


def test_the_engine_passes_every_required_conformance_test_cwltool_passes(tmp_path: Path) -> None:
    """The engine runs all 84; cwltool alone then runs those the engine failed, each of which it must fail too
    (what cwltool passes, the engine passes: running cwltool alone on the 82 both pass told nothing more, and
    took a third of this file's time)."""
    need_sandbox()
    # no network for cwltool alone either, as in the engine's sandbox (a test names a format on example.com)
    env = {**os.environ, **OFFLINE, "TWIN_CWL_RUNNER_SITE": str(cwl_site()), "TWIN_DATA_DIR": str(tmp_path / "data")}
    numbers = {name: number for number, name in _names(env).items()}
    assert len(numbers) == 84, len(numbers)  # the selection is the one the docs count
    twin = str(Path(sys.executable).parent / "twin")
    engine_passed, engine_failed = _cwltest([twin, "cwl", "run"], tmp_path / "engine.xml", env)
    assert len(engine_passed) + len(engine_failed) == 84  # each ran
    alone_passed: set[str] = set()
    alone_failed: set[str] = set()
    if engine_failed:
        alone_passed, alone_failed = _cwltest([str(cwl_python().parent / "cwltool"), "--no-container"],
                                              tmp_path / "cwltool.xml", env,
                                              only=sorted(numbers[name] for name in engine_failed))
    print(f"\nCWL v1.2 required: through the engine {len(engine_passed)} passed, {len(engine_failed)} failed "
          f"({', '.join(sorted(engine_failed))}); cwltool alone failed {len(alone_failed)} of those "
          f"{len(engine_failed)}")
    assert len(engine_passed) >= 80
    assert alone_failed == engine_failed, {"cwltool alone passes, the engine fails": sorted(alone_passed)}
