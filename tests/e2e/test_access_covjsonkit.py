"""CoverageJSON from /edr decoded by ECMWF's covjsonkit (the DestinE Polytope toolkit) to xarray, over real
HTTP against a served engine; the decoded values equal direct xarray selections.

covjsonkit decodes the PointSeries (with a z axis) and Grid domains without MARS metadata; its other
decoders (VerticalProfile, MultiPoint, Trajectory) require ``mars:metadata`` members that only Polytope
writes, so they are not exercised here. It also names CoverageJSON's x axis "latitude" (Polytope's
convention); the values are what this test compares.
"""

from __future__ import annotations

import numpy as np
from covjsonkit.api import Covjsonkit

from access_checks import check_covjson
from access_data import write_collections
from helpers import LiveEngine


def test_covjsonkit_decodes_our_coverages(live: LiveEngine) -> None:
    cubes = write_collections(live.settings.data_dir / "collections")
    kit = Covjsonkit({})
    with live.client() as client:
        http = client._http
        headers = {"Authorization": f"Bearer {live.admin_token}"}

        def fetch(path: str, **params: str) -> dict:  # type: ignore[type-arg]
            response = http.get(path, params=params, headers=headers)
            assert response.status_code == 200, response.text
            doc = response.json()
            check_covjson(doc)
            return doc  # type: ignore[no-any-return]

        series = kit.decode(fetch("/edr/collections/atmos/position", coords="POINT(8 45)", z="850")).to_xarray()
        expected = cubes["atmos"].ta.sel(lon=8, lat=45, plev=850)
        assert series.sizes["t"] == 6
        np.testing.assert_allclose(np.asarray(series["air_temperature"]).ravel(), expected.values, rtol=1e-6)

        rain = cubes["rain"]
        for path, params in (("/edr/collections/rain/cube", {"bbox": "8,45,9,45.5"}),
                             ("/edr/collections/rain/area", {"coords": "POLYGON((8 45,9 45,9 46,8 45))"})):
            doc = fetch(path, datetime="2026-03-02T00:00:00Z", **params)
            grid = kit.decode(doc).to_xarray()
            axes = doc["domain"]["axes"]
            direct = rain.rain.sel(time="2026-03-02T00:00", lon=axes["x"]["values"], lat=axes["y"]["values"])
            decoded = np.asarray(grid["rain"], dtype="float32").reshape(direct.lon.size, direct.lat.size)
            inside = np.isfinite(decoded)
            assert inside.sum() >= 6
            np.testing.assert_array_equal(decoded[inside], direct.transpose("lon", "lat").values[inside])
