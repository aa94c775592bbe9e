"""What the portal's map asks the engine: the field drawn at its most informative time on the variable's fixed
scale with a floor, the collection listing kept while (and only while) the data is unchanged, and the lake's
identifiers paged and searched."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

from helpers import Engine
from twinengine.auth.principal import SYSTEM
from twinengine.lake.dids import add_did, attach
from twinengine.lake.endpoints import add_endpoint
from twinengine.lake.schemas import DidType, EndpointCreate
from twinengine.lake.uploads import upload_file

HOURS = pd.date_range("2026-03-01", periods=12, freq="h")
STORM = 4  # the hour the storm passes


def field(values: np.ndarray, name: str = "rain", attrs: dict[str, object] | None = None,
          title: str = "Test field") -> xr.Dataset:
    lat = np.round(np.linspace(46.0, 46.5, values.shape[1]), 3)
    lon = np.round(np.linspace(8.0, 8.6, values.shape[2]), 3)
    return xr.Dataset({name: (("time", "lat", "lon"), values.astype("float32"),
                              attrs if attrs is not None else {"units": "mm h-1"})},
                      coords={"time": HOURS[:values.shape[0]], "lat": lat, "lon": lon}, attrs={"title": title})


def storm() -> np.ndarray:
    rng = np.random.default_rng(1)
    values = rng.uniform(0, 7.5e-18, (HOURS.size, 6, 7))  # rounding noise, as a model writes for "no rain"
    values[STORM, 2:4, 3:5] = 6.0
    values[STORM + 1, 2, 3] = 9.0  # one wet cell later: a bigger maximum, a smaller total
    return values


@pytest.fixture
def folder(engine: Engine) -> Path:
    path = engine.runtime.settings.collections_dir or engine.runtime.data_dir / "collections"
    path.mkdir(parents=True, exist_ok=True)
    return path


def png(engine: Engine, collection: str, parameter: str = "rain", **params: str) -> tuple[np.ndarray, dict[str, str]]:
    headers = engine.headers(engine.token("uma", "user"))
    response = engine.http.get(f"/edr/collections/{collection}/cube", headers=headers, params={
        "bbox": "7,45,9,47", "parameter-name": parameter, "f": "png", **params})
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content))), dict(response.headers)


def test_without_a_time_the_map_opens_on_the_storm_drawn_on_rains_scale(engine: Engine, folder: Path) -> None:
    field(storm()).to_zarr(folder / "storm.zarr", mode="w", consolidated=False)
    image, headers = png(engine, "storm")
    assert headers["x-datetime"] == f"{HOURS[STORM]:%Y-%m-%dT%H:%M:%SZ}"  # the most rain over the area
    assert (image[..., 3] > 0).sum() == 4  # the storm's four cells; the noise around them is drawn as none
    assert headers["x-scale"] == "0,20" and headers["x-floor"] == "0.1"
    image, headers = png(engine, "storm", datetime=f"{HOURS[0]:%Y-%m-%dT%H:%M:%SZ}")
    assert (image[..., 3] == 0).all() and headers["x-scale"] == "0,20"  # a dry hour: empty, not a noise storm


def test_a_dry_field_opens_on_its_latest_hour_and_draws_nothing(engine: Engine, folder: Path) -> None:
    values = storm()
    values[STORM:STORM + 2] = 1.99e-19
    field(values).to_zarr(folder / "dry.zarr", mode="w", consolidated=False)
    image, headers = png(engine, "dry")
    assert headers["x-datetime"] == f"{HOURS[-1]:%Y-%m-%dT%H:%M:%SZ}"
    assert (image[..., 3] == 0).all() and headers["x-scale"] == "0,20"


def test_a_quantity_without_a_floor_opens_on_its_latest_step_with_data(engine: Engine, folder: Path) -> None:
    values = 280 + np.arange(HOURS.size, dtype=float)[:, None, None] + np.zeros((HOURS.size, 3, 3))
    values[-2:] = np.nan  # the last two steps not written yet
    field(values, "t2m", {"units": "K"}).to_zarr(folder / "temps.zarr", mode="w", consolidated=False)
    image, headers = png(engine, "temps", "t2m")
    assert headers["x-datetime"] == f"{HOURS[-3]:%Y-%m-%dT%H:%M:%SZ}" and headers["x-scale"] == "230,320"
    assert "x-floor" not in headers and (image[..., 3] == 255).all()


def test_a_declared_range_wins_and_an_unknown_quantity_takes_its_image_range(engine: Engine, folder: Path) -> None:
    values = np.linspace(0, 3, HOURS.size * 4).reshape(HOURS.size, 2, 2)
    field(values, "rain", {"units": "mm h-1", "display_range": [0.0, 5.0], "display_floor": 0.5}).to_zarr(
        folder / "declared.zarr", mode="w", consolidated=False)
    image, headers = png(engine, "declared", datetime=f"{HOURS[0]:%Y-%m-%dT%H:%M:%SZ}")
    assert (headers["x-scale"], headers["x-floor"], headers["x-scale-source"]) == ("0,5", "0.5", "declared")
    assert (image[..., 3] == 0).all()  # every value of the first hour is below the declared floor
    field(values, "stuff", {"units": "widgets"}).to_zarr(folder / "odd.zarr", mode="w", consolidated=False)
    _, headers = png(engine, "odd", "stuff", datetime=f"{HOURS[1]:%Y-%m-%dT%H:%M:%SZ}")
    lo, hi = (float(v) for v in headers["x-scale"].split(","))
    assert headers["x-scale-source"] == "data" and lo == pytest.approx(values[1].min(), rel=1e-6)
    assert hi == pytest.approx(values[1].max(), rel=1e-6)


def test_the_collection_listing_follows_a_changed_file(engine: Engine, folder: Path) -> None:
    headers = engine.headers(engine.token("uma", "user"))
    field(storm(), title="First title").to_zarr(folder / "changing.zarr", mode="w", consolidated=False)

    def listed() -> dict[str, dict[str, object]]:
        response = engine.http.get("/edr/collections", headers=headers)
        assert response.status_code == 200
        return {c["id"]: c for c in response.json()["collections"]}

    first = listed()["changing"]
    assert first["title"] == "First title" and listed()["changing"] == first  # kept: the same answer again
    assert engine.http.get("/edr/collections/changing", headers=headers).json() == first
    changed = field(storm()[:6], title="Second title")
    changed.to_zarr(folder / "changing.zarr", mode="w", consolidated=False)
    now = listed()["changing"]
    assert now["title"] == "Second title" and len(now["extent"]["temporal"]["values"]) == 6
    (folder / "later.nc").write_bytes(b"")  # an unreadable file is left out, the others stay listed
    field(storm()).to_netcdf(folder / "added.nc")
    assert {"changing", "added"} <= set(listed()) and "later" not in listed()


def test_a_lake_dataset_is_listed_once_its_replica_is_available(engine: Engine, tmp_path: Path) -> None:
    runtime = engine.runtime
    with runtime.db.session() as session:
        add_endpoint(session, runtime.lake, principal=SYSTEM,
                     spec=EndpointCreate(name="maps-disk", protocol="file", location=str(tmp_path / "disk")))
    headers = engine.headers(engine.admin_token)
    before = {c["id"] for c in engine.http.get("/edr/collections", headers=headers).json()["collections"]}
    path = tmp_path / "rain.nc"
    field(storm(), title="Lake rain").to_netcdf(path)
    with runtime.db.session() as session:
        add_did(session, principal=SYSTEM, did="maps:lake-rain", type=DidType.DATASET)
    upload_file(runtime.db, runtime.lake, principal=SYSTEM, path=path, did="maps:lake-rain/rain.nc",
                endpoint="maps-disk", dataset="maps:lake-rain")
    after = {c["id"]: c for c in engine.http.get("/edr/collections", headers=headers).json()["collections"]}
    assert "maps.lake-rain" not in before and after["maps.lake-rain"]["title"] == "Lake rain"
    with runtime.db.session() as session:
        add_did(session, principal=SYSTEM, did="maps:lake-box", type=DidType.CONTAINER)
        attach(session, principal=SYSTEM, parent="maps:lake-box", children=["maps:lake-rain"])
    assert "maps.lake-rain" in {c["id"] for c in engine.http.get("/edr/collections", headers=headers).json()[
        "collections"]}


def test_lake_identifiers_are_paged_and_searched(engine: Engine) -> None:
    with engine.runtime.db.session() as session:
        for i in range(7):
            add_did(session, principal=SYSTEM, did=f"obs:Gauge-{i:02d}", type=DidType.DATASET)
        add_did(session, principal=SYSTEM, did="model:runs", type=DidType.CONTAINER)
    headers = engine.headers(engine.admin_token)

    def page(**params: object) -> tuple[list[str], int]:
        response = engine.http.get("/api/v1/lake/dids", headers=headers, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        return [d["did"] for d in body["items"]], body["total"]

    first, total = page(q="gauge", limit=3)
    assert first == ["obs:Gauge-00", "obs:Gauge-01", "obs:Gauge-02"] and total == 7
    assert page(q="gauge", limit=3, offset=6) == (["obs:Gauge-06"], 7)
    assert page(q="GAUGE 05") == (["obs:Gauge-05"], 1)  # every word, any case
    assert page(q="obs 0", type="container") == ([], 0)
    assert page(q="model") == (["model:runs"], 1)  # the scope is searched too
    assert page(q="100%_") == ([], 0)  # wildcards are plain characters
    assert engine.http.get("/api/v1/lake/dids", headers=headers, params={"q": "x" * 201}).status_code == 422
