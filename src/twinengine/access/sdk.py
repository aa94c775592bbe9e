"""The SDK's EDR namespace, ``client.edr``: collections and queries, answers as parsed JSON documents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import xarray as xr

    from twinengine.transport import Transport

__all__ = ["Coverage", "EDRClient"]


class Coverage(dict[str, Any]):
    """An EDR answer as the CoverageJSON document it is (a dict); ``to_xarray()`` decodes it."""

    def to_xarray(self) -> xr.Dataset:
        from twinengine.access.covjson_decode import to_xarray

        return to_xarray(self)


class EDRClient:
    """``client.edr.position("rain", "POINT(8 45)", datetime="2026-03-01T00:00:00Z/..")`` and friends.

    Data queries return CoverageJSON (or GeoJSON with ``f="GeoJSON"``) as a dict, a ``Coverage`` whose
    ``to_xarray()`` decodes it; ``netcdf`` returns bytes."""

    def __init__(self, transport: Transport, root: str = "/edr") -> None:
        self._transport = transport
        self._root = root  # the engine's EDR API, or a data space transfer's (``client.dataspace.edr``)

    def _get(self, path: str, **params: Any) -> Any:
        query = {k.replace("_", "-"): v for k, v in params.items() if v is not None}
        return self._transport.request("GET", f"{self._root}{path}", params=query)

    def collections(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("/collections").json()["collections"]
        return result

    def collection(self, collection_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"/collections/{quote(collection_id, safe='')}").json()
        return result

    def query(self, collection_id: str, query_type: str, **params: Any) -> Coverage:
        """Any query type by name; ``parameter_name``, ``within_units`` etc. become their hyphenated forms."""
        return Coverage(self._get(f"/collections/{quote(collection_id, safe='')}/{query_type}", **params).json())

    def locations(self, collection_id: str) -> dict[str, Any]:
        """The named locations (stations) of a collection, as a GeoJSON FeatureCollection."""
        result: dict[str, Any] = self._get(f"/collections/{quote(collection_id, safe='')}/locations").json()
        return result

    def position(self, collection_id: str, coords: str, **params: Any) -> Coverage:
        return self.query(collection_id, "position", coords=coords, **params)

    def area(self, collection_id: str, coords: str, **params: Any) -> Coverage:
        return self.query(collection_id, "area", coords=coords, **params)

    def cube(self, collection_id: str, bbox: str, **params: Any) -> Coverage:
        return self.query(collection_id, "cube", bbox=bbox, **params)

    def radius(self, collection_id: str, coords: str, within: float, within_units: str = "km",
               **params: Any) -> Coverage:
        return self.query(collection_id, "radius", coords=coords, within=within, within_units=within_units, **params)

    def trajectory(self, collection_id: str, coords: str, **params: Any) -> Coverage:
        return self.query(collection_id, "trajectory", coords=coords, **params)

    def corridor(self, collection_id: str, coords: str, corridor_width: float, width_units: str = "km",
                 **params: Any) -> Coverage:
        return self.query(collection_id, "corridor", coords=coords, corridor_width=corridor_width,
                          width_units=width_units, **params)

    def location(self, collection_id: str, location_id: str, **params: Any) -> Coverage:
        return self.query(collection_id, f"locations/{quote(location_id, safe='')}", **params)

    def netcdf(self, collection_id: str, query_type: str, **params: Any) -> bytes:
        response = self._get(f"/collections/{quote(collection_id, safe='')}/{query_type}", f="NetCDF", **params)
        return bytes(response.content)

    def png(self, collection_id: str, bbox: str, *, parameter_name: str, datetime: str | None = None,
            scale: tuple[float, float] | None = None, **params: Any) -> tuple[bytes, dict[str, str]]:
        """One parameter at one time step of a cube, drawn by the engine on the variable's fixed scale (what
        the portal's map lays on; without ``datetime``, the most informative step); with the headers that place
        it (``X-Bounds``), name its time (``X-Datetime``) and give its colour scale and floor (``X-Scale``,
        ``X-Floor``)."""
        response = self._get(f"/collections/{quote(collection_id, safe='')}/cube", f="png", bbox=bbox,
                             parameter_name=parameter_name, datetime=datetime,
                             scale=",".join(str(v) for v in scale) if scale else None, **params)
        return bytes(response.content), {k: v for k, v in response.headers.items() if k.lower().startswith("x-")}

    def features(self, collection_id: str, request: dict[str, Any]) -> Coverage:
        """A Polytope-style feature request (``{"feature": {"type": "timeseries", ...}}``)."""
        response = self._transport.request("POST", f"/edr/collections/{quote(collection_id, safe='')}/features",
                                           json=request)
        return Coverage(response.json())
