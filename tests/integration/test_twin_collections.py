"""Data derived from a twin keeps the twin's grants where it lands: a dataset registered for the twin (a station
table of its gauge readings) is a collection that exactly the twin's readers read, and EDR answers anyone else
on every route exactly as it answers for a collection that does not exist (404, the same body but for the id;
absent from every listing; named in no error).

One engine for the module: ``uma`` owns the twin ``reach``, ``xb1`` holds no grant on it (then ``read``, then
none again), ``gina`` may read it as a member of a group granted ``read``, ``olaf`` may operate it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from helpers import RIVER_REACH, copy_sqlite
from twinengine.api import create_app
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.auth.service import issue_token
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.config import Settings
from twinengine.lake.endpoints import add_endpoint
from twinengine.lake.schemas import EndpointCreate
from twinengine.runtime import Runtime
from twinengine.twins import service as twins

UMA = Principal("uma", Role.USER)
COLLECTION = "reach.gauges"  # the dataset reach:gauges, as the lake names its collections
UNKNOWN = "reach.nothing-here"
TABLE = ("station,lon,lat,time,level [m]\n"
         + "".join(f"RR-01,8.262,46.081,2026-03-01T{h:02d}:00:00Z,{1.0 + h / 10}\n" for h in range(6)))
FEATURE = {"type": "timeseries", "points": [[46.081, 8.262]], "time_axis": "date",
           "range": {"start": "2026-03-01T00:00:00Z", "end": "2026-03-01T05:00:00Z"}}
# Every EDR route of a collection, with a query that the owner's point collection answers (200) or refuses for
# what the query asks (400, or 404 for instances a station table has none of), but never for who asks.
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/edr/collections/{cid}", None),
    ("GET", "/edr/collections/{cid}/locations", None),
    ("GET", "/edr/collections/{cid}/locations/RR-01", None),
    ("GET", "/edr/collections/{cid}/position?coords=POINT(8.262 46.081)", None),
    ("GET", "/edr/collections/{cid}/radius?coords=POINT(8.262 46.081)&within=10&within-units=km", None),
    ("GET", "/edr/collections/{cid}/area?coords=POLYGON((8 46,8.5 46,8.5 46.2,8 46.2,8 46))", None),
    ("GET", "/edr/collections/{cid}/cube?bbox=8,46,8.5,46.2", None),
    ("GET", "/edr/collections/{cid}/trajectory?coords=LINESTRING(8 46,8.5 46.2)", None),
    ("GET", "/edr/collections/{cid}/corridor?coords=LINESTRING(8 46,8.5 46.2)&corridor-width=5&width-units=km",
     None),
    ("GET", "/edr/collections/{cid}/instances", None),
    ("GET", "/edr/collections/{cid}/instances/run-1/position?coords=POINT(8.262 46.081)", None),
    ("POST", "/edr/collections/{cid}/features", {"param": "level", "feature": FEATURE}),
    ("GET", "/openeo/1.2/collections/{cid}", None),
]


class Site:
    def __init__(self, runtime: Runtime, http: TestClient) -> None:
        self.runtime, self.http = runtime, http
        self.tokens: dict[str, str] = {}

    def as_(self, name: str) -> dict[str, str]:
        if name not in self.tokens:
            role = {"admin": Role.ADMIN, "ada-dev": Role.DEVELOPER}.get(name, Role.USER)
            with self.runtime.db.session() as session:
                self.tokens[name] = issue_token(session, self.runtime.issuer, principal=SYSTEM, name=name, role=role,
                                                ttl=timedelta(hours=1)).token
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def call(self, who: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.http.request(method, path, headers=self.as_(who), json=body)

    def listed(self, who: str) -> set[str]:
        answer = self.http.get("/edr/collections", headers=self.as_(who))
        assert answer.status_code == 200, answer.text
        return {c["id"] for c in answer.json()["collections"]}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("twin-collections")
    copy_sqlite(migrated_sqlite, root / "data" / "twin.db")
    runtime = Runtime.from_settings(Settings(data_dir=root / "data", warm_routes=False))
    runtime.start()
    try:
        with runtime.db.session() as session:
            add_endpoint(session, runtime.lake, principal=SYSTEM,
                         spec=EndpointCreate(name="disk", protocol="file", location=str(root / "disk")))
            publish(session, runtime.blobs, principal=SYSTEM, archive=pack(RIVER_REACH), max_archive_bytes=10**8,
                    max_unpacked_bytes=10**8, steps=runtime.publish_steps)
            twins.create_twin(session, principal=UMA, app="river-reach@0.1.0", name="reach",
                              parameters={"station": "RR-01"})
        with TestClient(create_app(runtime=runtime)) as http:
            made = Site(runtime, http)
            _register(made, "uma")
            yield made
    finally:
        runtime.close()


def _register(site: Site, who: str, did: str = "reach:gauges", twin: str = "reach") -> Any:
    """``who`` registers ``did`` for the twin and uploads the gauge table into it."""
    made = site.call(who, "POST", "/api/v1/lake/dids", {"did": did, "type": "dataset", "twin": twin})
    if made.status_code != 201:
        return made
    return site.http.post("/api/v1/lake/uploads", headers=site.as_(who), content=TABLE.encode(),
                          params={"did": f"{did}/gauges.csv", "endpoint": "disk", "dataset": did})


def _same_but_the_id(hidden: Any) -> Any:
    """The body of the answer for the hidden collection with its id written as the unknown one's."""
    if isinstance(hidden, dict):
        return {k: _same_but_the_id(v) for k, v in hidden.items()}
    if isinstance(hidden, list):
        return [_same_but_the_id(v) for v in hidden]
    return hidden.replace(COLLECTION, UNKNOWN) if isinstance(hidden, str) else hidden


def _refused_as_unknown(site: Site, who: str) -> None:
    assert COLLECTION not in site.listed(who)
    openeo = site.http.get("/openeo/1.2/collections", headers=site.as_(who)).json()["collections"]
    assert COLLECTION not in {c["id"] for c in openeo}
    for method, path, body in ROUTES:
        hidden = site.call(who, method, path.format(cid=COLLECTION), body)
        unknown = site.call(who, method, path.format(cid=UNKNOWN), body)
        assert hidden.status_code == unknown.status_code == 404, (path, hidden.text, unknown.text)
        mine, theirs = hidden.json(), unknown.json()
        if path.startswith("/openeo/"):  # an openEO error carries the request's own id
            mine.pop("id"), theirs.pop("id")
        assert _same_but_the_id(mine) == theirs, (path, mine, theirs)
        assert COLLECTION not in unknown.text, (path, unknown.text)  # the unknown one's answer names it nowhere


def _read_as_its_twin(site: Site, who: str) -> None:
    assert COLLECTION in site.listed(who)
    for method, path, body in ROUTES:
        answer = site.call(who, method, path.format(cid=COLLECTION), body)
        if "/trajectory" in path or "/corridor" in path or "/instances/" in path:
            assert answer.status_code == 400, (path, answer.text)  # a point collection has no grid nor runs
        elif path.endswith("/instances"):
            assert answer.status_code == 404 and "no instances" in answer.text, (path, answer.text)
        else:
            assert answer.status_code == 200, (path, answer.text)
    series = site.call(who, "GET", f"/edr/collections/{COLLECTION}/locations/RR-01").json()
    assert series["ranges"]["level"]["values"] == [1.0 + h / 10 for h in range(6)]


def test_the_twins_collection_is_read_by_exactly_its_readers(site: Site) -> None:
    made = site.call("uma", "GET", "/api/v1/lake/dids/reach:gauges/gauges.csv").json()
    with site.runtime.db.session(readonly=True) as session:
        twin_id = twins.get_twin(session, principal=UMA, ref="reach").id
    assert made["owner_twin"] == twin_id  # the file takes its dataset's twin
    _read_as_its_twin(site, "uma")
    _refused_as_unknown(site, "xb1")
    _refused_as_unknown(site, "ada-dev")
    assert site.call("xb1", "GET", "/api/v1/lake/dids/reach:gauges").status_code == 404

    assert site.call("uma", "PUT", "/api/v1/twins/reach/grants/xb1", {"permission": "read"}).status_code == 200
    _read_as_its_twin(site, "xb1")  # granted the twin: its derived data with it, at once
    assert site.call("uma", "DELETE", "/api/v1/twins/reach/grants/xb1").status_code == 204
    _refused_as_unknown(site, "xb1")  # and taken back with it

    assert site.call("admin", "POST", "/api/v1/groups", {"name": "hydro"}).status_code == 201
    site.as_("gina")  # known to the engine before she joins
    assert site.call("admin", "PUT", "/api/v1/groups/hydro/members/gina").status_code == 200
    assert site.call("uma", "PUT", "/api/v1/twins/reach/group-grants/hydro", {"permission": "read"}).status_code \
        == 200
    _read_as_its_twin(site, "gina")


def test_a_not_found_names_only_collections_the_caller_may_read(site: Site) -> None:
    """The 404 of an unknown id says which collections there are: those the caller may read, never another's
    (it listed every collection of the engine)."""
    for who in ("xb1", "ada-dev"):
        refused = site.call(who, "GET", f"/edr/collections/{UNKNOWN}")
        assert refused.status_code == 404 and "known:" in refused.json()["description"], refused.text
        assert COLLECTION not in refused.text
    assert COLLECTION in site.call("uma", "GET", f"/edr/collections/{UNKNOWN}").json()["description"]


def test_only_who_operates_the_twin_adds_to_its_data(site: Site) -> None:
    """Whatever is registered for a twin is read by all its readers: registering for it, putting a file into its
    dataset and deleting from it take the twin's ``operate``; reading it is not enough."""
    site.as_("rita"), site.as_("olaf")  # known to the engine before they are granted
    assert site.call("uma", "PUT", "/api/v1/twins/reach/grants/rita", {"permission": "read"}).status_code == 200
    assert site.call("uma", "PUT", "/api/v1/twins/reach/grants/olaf", {"permission": "operate"}).status_code == 200
    for who in ("rita", "xb1"):
        refused = _register(site, who, did=f"{who}:readings")
        assert refused.status_code in (403, 404), refused.text
        assert site.call("admin", "GET", f"/api/v1/lake/dids/{who}:readings").status_code == 404  # nothing kept
    own = site.call("rita", "POST", "/api/v1/lake/dids", {"did": "rita:own", "type": "dataset"})
    assert own.status_code == 201
    up = site.http.post("/api/v1/lake/uploads", headers=site.as_("rita"), content=b"x,y\n1,2\n",
                        params={"did": "rita:own/f.csv", "endpoint": "disk", "dataset": "rita:own"})
    assert up.status_code == 201, up.text
    into = site.http.post("/api/v1/lake/uploads", headers=site.as_("rita"), content=TABLE.encode(),
                          params={"did": "reach:gauges/more.csv", "endpoint": "disk", "dataset": "reach:gauges"})
    assert into.status_code == 403 and into.json()["details"][0]["loc"] == "dataset", into.text
    assert site.call("admin", "GET", "/api/v1/lake/dids/reach:gauges/more.csv").status_code == 404
    attach = site.call("rita", "POST", "/api/v1/lake/dids/reach:gauges/members", {"children": ["rita:own/f.csv"]})
    assert attach.status_code == 403, attach.text
    assert site.call("uma", "GET", "/api/v1/lake/dids/reach:gauges").json()["children"] == ["reach:gauges/gauges.csv"]
    assert site.call("rita", "DELETE", "/api/v1/lake/dids/reach:gauges/gauges.csv").status_code == 403

    assert _register(site, "olaf", did="reach:levels").status_code == 201  # an operator adds to the twin's data
    assert site.call("olaf", "GET", "/api/v1/lake/dids/reach:levels").json()["owner_twin"] is not None
    assert "reach.levels" in site.listed("rita") and "reach.levels" not in site.listed("xb1")
    assert site.call("olaf", "DELETE", "/api/v1/lake/dids/reach:levels/gauges.csv").status_code == 204
    both = site.call("olaf", "POST", "/api/v1/lake/dids", {"did": "reach:both", "type": "dataset", "twin": "reach",
                                                           "group": "hydro"})
    assert both.status_code == 422 and both.json()["details"][0]["loc"] == "twin", both.text


def test_a_twin_made_later_under_the_name_gains_nothing(site: Site) -> None:
    """Twin data names the twin by id: after the twin is deleted, a new twin of the same name (anyone's) reads
    none of it; only admins still do."""
    for answer in (site.call("uma", "POST", "/api/v1/twins", {"app": "river-reach@0.1.0", "name": "brook",
                                                              "parameters": {"station": "RR-02"}}),
                   _register(site, "uma", did="brook:gauges", twin="brook")):
        assert answer.status_code == 201, answer.text
    assert "brook.gauges" in site.listed("uma")
    assert site.call("uma", "DELETE", "/api/v1/twins/brook").status_code == 204
    assert "brook.gauges" not in site.listed("uma")
    again = site.call("xb1", "POST", "/api/v1/twins", {"app": "river-reach@0.1.0", "name": "brook",
                                                      "parameters": {"station": "RR-02"}})
    assert again.status_code == 201, again.text
    for who in ("xb1", "uma"):
        assert "brook.gauges" not in site.listed(who)
        assert site.call(who, "GET", "/edr/collections/brook.gauges").status_code == 404
    assert "brook.gauges" in site.listed("admin")
