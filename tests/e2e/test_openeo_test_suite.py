"""The official openEO test suite (``openeo-test-suite`` from PyPI) against a real ``twin serve`` with a rain
collection: process metadata and collections. (Its API compliance module and its HTTP runner of individual
process tests authenticate only through an OIDC client-credentials flow, which the engine does not run; the
defects they found have their own tests: tests/integration/test_workflows_openeo_api.py and
tests/unit/test_workflows_spec_processes.py, which runs the same specification tests in-process.)

The suite pins ``openapi-core==0.18.2``, which conflicts with this project's schemathesis, so it runs from
its own virtual environment (``TWIN_OPENEO_SUITE_PYTHON``, made by ``.ci/run``). Its wheel ships no test data:
the openEO API description, the openEO processes specification with its tests and the suite's payload
examples are vendored under ``tests/data`` (Apache-2.0) and laid out where the suite looks for them.
Every failure must belong to a class docs/workflows.md explains; the counts are printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from helpers import REPO, admin_token, free_port, serve_engine, unavailable
from workflow_data import write_collection

DATA = REPO / "tests" / "data"
SPEC = REPO / "src" / "twinengine" / "workflows" / "openeo" / "spec"
SUITE_TIMEOUT = 900

# Why a case of the suite cannot pass against any backend that speaks JSON, by a phrase of its failure.
EXPLAINED = {
    "stac-schemas-need-network": ("schemas.stacspec.org",),
    # the engine's own load_collection, save_result and run_udf describe what they take (formats, UDF runtime)
    "engine-process-metadata": ("[load_collection]", "[save_result]", "[run_udf]"),
}


def _assets(root: Path) -> None:
    processes = root / "assets" / "processes"
    processes.mkdir(parents=True)
    for spec in SPEC.glob("*.json"):
        shutil.copy(spec, processes / spec.name)
    shutil.copytree(SPEC / "proposals", processes / "proposals")
    shutil.copytree(DATA / "openeo-processes" / "tests", processes / "tests")
    (root / "assets" / "openeo-api").mkdir()
    shutil.copy(DATA / "openeo-api" / "openapi.yaml", root / "assets" / "openeo-api" / "openapi.yaml")
    shutil.copytree(DATA / "openeo-test-suite" / "payload_examples",
                    root / "src" / "openeo_test_suite" / "tests" / "general" / "payload_examples")


def _outcomes(junit: Path) -> tuple[Counter[str], list[tuple[str, str]]]:
    counts: Counter[str] = Counter()
    failures = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            counts["failed"] += 1
            failures.append((f"{case.get('classname')}::{case.get('name')}",
                             f"{problem.get('message', '')}\n{problem.text or ''}"))
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts, failures


@pytest.mark.slow
def test_official_openeo_test_suite(tmp_path: Path) -> None:
    python = os.environ.get("TWIN_OPENEO_SUITE_PYTHON", "")
    if not python or not Path(python).exists():
        unavailable("openeo-test-suite", "TWIN_OPENEO_SUITE_PYTHON does not name a Python with openeo-test-suite "
                                         "(.ci/run makes one)")
    _assets(tmp_path)
    data_dir = tmp_path / "data"
    write_collection(data_dir / "collections")
    port = free_port()
    with serve_engine(data_dir, port):
        token = admin_token(data_dir)
        env = {**os.environ, "OPENEO_AUTH_METHOD": "basic", "OPENEO_AUTH_BASIC_USERNAME": "admin",
               "OPENEO_AUTH_BASIC_PASSWORD": token}
        junit = tmp_path / "junit.xml"
        done = subprocess.run(
            [python, "-m", "pytest", "-p", "openeo_test_suite.lib.pytest_plugin", "--pyargs",
             "openeo_test_suite.tests.processes", "openeo_test_suite.tests.collections",
             "--openeo-backend-url", f"http://127.0.0.1:{port}", "-q", "-p", "no:cacheprovider",
             f"--junitxml={junit}"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SUITE_TIMEOUT, check=False)
    assert junit.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    counts, failures = _outcomes(junit)
    classes: Counter[str] = Counter()
    unexplained = []
    for name, text in failures:
        reason = next((k for k, phrases in EXPLAINED.items() if any(p in f"{name} {text}" for p in phrases)), None)
        if reason is None:
            unexplained.append(f"{name}: {text[:400]}")
        else:
            classes[reason] += 1
    print(f"official openEO test suite: {dict(counts)}; explained failures: {dict(classes)}")
    assert counts["passed"] > 0
    assert not unexplained, "\n".join(unexplained[:20])
