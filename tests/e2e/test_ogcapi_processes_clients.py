"""OGC API - Processes as its clients see it, on ``twin serve``: OWSLib's ``owslib.ogcapi.processes`` drives the
engine over HTTP (landing page, conformance, processes, execution sync and async, the job and its results), and
every document parses with the models of ``ogc-api-processes-client`` (generated from the standard's OpenAPI
description). The job list's filters of Part 1 and its keyset pages are checked against the jobs' own documents.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from ogc_api_processes_client.models import (
    ConfClasses,
    JobList,
    LandingPage,
    Process,
    ProcessList,
    StatusInfo,
)
from ogc_api_processes_client.models import Exception as OgcException
from owslib.ogcapi.processes import Processes

from helpers import admin_token, serve_settings
from streams_fixtures import eventually
from twinengine.config import Settings

CORE = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core"


@dataclass
class Served:
    url: str
    token: str
    http: httpx.Client

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("ogc-clients") / "data")
    with serve_settings(settings) as url:
        token = admin_token(settings)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
            yield Served(url, token, http)


def _owslib(served: Served, path: str = "/ogcapi/") -> Processes:
    return Processes(served.url + path, headers=dict(served.auth), timeout=120)


def _ended(served: Served, job: str) -> dict[str, Any]:
    status: dict[str, Any] = {}

    def ended() -> bool:
        status.update(served.http.get(f"/ogcapi/jobs/{job}").json())
        return status["status"] in ("successful", "failed", "dismissed")

    eventually(ended)
    return status


def test_owslib_drives_the_engine_and_the_documents_parse_with_the_ogc_models(served: Served) -> None:
    client = _owslib(served)
    assert LandingPage.from_dict(client.response) is not None
    assert {link["rel"] for link in client.links} >= {"service-desc", "http://www.opengis.net/def/rel/ogc/1.0/processes"}
    conformance = client.conformance()
    assert CORE in ConfClasses.from_dict(conformance).conforms_to  # type: ignore[union-attr]
    listed = client.processes()
    assert "echo" in {p["id"] for p in listed}
    assert ProcessList.from_dict({"processes": listed, "links": []}) is not None
    described = Process.from_dict(client.process("echo"))
    assert described is not None and set(described.inputs or {}) == {"echoInput", "pause"}

    sync = client.execute("echo", {"echoInput": "from OWSLib"}, response="document")
    assert sync == {"echoOutput": "from OWSLib"}
    monitor = client.response_headers["Link"]
    assert 'rel="monitor"' in monitor

    accepted = client.execute("echo", {"echoInput": "later", "pause": 0.5}, response="document", async_=True)
    status = StatusInfo.from_dict(accepted)
    assert status is not None and status.job_id and status.process_id == "echo"
    location = client.response_headers["Location"]
    assert location.endswith(f"/ogcapi/jobs/{status.job_id}")
    ended = _ended(served, status.job_id)
    assert StatusInfo.from_dict(ended).status.value == "successful"  # type: ignore[union-attr]
    rels = {link["rel"]: link["href"] for link in ended["links"]}
    assert rels["describedby"].endswith(f"/api/v1/runs/{status.job_id}/crate")
    results = Processes(location + "/results", headers=dict(served.auth), timeout=120).response
    assert results == {"echoOutput": "later"}

    jobs = served.http.get("/ogcapi/jobs", params={"processID": "echo"}).json()
    parsed = JobList.from_dict(jobs)
    assert parsed is not None and {j.job_id for j in parsed.jobs} >= {status.job_id}
    missing = served.http.get("/ogcapi/jobs/no-such-job")
    assert missing.status_code == 404
    assert OgcException.from_dict(missing.json()).type.endswith("no-such-job")  # type: ignore[union-attr]


def _echo(served: Served, text: str, pause: float | None = None) -> str:
    inputs: dict[str, Any] = {"echoInput": text, **({"pause": pause} if pause is not None else {})}
    answer = served.http.post("/ogcapi/processes/echo/execution", json={"inputs": inputs},
                              headers={"Prefer": "respond-async"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["jobID"])


def _failed_run(served: Served) -> str:
    """A run started through the engine's API (no processID) that fails."""
    graph = {"process_graph": {"a": {"process_id": "array_element", "arguments": {"data": [1], "index": 5},
                                     "result": True}}}
    answer = served.http.post("/api/v1/runs", json={"process": graph})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _listed(served: Served, **params: Any) -> list[str]:
    answer = served.http.get("/ogcapi/jobs", params={"limit": 1000, **params})
    assert answer.status_code == 200, answer.text
    return [job["jobID"] for job in answer.json()["jobs"]]


def test_the_job_list_filters_as_part_1_asks(served: Served) -> None:
    made = [_echo(served, "a"), _echo(served, "b", pause=1.0), _failed_run(served), _echo(served, "c")]
    documents = {job: _ended(served, job) for job in made}
    ours = set(made)

    def mine(**params: Any) -> set[str]:
        return set(_listed(served, **params)) & ours

    assert mine(processID="echo") == {made[0], made[1], made[3]}
    assert mine(processID="nothing-like-it") == set()
    assert mine(status="failed") == {made[2]}
    assert mine(status="successful,failed") == ours
    assert mine(type="process") == ours and mine(type="other") == set()
    created = sorted(_when(d["created"]) for d in documents.values())
    start, end = created[1], created[2]
    window = {job for job, d in documents.items() if start <= _when(d["created"]) <= end}
    assert mine(datetime=f"{start.isoformat()}/{end.isoformat()}") == window
    assert mine(datetime=f"../{start.isoformat()}") == {
        job for job, d in documents.items() if _when(d["created"]) <= start}
    seconds = {job: (_when(d["finished"]) - _when(d["started"])).total_seconds() for job, d in documents.items()}
    ordered = sorted(seconds.values())
    # a cut between two durations (SQLite's julian days round a duration to about a millisecond)
    cut = next((a + b) / 2 for a, b in pairwise(ordered) if b - a > 0.01)
    assert mine(minDuration=cut) == {job for job, s in seconds.items() if s >= cut}
    assert mine(maxDuration=cut) == {job for job, s in seconds.items() if s <= cut}


@pytest.mark.parametrize(("params", "named"), [
    ({"status": "finished"}, "status"), ({"datetime": "yesterday"}, "datetime"),
    ({"datetime": "2026-02-01T00:00:00Z/2026-01-01T00:00:00Z"}, "datetime"), ({"minDuration": -1}, "minDuration"),
    ({"minDuration": 5, "maxDuration": 1}, "maxDuration"), ({"after": "not-a-page"}, "after"),
])
def test_a_bad_filter_is_a_400_naming_it(served: Served, params: dict[str, Any], named: str) -> None:
    answer = served.http.get("/ogcapi/jobs", params=params)
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["detail"]


def test_pages_follow_by_keyset_without_gaps_or_repeats(served: Served) -> None:
    for n in range(3):
        _echo(served, f"page {n}")
    whole = _listed(served)
    seen: list[str] = []
    path: str | None = "/ogcapi/jobs?limit=2"
    while path is not None:
        page = served.http.get(path).json()
        seen += [job["jobID"] for job in page["jobs"]]
        path = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    assert seen == whole and len(whole) >= 3


def test_a_user_lists_only_their_own_jobs(served: Served, tmp_path: Path) -> None:
    mine = _echo(served, "the admin's")
    created = served.http.post("/api/v1/tokens", json={"name": "ana", "role": "user"})
    assert created.status_code in (200, 201), created.text
    as_ana = {"Authorization": f"Bearer {created.json()['token']}"}
    answer = served.http.post("/ogcapi/processes/echo/execution", json={"inputs": {"echoInput": "ana's"}},
                              headers={**as_ana, "Prefer": "respond-async"})
    assert answer.status_code == 201, answer.text
    listed = served.http.get("/ogcapi/jobs", headers=as_ana).json()["jobs"]
    assert [job["jobID"] for job in listed] == [answer.json()["jobID"]]
    assert mine not in {job["jobID"] for job in listed}


def _nested(url: str, text: Any, depth: int = 1) -> dict[str, Any]:
    inner: Any = text
    for _ in range(depth):
        inner = {"process": f"{url}/ogcapi/processes/echo", "inputs": {"echoInput": inner},
                 "outputs": {"echoOutput": {}}}
    return inner


def test_nested_processes_compile_to_one_openeo_graph(served: Served) -> None:
    """Part 3: a process's output as another's input, the whole request one run whose graph has a node per
    process and one ``ogc_output`` per output handed on."""
    answer = served.http.post("/ogcapi/processes/echo/execution", headers={"Prefer": "respond-async"},
                              json={"inputs": {"echoInput": _nested(served.url, "from deep inside", depth=2)},
                                    "response": "document"})
    assert answer.status_code == 201, answer.text
    job = answer.json()["jobID"]
    assert _ended(served, job)["status"] == "successful"
    assert served.http.get(f"/ogcapi/jobs/{job}/results").json() == {"echoOutput": "from deep inside"}
    graph = served.http.get(f"/openeo/1.2/jobs/{job}").json()["process"]["process_graph"]
    calls = sorted((node["process_id"], node.get("namespace")) for node in graph.values())
    assert calls == [("echo", "ogc")] * 3 + [("ogc_output", "ogc")] * 2
    conformance = served.http.get("/ogcapi/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-processes-3/1.0/conf/nested-processes" in conformance


@pytest.mark.parametrize(("inputs", "named"), [
    ({"echoInput": {"process": "http://elsewhere.example/processes/echo", "inputs": {"echoInput": "x"}}},
     "inputs.echoInput.process"),
    ({"echoInput": {"process": "/ogcapi/processes/echo", "inputs": {"echoInput": 5}}}, "inputs.echoInput.inputs"),
    ({"echoInput": {"process": "/ogcapi/processes/echo", "inputs": {"echoInput": "x"}, "outputs": {"nope": {}}}},
     "inputs.echoInput.outputs"),
    ({"echoInput": {"process": "/ogcapi/processes/no-such", "inputs": {}}}, "no-such"),
])
def test_a_bad_nested_process_is_a_400_naming_its_place(served: Served, inputs: dict[str, Any], named: str) -> None:
    answer = served.http.post("/ogcapi/processes/echo/execution", json={"inputs": inputs})
    assert answer.status_code in (400, 404), answer.text
    assert named in answer.json()["detail"], answer.json()


def test_processes_nest_only_so_deep(served: Served) -> None:
    answer = served.http.post("/ogcapi/processes/echo/execution",
                              json={"inputs": {"echoInput": _nested(served.url, "x", depth=12)}})
    assert answer.status_code == 400 and "nest at most" in answer.json()["detail"], answer.text
