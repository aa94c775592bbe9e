"""The authorization matrix, generated from what each route declares (``api.route_actions``) and the policy
table (``auth.policy.RULES``): every GET route whose path names a resource made below, or names none, and the
writes in ``WRITES`` (a twin's state, its triggers) are called as twelve identities, and the answer must be what
``auth.policy.allowed`` says of the route's declared actions on that resource: allowed, never 401/403/404;
refused, 401 (no token), 403 (a role's routes, and a twin's own: the twin is named, refusing tells nothing
more) or 404 (runs, jobs and lake data: a refusal there hides that it exists); and never a 5xx. Listings
(lake identifiers, replicas, STAC, the EDR and openEO collections the portal's map draws, runs, jobs,
processes, twins) show no identity what its pages would refuse it.

One engine for the module, on SQLite (the policy is the same on every store): ``ann`` owns the twin
``ann-reach`` (river-reach) with gauge records compacted into the lake, a finished run whose results are in
the lake, an openEO job, a user-defined process and an uploaded file; she grants ``rex`` read, and read to
the group ``hydro`` whose member is ``cat``; she subscribes to ``ann-reach`` (a webhook). ``bob`` has no grant.
``ann``'s tokens are token kinds of their own: one scoped to her other twin ``ann-other`` (twins, lake and
workflows), one to ``ann-other`` that manages subscriptions only, one that reads ``ann-reach`` and nothing
else, and one exchanged for a lake site (RFC 8693), which the engine refuses everywhere (401): it is for that
site. Each identity's principal for the oracle is what ``GET /api/v1/me`` says of its token (role, groups,
scopes, twins), as the engine sees it.

Routes whose path names something not made here (a calibration, a buffer...) are left out and counted; their
refusals are covered by their own tests.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import select
from starlette.testclient import TestClient

from helpers import RIVER_REACH
from streams_fixtures import gauge
from twinengine.api import create_app
from twinengine.api.route_actions import Declaration, declared
from twinengine.auth.policy import RULES, allowed
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.auth.scopes import scope_refusal
from twinengine.auth.service import issue_token
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.config import Settings
from twinengine.daemons.streams_compactor import Compactor
from twinengine.delegation.exchange import ACCESS_TOKEN, GRANT_TYPE
from twinengine.lake.endpoints import add_endpoint
from twinengine.lake.models import Did
from twinengine.lake.schemas import DidType, EndpointCreate
from twinengine.runtime import Runtime
from twinengine.streams import records
from twinengine.streams.hub import stream_key
from twinengine.subscriptions.models import Subscription
from twinengine.twins import service as twins
from twinengine.twins.models import Twin
from twinengine.workflows import service as runs
from twinengine.workflows.models import WorkflowRun

OWNER = "ann"
IDENTITIES = ("anonymous", "owner", "other", "reader", "developer", "provider", "admin", "scoped", "member",
              "scoped-subs", "scoped-read", "exchanged")
NO_TOKEN = ("anonymous", "exchanged")  # the engine takes neither for anyone: 401 wherever a token is needed
USERS = {"owner": (OWNER, Role.USER), "other": ("bob", Role.USER), "reader": ("rex", Role.USER),
         "developer": ("dev", Role.DEVELOPER), "provider": ("pat", Role.PROVIDER), "admin": ("root", Role.ADMIN),
         "member": ("cat", Role.USER)}
TWIN, OTHER_TWIN, GROUP = "ann-reach", "ann-other", "hydro"
SCOPES = ["twins:operate", "lake:read", "workflows:run"]
SCOPED = {"scoped": {"scopes": SCOPES, "twins": [OTHER_TWIN]},  # another twin of hers, more than it reads
          "scoped-subs": {"scopes": ["subscriptions:manage"], "twins": [OTHER_TWIN]},  # another twin, one scope
          "scoped-read": {"scopes": ["twins:read"], "twins": [TWIN]}}  # her twin, fewer scopes
HOOK = "http://127.0.0.1:9/ann-receiver"  # never reached: the condition never holds
JOB = {"process": {"process_graph": {"a": {"process_id": "add", "arguments": {"x": 40, "y": 2}, "result": True}}},
       "title": "ann-private-job"}
UDP = {"process_graph": {"m": {"process_id": "multiply", "arguments": {"x": {"from_parameter": "v"}, "y": 7},
                               "result": True}}, "parameters": [{"name": "v", "schema": {"type": "number"}}]}
# Server-sent events never end for a caller they are allowed to: only refusals are asked of them.
EVENT_STREAMS = {"/api/v1/twins/{twin}/streams/{stream}/events", "/api/v1/twins/{twin}/state/events",
                 "/api/v1/twins/{twin}/training-runs/{run}/events"}
# Writes the matrix makes (each identity its own, so an allowed one conflicts with no other): state and triggers.
WRITES: dict[tuple[str, str], Callable[[str], dict[str, Any]]] = {
    ("PATCH", "/api/v1/twins/{twin}/state"): lambda who: {"reported": {"level": {"value": 1.0}}},
    ("POST", "/api/v1/twins/{twin}/triggers"): lambda who: {"name": f"on_rain_{who.replace('-', '_')}",
                                                            "kind": "dataset", "workflow": "forecast",
                                                            "collection": "rain-forecast"},
}
# Query parameters a route requires, so that an allowed caller's request is a valid one.
EDR = "/edr/collections/{collection_id}"
LINE = "LINESTRING(7.5 45.5, 8.5 46.5)"
QUERIES: dict[str, dict[str, Any]] = {
    "/api/v1/twins/{twin}/diff": {"from": 0}, "/api/v1/twins/{twin}/verification": {"property": "level"},
    "/api/v1/twins/{twin}/verification/history": {"property": "level"},
    "/api/v1/twins/{twin}/forecasts": {"property": "level"}, "/api/v1/compare": {"twin": TWIN},
    f"{EDR}/position": {"coords": "POINT(8 46)"}, f"{EDR}/radius": {"coords": "POINT(8 46)", "within": 10,
                                                                    "within-units": "km"},
    f"{EDR}/area": {"coords": "POLYGON((7.5 45.5, 8.5 45.5, 8.5 46.5, 7.5 46.5, 7.5 45.5))"},
    f"{EDR}/cube": {"bbox": "7.5,45.5,8.5,46.5"}, f"{EDR}/trajectory": {"coords": LINE},
    f"{EDR}/corridor": {"coords": LINE, "corridor-width": 10, "width-units": "km"},
}
# Routes whose path names something not made here (a retraining policy, an assimilation schedule, forecast runs).
NOT_MADE = {"/api/v1/twins/{twin}/models/{model}/policy", "/api/v1/twins/{twin}/assimilation-schedule",
            f"{EDR}/instances"}
# Sign-in mechanics, not the policy: Basic credentials for a token, and OpenID providers (none configured here).
SIGN_IN = {"/openeo/1.2/credentials/basic", "/openeo/1.2/credentials/oidc"}


def _declared_routes() -> list[tuple[str, str, Declaration]]:
    """(method, path, declaration) of every route of the app, read from an app built for it alone."""
    with tempfile.TemporaryDirectory() as folder:
        runtime = Runtime.from_settings(Settings(data_dir=Path(folder), warm_routes=False))
        try:
            app = create_app(runtime=runtime)
            found = []
            for route in iter_route_contexts(app.routes):
                if not isinstance(route.original_route, APIRoute):
                    continue
                declaration = declared(route.openapi_extra)
                if declaration is None:  # tests/unit/test_route_actions.py names it
                    continue
                found.extend((method, route.path_format, declaration) for method in sorted(route.methods or ()))
            return found
        finally:
            runtime.close()


ROUTES = _declared_routes()


@dataclass
class World:
    """The engine, what ``ann`` made, and each identity's token and principal."""

    runtime: Runtime
    http: TestClient
    twin: Twin
    subscription: Subscription
    values: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)
    principals: dict[str, Principal | None] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who in self.tokens else {}

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> Any:
        return self.http.request(method, path, headers=self.headers(who), **kwargs)


def _wait_finished(runtime: Runtime, run_id: str) -> WorkflowRun:
    runtime.workflows.notify()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with runtime.db.session(readonly=True) as session:
            run = session.get_one(WorkflowRun, run_id)
            if run.status in ("finished", "error", "canceled"):
                assert run.status == "finished", run.error
                session.expunge(run)
                return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def _gauges_in_the_lake(runtime: Runtime, twin_id: str) -> str:
    """Gauge records of the twin, compacted into the lake; the DID of one segment file."""
    principal = Principal(OWNER, Role.USER)
    with runtime.db.session(readonly=True) as session:
        declared_stream = twins.manifest_for(session, twins.get_twin(session, principal=principal, ref=twin_id)
                                             ).streams["gauges"]
    rows = [gauge(i) for i in range(60)]
    for start in range(0, len(rows), 20):
        runtime.streams.append(stream_key(twin_id, "gauges"), records.check_records(declared_stream,
                                                                                    rows[start:start + 20]),
                               time_field=declared_stream.time_field)
    with runtime.db.session() as session:
        assert Compactor(runtime).run_once(session) >= 1
    with runtime.db.session(readonly=True) as session:
        files = session.scalars(select(Did).where(Did.scope == "streams", Did.type == DidType.FILE,
                                                  Did.name.startswith(f"{twin_id}-gauges/"))).all()
    assert files
    return str(files[0].did)


def _ok(answer: Any, *statuses: int) -> Any:
    assert answer.status_code in statuses, answer.text
    return answer


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("matrix")
    settings = Settings(data_dir=root / "data", stream_segment_bytes=4096, stream_segment_entries=6,
                        lake_endpoint="disk", warm_routes=False, subscription_webhook_hosts=["127.0.0.1"])
    runtime = Runtime.from_settings(settings)
    runtime.start()
    try:
        with runtime.db.session() as session:
            add_endpoint(session, runtime.lake, principal=SYSTEM,
                         spec=EndpointCreate(name="disk", protocol="file", location=str(root / "disk")))
            publish(session, runtime.blobs, principal=SYSTEM, archive=pack(RIVER_REACH), max_archive_bytes=10**8,
                    max_unpacked_bytes=10**8, steps=runtime.publish_steps)
            tokens = {label: issue_token(session, runtime.issuer, principal=SYSTEM, name=name, role=role,
                                         ttl=timedelta(hours=2)).token for label, (name, role) in USERS.items()}
        with TestClient(create_app(runtime=runtime)) as http:
            yield _made(runtime, http, tokens, root)
    finally:
        runtime.close()


def _rain_field(root: Path) -> bytes:
    """A small gridded NetCDF file: uploaded, a lake collection of its uploader's (EDR, openEO, the map)."""
    lat, lon = np.arange(45.0, 47.01, 0.5), np.arange(7.0, 9.01, 0.5)
    rain = xr.Dataset({"rain": (("time", "lat", "lon"), np.ones((2, lat.size, lon.size)), {"units": "mm h-1"})},
                      coords={"time": pd.date_range("2026-03-01", periods=2, freq="1h"), "lat": lat, "lon": lon})
    path = root / "rain.nc"
    rain.to_netcdf(path)
    return path.read_bytes()


def _made(runtime: Runtime, http: TestClient, tokens: dict[str, str], root: Path) -> World:
    ann = {"Authorization": f"Bearer {tokens['owner']}"}
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    for name in (TWIN, OTHER_TWIN):
        _ok(http.post("/api/v1/twins", headers=ann, json={"app": "river-reach", "name": name,
                                                          "parameters": {"station": "RR-01"}}), 201)
    _ok(http.post("/api/v1/groups", headers=admin, json={"name": GROUP}), 201)
    _ok(http.put(f"/api/v1/groups/{GROUP}/members/cat", headers=admin), 200, 201)
    _ok(http.put(f"/api/v1/twins/{TWIN}/grants/rex", headers=ann, json={"permission": "read"}), 200, 201)
    _ok(http.put(f"/api/v1/twins/{TWIN}/group-grants/{GROUP}", headers=ann, json={"permission": "read"}), 200, 201)
    _ok(http.patch(f"/api/v1/twins/{TWIN}/state", headers=ann, json={"reported": {"level": {"value": 0.5}}}), 200, 201)
    twin_id = _ok(http.get(f"/api/v1/twins/{TWIN}", headers=ann), 200).json()["id"]
    file = _gauges_in_the_lake(runtime, twin_id)
    dataset = file.partition(":")[2].replace("/", "-").removesuffix(".parquet")
    with runtime.db.session() as session:
        run_id = runs.submit(session, runtime.workflows, principal=Principal(OWNER, Role.USER), twin_ref=twin_id,
                             process={"process_graph": {"sum": {"process_id": "add", "arguments": {"x": 1, "y": 2},
                                                                "result": True}}}).id
    run = _wait_finished(runtime, run_id)
    job = _ok(http.post("/openeo/1.2/jobs", headers=ann, json=JOB), 201).headers["OpenEO-Identifier"]
    _ok(http.put("/openeo/1.2/process_graphs/ann_udp", headers=ann, json=UDP), 200)
    _ok(http.post("/api/v1/lake/uploads", headers=ann, content=b"ann's notes" * 50,
                  params={"did": "ann:notes/a.bin", "endpoint": "disk"}), 201)
    _ok(http.post("/api/v1/lake/dids", headers=ann, json={"did": "ann:field", "type": "dataset"}), 201)
    _ok(http.post("/api/v1/lake/uploads", headers=ann, content=_rain_field(root),
                  params={"did": "ann:field/rain.nc", "endpoint": "disk", "dataset": "ann:field"}), 201)
    subscription = _ok(http.post("/api/v1/subscriptions", headers=ann, json={"twin": TWIN, "when": "level > 99",
                                                                             "webhook": HOOK}), 201).json()["id"]
    for label, limits in SCOPED.items():
        scoped = _ok(http.post("/api/v1/me/tokens", headers=ann, json={**limits, "expires_in": "1d"}), 201)
        tokens[label] = scoped.json()["token"]
    exchanged = _ok(http.post("/api/v1/oauth/token", data={
        "grant_type": GRANT_TYPE, "subject_token": tokens["owner"], "subject_token_type": ACCESS_TOKEN,
        "audience": "lake:disk", "scope": "lake:read twins:read"}), 200)
    tokens["exchanged"] = exchanged.json()["access_token"]
    with runtime.db.session(readonly=True) as session:
        twin = session.scalars(select(Twin).where(Twin.id == twin_id)).one()
        twin.permission_of(OWNER)  # grants loaded while the session is open
        twin.group_permission_of(frozenset({GROUP}))
        session.expunge_all()
        sub = session.get_one(Subscription, subscription)
        session.expunge(sub)
    values = {"twin_id": twin_id, "file": file, "dataset_did": f"streams:{dataset}", "item": dataset,
              "stac_collection": f"{twin_id}-gauges", "edr_collection": f"streams.{dataset}", "run": run.id,
              "results": f"results:{run.id}", "run_owner": run.owner, "job": job, "upload": "ann:notes/a.bin",
              "field": "ann.field", "subscription": subscription}
    world = World(runtime, http, twin, sub, values, tokens)
    for who in NO_TOKEN:
        world.principals[who] = None
    assert world.call("exchanged", "GET", "/api/v1/me").status_code == 401  # for its site, not this engine
    for who in (w for w in IDENTITIES if w not in NO_TOKEN):
        me = _ok(world.call(who, "GET", "/api/v1/me"), 200).json()
        world.principals[who] = Principal(me["name"], Role(me["role"]), groups=frozenset(me["groups"]),
                                          scopes=None if me["scopes"] is None else frozenset(me["scopes"]),
                                          twins=None if me["twins"] is None else frozenset(me["twins"]))
    assert world.principals["member"] is not None and GROUP in world.principals["member"].groups
    return world


# What a path names, and who may reach it: the oracle's part beyond the declared actions, each from the policy.
def _reads_twin(world: World, p: Principal) -> bool:
    return allowed(p, "twin.read", world.twin)


def _reads_run(world: World, p: Principal) -> bool:
    """A run is its owner's, and readable by whoever reads its twin (``workflows.service.get_run``); the run
    of a twin is the twin's data: a token limited to other twins reaches it only as it reaches the twin."""
    own = p.name == world.values["run_owner"] and p.twins is None
    return p.is_admin or own or _reads_twin(world, p)


def _reaches_twin_data(world: World, p: Principal) -> bool:
    """What belongs to a twin (a subscription to it, with its target and deliveries) is, to a token limited to
    some twins, the twin's: reached only as the twin is."""
    return p.twins is None or _reads_twin(world, p)


def _owns(world: World, p: Principal) -> bool:
    """What ``ann`` uploads or submits without a twin is hers alone (and admins')."""
    return p.is_admin or p.name == OWNER


@dataclass(frozen=True)
class Target:
    """One concrete request for a route: what it names (``kind``) and how that is reached."""

    kind: str  # twin, run, job, twin-data, run-data, upload, group, subscription, udp; role: nothing of anyone's
    values: dict[str, str]


def _targets(path: str) -> list[Target]:
    """The resources made here that ``path``'s parameters can name (none: the route is left out)."""
    params = set(re.findall(r"{(\w+)", path))
    twin_params = {"twin": TWIN, "stream": "gauges", "prop": "level", "revision": "1", "model": "runoff_correction",
                   "view": "flood"}
    if path in NOT_MADE or path in SIGN_IN:
        return []
    if path.startswith("/api/v1/twins/{twin}") and params <= set(twin_params):
        return [Target("twin", {k: v for k, v in twin_params.items() if k in params})]
    if path.startswith("/api/v1/runs/{run_id}") and params == {"run_id"}:
        return [Target("run", {"run_id": "{run}"})]
    if path.startswith("/openeo/1.2/jobs/{job_id}") and params == {"job_id"}:
        return [Target("job", {"job_id": "{job}"}), Target("run", {"job_id": "{run}"})]
    if path.startswith("/api/v1/lake/dids/{did}") and params == {"did"}:
        return [Target("twin-data", {"did": "{file}"}), Target("twin-data", {"did": "{dataset_did}"}),
                Target("run-data", {"did": "{results}"}), Target("upload", {"did": "{upload}"})]
    if path.startswith("/stac/collections/{collection_id}") and params == {"collection_id"}:
        return [Target("twin-data", {"collection_id": "{stac_collection}"})]
    if path == "/stac/collections/{collection_id}/items/{item_id}":
        return [Target("twin-data", {"collection_id": "{stac_collection}", "item_id": "{item}"}),
                Target("run-data", {"collection_id": "workflow-results", "item_id": "{run}"})]
    if path.startswith("/edr/collections/{collection_id}") and params == {"collection_id"}:
        return [Target("twin-data", {"collection_id": "{edr_collection}"}),
                Target("upload", {"collection_id": "{field}"})]
    if path == "/api/v1/compare":
        return [Target("twin", {})]
    if path.startswith("/api/v1/apps/{name}") and params <= {"name", "version"}:
        return [Target("role", {k: v for k, v in (("name", "river-reach"), ("version", "0.1.0")) if k in params})]
    if path == "/api/v1/lake/endpoints/{name}":
        return [Target("role", {"name": "disk"})]
    if path == "/api/v1/groups/{name}":
        return [Target("group", {"name": GROUP})]
    if path == "/openeo/1.2/process_graphs/{process_graph_id}":
        return [Target("udp", {"process_graph_id": "ann_udp"})]
    if path.startswith("/api/v1/subscriptions/{id}") and params == {"id"}:
        return [Target("subscription", {"id": "{subscription}"})]
    if path == "/openeo/1.2/collections/{collection_id}":
        return [Target("upload", {"collection_id": "{field}"})]
    if not params:
        return [Target("role", {})]
    return []


def _reads_a_resource(action: str) -> bool:
    """Whether the action's rule reads the resource (an owner's, a grant's): a route naming none in its path
    (a listing) filters by it, which the listings below check."""
    try:
        RULES[action](Principal("probe", Role.USER), None)
    except AttributeError:
        return True
    return False


def _cell_targets(path: str, declaration: Declaration) -> list[Target]:
    found = _targets(path)
    if [t for t in found if t.kind == "role"] and any(_reads_a_resource(a) for a in declaration.actions):
        return []
    return found


CELLS = [(method, path, declaration, target, who)
         for method, path, declaration in ROUTES
         if method == "GET" or (method, path) in WRITES
         for target in _cell_targets(path, declaration)
         for who in IDENTITIES]
LEFT_OUT = sorted({f"{method} {path}" for method, path, declaration in ROUTES
                   if not _cell_targets(path, declaration) and (method == "GET" or (method, path) in WRITES)})


def _cell_id(cell: tuple[str, str, Declaration, Target, str]) -> str:
    method, path, _declaration, target, who = cell
    return f"{method} {path} [{target.kind}:{'/'.join(target.values.values())}] as {who}"


def expected(world: World, declaration: Declaration, target: Target, who: str) -> bool:
    """What the policy says: every declared action allowed (on the twin for a twin's actions), and the
    resource's own reach (a run's, a job's, lake data's origin)."""
    p = world.principals[who]
    if p is None:
        return declaration.public and target.kind == "role"
    for action in declaration.actions:
        if action == "twin.read" and target.kind in ("run", "job"):
            continue  # a run's reach below stands for it
        on = world.twin if target.kind == "twin" and _reads_a_resource(action) else None
        if target.kind == "subscription" and _reads_a_resource(action):
            on = world.subscription if action.startswith("subscription.") else world.twin
        if not allowed(p, action, on):
            return False
    reach = {"twin": lambda: True, "role": lambda: True, "run": lambda: _reads_run(world, p),
             "job": lambda: _owns(world, p), "twin-data": lambda: _reads_twin(world, p),
             "run-data": lambda: _reads_run(world, p), "upload": lambda: _owns(world, p),
             "group": lambda: p.is_admin or GROUP in p.groups, "subscription": lambda: _reaches_twin_data(world, p),
             "udp": lambda: p.name == OWNER}  # one's own processes: admins see theirs, not hers
    return reach[target.kind]()


# How each kind is refused: a role's routes and a twin's own say 403; runs, jobs and lake data hide behind 404;
# a group is 404 to a non-member and 403 to a token whose scopes leave out reading groups at all.
# A subscription is its owner's: another caller, or a token whose scopes or twins leave it out, is told it does
# not exist.
REFUSED = {"role": {403}, "twin": {403}, "run": {404}, "job": {404}, "twin-data": {404}, "run-data": {404},
           "upload": {404}, "group": {403, 404}, "subscription": {404}, "udp": {404}}


def test_the_matrix_covers_the_surfaces() -> None:
    """Lake, STAC, EDR (the map's layers), runs, jobs, triggers, streams and the twin's own routes are in it."""
    paths = {path for _method, path, _declaration, _target, _who in CELLS}
    for prefix in ("/api/v1/lake/dids/", "/stac/collections/", "/edr/collections/", "/api/v1/runs/",
                   "/openeo/1.2/jobs/", "/api/v1/twins/{twin}/triggers", "/api/v1/twins/{twin}/streams/",
                   "/api/v1/subscriptions/"):
        assert any(p.startswith(prefix) for p in paths), prefix
    print(f"\nauthorization matrix: {len(CELLS)} cells over {len({(m, p) for m, p, *_ in CELLS})} routes and "
          f"{len(IDENTITIES)} identities; {len(LEFT_OUT)} routes name nothing made here:\n  " + "\n  ".join(LEFT_OUT))
    assert len(CELLS) > 500
    assert {who for *_rest, who in CELLS} == set(IDENTITIES)  # every token kind, on every route it covers


@pytest.mark.parametrize("cell", CELLS, ids=_cell_id)
def test_the_answer_is_what_the_policy_says(world: World, cell: tuple[str, str, Declaration, Target, str]) -> None:
    method, template, declaration, target, who = cell
    values = {k: v.format(**world.values) for k, v in target.values.items()}
    path = template.format(**values) if values else template
    want = expected(world, declaration, target, who)
    if want and template in EVENT_STREAMS:
        pytest.skip("an event stream allowed never ends; its refusals are checked")
    body = WRITES[(method, template)](who) if (method, template) in WRITES else None
    got = world.call(who, method, path, params=QUERIES.get(template), json=body)
    assert got.status_code < 500, got.text
    if who == "exchanged" and declaration.public:  # a public route may answer a token it refuses with 401
        assert got.status_code == 401 or (want and got.status_code not in (403, 404)) or (
            not want and got.status_code in REFUSED[target.kind]), f"{got.status_code} {got.text[:300]}"
        return
    if want:
        assert got.status_code not in (401, 403, 404), f"{who} refused: {got.status_code} {got.text[:300]}"
    else:
        p = world.principals[who]
        statuses = {401} if p is None and not declaration.public else REFUSED[target.kind]
        if p is not None and any(scope_refusal(p, action, None) for action in declaration.actions):
            statuses = statuses | {403}  # the token's scopes leave out the route's own action: says nothing of it
        assert got.status_code in statuses, f"{who} not refused as expected ({statuses}): {got.status_code} " \
                                            f"{got.text[:300]}"


STORAGE_LISTINGS = {"/api/v1/lake/replicas?endpoint=disk"}  # providers run the storage: they list every replica
LISTINGS = {  # listing → the marks the owner sees there (and others only as the oracle lets them)
    "/api/v1/lake/dids?scope=streams": ("twin",), "/api/v1/lake/dids?scope=results": ("run",),
    "/api/v1/lake/dids?scope=ann": ("upload",), "/api/v1/lake/replicas?endpoint=disk": ("twin", "upload"),
    "/stac/collections": ("twin",), "/stac/search?limit=1000": ("twin", "run"),
    "/stac/collections/workflow-results/items": ("run",), "/edr/collections": ("upload",),
    "/openeo/1.2/collections": ("upload",), "/api/v1/runs": ("run",), "/openeo/1.2/jobs": ("job",),
    "/api/v1/subscriptions": ("subscription",), "/api/v1/subscriptions?twin=ann-reach": ("subscription",),
    "/openeo/1.2/process_graphs": ("udp",), "/api/v1/twins": ("twin",), "/api/v1/fleet/twins": ("twin",),
}


def _marks(world: World) -> dict[str, tuple[str, ...]]:
    v = world.values
    return {"twin": (v["twin_id"], TWIN, v["item"]), "run": (v["run"],), "job": (v["job"], "ann-private-job"),
            "udp": ("ann_udp",), "upload": ("notes/a.bin", "ann.field", "ann:field"),
            "subscription": (v["subscription"], HOOK)}


@pytest.mark.parametrize("who", [w for w in IDENTITIES if w not in NO_TOKEN])
@pytest.mark.parametrize("listing", list(LISTINGS))
def test_a_listing_shows_only_what_the_policy_lets_its_caller_read(world: World, listing: str, who: str) -> None:
    p = world.principals[who]
    assert p is not None
    sees = {"twin": _reads_twin(world, p), "run": _reads_run(world, p), "job": _owns(world, p),
            "udp": p.name == OWNER, "upload": _owns(world, p),
            "subscription": allowed(p, "subscription.manage", world.subscription) and _reaches_twin_data(world, p)}
    if listing in STORAGE_LISTINGS and allowed(p, "lake.verify"):  # lake.grants.runs_storage
        sees = dict.fromkeys(sees, True)
    got = world.call(who, "GET", listing)
    assert got.status_code < 500, got.text
    if got.status_code != 200:
        assert got.status_code in (403, 404), got.text
        return
    marks = _marks(world)
    leaked = [m for kind, seen in sees.items() if not seen for m in marks[kind] if m in got.text]
    assert not leaked, f"{listing} shows {who} {leaked}"
    if who == "owner":  # the listing would show them: the check above is not an empty one
        missing = [kind for kind in LISTINGS[listing] if not any(m in got.text for m in marks[kind])]
        assert not missing, f"{listing} does not show its owner her {missing}: {got.text[:300]}"
