"""The CWL v1.2 conformance tests tagged ``required`` (kept as data under ``tests/data/cwl-v1.2`` with their
licence; none of them is tagged ``docker`` or ``networkaccess``, which are excluded all the same) run with
``cwltest`` twice in the same run: through the engine's CWL path (``twin cwl run``: cwltool in a sandboxed
worker, as packages run) and through cwltool alone with ``--no-container``, the same option the engine's worker
gives it. Both pass the same tests, so the engine's path loses nothing of cwltool. Slow (minutes, one worker per
test, two at a time): CI runs it (``ci_only``); the counts are printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from helpers import OFFLINE, REPO, need_sandbox
from ogc_fixtures import cwl_python, cwl_site

TESTS = REPO / "tests" / "data" / "cwl-v1.2"
pytestmark = [pytest.mark.ci_only, pytest.mark.sandbox, pytest.mark.timeout(2400)]  # minutes of cwltest


def _cwltest(tool: list[str], report: Path, env: dict[str, str]) -> tuple[set[str], set[str]]:
    """The ids of the tests that passed and of those that failed, by cwltest's JUnit report."""
    cwltest = cwl_python().parent / "cwltest"
    subprocess.run([str(cwltest), "--test", "conformance_tests.yaml", "--tags", "required", "--exclude-tags",
                    "docker,networkaccess", "-j2", "--junit-xml", str(report), "--tool", tool[0], "--", *tool[1:]],
                   cwd=TESTS, env=env, capture_output=True, text=True, timeout=3600)
    passed, failed = set(), set()
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        name = str(case.get("name"))
        if case.find("skipped") is not None:
            continue
        (failed if case.find("failure") is not None or case.find("error") is not None else passed).add(name)
    return passed, failed


def test_the_engine_passes_the_same_required_conformance_tests_as_cwltool(tmp_path: Path) -> None:
    need_sandbox()
    # no network for cwltool alone either, as in the engine's sandbox (a test names a format on example.com)
    env = {**os.environ, **OFFLINE, "TWIN_CWL_RUNNER_SITE": str(cwl_site()), "TWIN_DATA_DIR": str(tmp_path / "data")}
    alone_passed, alone_failed = _cwltest([str(cwl_python().parent / "cwltool"), "--no-container"],
                                          tmp_path / "cwltool.xml", env)
    twin = str(Path(sys.executable).parent / "twin")
    engine_passed, engine_failed = _cwltest([twin, "cwl", "run"], tmp_path / "engine.xml", env)
    print(f"\nCWL v1.2 required: cwltool alone {len(alone_passed)} passed, {len(alone_failed)} failed; through the "
          f"engine {len(engine_passed)} passed, {len(engine_failed)} failed")
    assert len(alone_passed) >= 80  # the tests ran (84 are tagged required)
    assert engine_passed == alone_passed, {"only cwltool": sorted(alone_passed - engine_passed),
                                           "only the engine": sorted(engine_passed - alone_passed)}
