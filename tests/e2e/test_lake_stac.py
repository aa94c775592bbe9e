"""The lake's STAC API of a real ``twin serve`` process against the standards' own clients: stac-api-validator
(core, collections, features, item-search, filter, item-search#sort) and pystac-client; and ``import-stac``
into a second engine from the first one's STAC API."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx
import pytest
import requests

from helpers import LiveEngine, admin_token, free_port
from helpers import serve_engine as serve
from lake_fixtures import COLLECTION, REACH, SCOPE, populate, wait_for_rule
from twinengine.api import create_app
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime


@pytest.fixture(scope="module")
def stac(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEngine]:
    """``twin serve`` as a real process, its lake loops settling the rule, holding the river-reach data."""
    folder = tmp_path_factory.mktemp("stac")
    settings = Settings(data_dir=folder / "data")
    port = free_port()
    with serve(settings.data_dir, port):
        live = LiveEngine(url=f"http://127.0.0.1:{port}", admin_token=admin_token(settings), settings=settings)
        with live.client() as admin:
            populate(admin, folder, lambda rule_id: wait_for_rule(admin, rule_id))
        yield live


@pytest.fixture
def offline_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve JSON Schemas without the internet (this machine has none): the core STAC 1.1 and GeoJSON schemas
    from pystac's bundled copies; the extension schemas (file, alternate-assets, datacube) are not bundled by
    any package here, so they are served as permissive schemas and those fields are checked by our own
    assertions in ``test_pystac_client_finds_what_the_lake_holds`` instead. Requests to loopback pass."""
    from pystac.validation.local_validator import get_local_schema_cache
    from requests.adapters import HTTPAdapter

    cache = get_local_schema_cache()
    original = HTTPAdapter.send

    def send(self: HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = str(request.url)
        if url.startswith(("http://127.0.0.1", "http://localhost")):
            return original(self, request, *args, **kwargs)
        if url in cache:
            body = cache[url]
        elif url.startswith("https://stac-extensions.github.io/"):
            body = {"$schema": "http://json-schema.org/draft-07/schema#", "$id": url}
        else:
            raise requests.ConnectionError(f"offline: {url}")
        response = requests.Response()
        response.status_code, response.url, response.request = 200, url, request
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        return response

    monkeypatch.setattr(HTTPAdapter, "send", send)


@pytest.mark.slow
@pytest.mark.usefixtures("offline_schemas")
@pytest.mark.filterwarnings("ignore:get_all_items is deprecated:DeprecationWarning")  # inside the validator
def test_stac_api_validator_passes(stac: LiveEngine) -> None:
    from stac_api_validator.validations import QueryConfig, validate_api

    live = stac
    warnings, errors = validate_api(
        root_url=f"{live.url}/stac/",
        ccs_to_validate=["core", "collections", "features", "item-search", "filter", "item-search#sort"],
        collection=COLLECTION, geometry=json.dumps(REACH), auth_bearer_token=live.admin_token,
        auth_query_parameter=None, fields_nested_property=None, validate_pagination=True,
        query_config=QueryConfig(None, None, None, None, None, None, None, None, None, None, None, None, None),
        transaction_collection=None, headers=None)
    print("stac-api-validator warnings:", warnings)
    assert not errors, str(errors)


def test_pystac_client_finds_what_the_lake_holds(stac: LiveEngine) -> None:
    from pystac_client import Client as StacClient

    live = stac
    client = StacClient.open(f"{live.url}/stac/", headers={"Authorization": f"Bearer {live.admin_token}"})
    assert [c.id for c in client.get_collections()] == [COLLECTION]
    everything = list(client.search(collections=[COLLECTION], max_items=100).items())
    assert sorted(i.id for i in everything) == sorted([f"day-{d}" for d in range(5)] + ["rain"])
    in_time = client.search(collections=[COLLECTION], datetime="2026-03-02T00:00:00Z/2026-03-03T12:00:00Z")
    assert sorted(i.id for i in in_time.items()) == ["day-1", "day-2"]
    east = client.search(bbox=[7.75, 46.4, 7.85, 46.6])  # only the point of day 3 (7.8) and the polygons
    assert sorted(i.id for i in east.items()) == ["day-0", "day-2", "day-3", "day-4", "rain"]
    filtered = client.search(filter="quality >= 20 AND gauge = 'RR-01'", filter_lang="cql2-text")
    assert sorted(i.id for i in filtered.items()) == ["day-2", "day-3", "day-4"]
    as_json = client.search(filter={"op": "<", "args": [{"property": "quality"}, 20]}, method="POST")
    assert sorted(i.id for i in as_json.items()) == ["day-0", "day-1"]
    ordered = [i.id for i in client.search(collections=[COLLECTION], sortby="-properties.quality").items()]
    assert ordered[:3] == ["day-4", "day-3", "day-2"]
    paged = client.search(collections=[COLLECTION], limit=2, max_items=6)
    assert len(list(paged.pages())) == 3 and len(list(paged.items())) == 6

    item = client.get_collection(COLLECTION).get_item("day-1")
    assert item is not None
    asset = item.assets["levels.csv"]
    with live.client() as admin:
        lake_file = admin.lake.get(f"{SCOPE}:day-1/levels.csv")
    assert asset.extra_fields["file:size"] == lake_file.bytes
    assert asset.extra_fields["file:checksum"] == "1220" + str(lake_file.sha256)
    assert set(asset.extra_fields["alternate"]) == {"beta"}  # the rule's second copy
    headers = {"Authorization": f"Bearer {live.admin_token}"}
    for href in (asset.href, asset.extra_fields["alternate"]["beta"]["href"]):
        data = httpx.get(href, headers=headers).content
        assert hashlib.sha256(data).hexdigest() == lake_file.sha256

    rain = client.get_collection(COLLECTION).get_item("rain")
    assert rain is not None
    dims = rain.properties["cube:dimensions"]
    assert dims["time"]["type"] == "temporal" and dims["lon"]["extent"] == [7.0, 8.5]
    assert rain.properties["cube:variables"]["rain"]["unit"] == "mm h-1"
    assert any("datacube" in ext for ext in rain.stac_extensions)


def test_bad_search_parameters_are_400(stac: LiveEngine) -> None:
    live = stac
    headers = {"Authorization": f"Bearer {live.admin_token}"}
    for params, field in (({"bbox": "1,2,3"}, "bbox"), ({"datetime": "yesterday"}, "datetime"),
                          ({"limit": "-1"}, "limit"), ({"filter": "quality >>> 3"}, "filter"),
                          ({"token": "???"}, "token")):
        response = httpx.get(f"{live.url}/stac/search", params=params, headers=headers)
        assert response.status_code == 400, params
        assert field in response.json()["message"]
    assert httpx.get(f"{live.url}/stac/collections/nope", headers=headers).status_code == 404
    anonymous = httpx.get(f"{live.url}/stac/")
    assert anonymous.status_code == 200 and not [k for k in anonymous.json()["links"] if k["rel"] == "child"]
    assert any(k["rel"] == "child" for k in httpx.get(f"{live.url}/stac/", headers=headers).json()["links"])
    assert httpx.get(f"{live.url}/stac/collections").status_code == 401
    assert httpx.get(f"{live.url}/stac/search").status_code == 401


@pytest.mark.slow
def test_import_from_another_stac_api_is_idempotent(stac: LiveEngine, tmp_path: Path) -> None:
    source = stac
    settings = Settings(data_dir=tmp_path / "second", lake_import_hosts=[urlsplit(source.url).hostname or ""])
    runtime = Runtime.from_settings(settings)
    token = runtime.start()
    assert token is not None
    try:
        with InProcessServer(create_app(runtime=runtime)) as server:
            target = LiveEngine(url=server.url, admin_token=token, settings=settings)
            with target.client() as admin:
                admin.lake.add_endpoint("home", "file", str(tmp_path / "home"), attributes={"site": "Z"})
                first = admin.lake.import_stac(f"{source.url}/stac/", COLLECTION, endpoint="home",
                                               token=source.admin_token, datetime="2026-03-01T00:00:00Z/..")
                assert (first.items, first.files_registered, first.files_present) == (6, 6, 0)
                again = admin.lake.import_stac(f"{source.url}/stac/", COLLECTION, endpoint="home",
                                               token=source.admin_token)
                assert (again.items, again.files_registered, again.files_present) == (6, 0, 6)
                cli = target.twin_json("lake", "import-stac", f"{source.url}/stac/", "--collection", COLLECTION,
                                       "--endpoint", "home", "--token", source.admin_token)
                assert (cli["items"], cli["files_registered"], cli["files_present"]) == (6, 0, 6)
                bad_box = target.twin("lake", "import-stac", f"{source.url}/stac/", "--collection", COLLECTION,
                                      "--endpoint", "home", "--bbox", "1,2,3", expect=1)
                assert "--bbox" in bad_box and "west,south,east,north" in bad_box
                copied = admin.lake.get(f"{COLLECTION}:day-2/levels.csv")
                with source.client() as remote:
                    original = remote.lake.get(f"{SCOPE}:day-2/levels.csv")
                assert copied.sha256 == original.sha256 and copied.replicas[0].state == "AVAILABLE"
                dataset = admin.lake.get(f"{COLLECTION}:day-2")
                assert dataset.meta["properties"]["quality"] == 20 and dataset.start_time is not None
                from twinengine.errors import InvalidInput, StorageUnavailable

                with pytest.raises((InvalidInput, StorageUnavailable)):
                    admin.lake.import_stac(f"{source.url}/stac/", COLLECTION, endpoint="home", token="wrong")
    finally:
        runtime.close()
