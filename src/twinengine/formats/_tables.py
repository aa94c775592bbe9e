"""CSV and Parquet tables of stations: one row per station and time, turned into a CF ``timeSeries`` dataset.

Columns are found by name (any case): a station id (``station``, ``station_id``, ``id``, ``site``, ``name``;
without one, each distinct position is a station), ``lon``/``longitude``/``x``, ``lat``/``latitude``/``y`` and
optionally ``time``/``datetime``/``date``/``timestamp``/``valid_time``. Every other numeric column is a
parameter; ``rain [mm]`` or ``rain (mm)`` gives it units. The dataset has dimensions (time, station), the
stations' positions as coordinates along ``station`` and their GeoJSON in ``edr:locations``, so EDR serves it
as a point collection.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

import numpy as np
import xarray as xr

from twinengine.errors import UnreadableFile
from twinengine.formats._base import FormatBackend

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CSVFormat", "ParquetFormat", "stations_from_table"]

STATION = ("station", "station_id", "stationid", "id", "site", "name")
LON = ("lon", "longitude", "x", "long")
LAT = ("lat", "latitude", "y")
TIME = ("time", "datetime", "date", "timestamp", "valid_time")
_UNITS = re.compile(r"^\s*(?P<name>[^\[\(]+?)\s*[\[\(](?P<units>[^\]\)]+)[\]\)]\s*$")


def _column(frame: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    lower = {str(c).strip().lower(): str(c) for c in frame.columns}
    for name in names:
        if name in lower:
            return lower[name]
    return None


def _row(frame: pd.DataFrame, position: int) -> int:
    """The 1-based data row of a position in the frame (CSV: line number minus the header)."""
    return int(frame.index[position]) + 1 if len(frame.index) > position else position + 1


def stations_from_table(frame: pd.DataFrame) -> xr.Dataset:
    """A station table as a (time, station) dataset; raises ``UnreadableFile`` naming the column or row at fault."""
    import pandas as pd

    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    lon, lat = _column(frame, LON), _column(frame, LAT)
    if lon is None or lat is None:
        raise UnreadableFile(f"a station table needs longitude and latitude columns (looked for {', '.join(LON)} "
                             f"and {', '.join(LAT)}); it has {', '.join(frame.columns) or 'no columns'}")
    if frame.empty:
        raise UnreadableFile("the table has no rows")
    station, when = _column(frame, STATION), _column(frame, TIME)
    for col in (lon, lat):
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if bad.size:
            raise UnreadableFile(f"column {col!r}, row {_row(frame, int(bad[0]))}: {frame[col].iloc[bad[0]]!r} is not "
                                 "a number")
        frame[col] = values.astype("float64")
    if station is None:
        frame["station"] = [f"{x:g}_{y:g}" for x, y in zip(frame[lon], frame[lat], strict=True)]
        station = "station"
    frame[station] = frame[station].astype(str)
    if when is not None:
        parsed = pd.to_datetime(frame[when], utc=True, errors="coerce", format="mixed")
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if bad.size:
            raise UnreadableFile(f"column {when!r}, row {_row(frame, int(bad[0]))}: {frame[when].iloc[bad[0]]!r} is "
                                 "not a date and time")
        frame[when] = parsed.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    keys = {station, lon, lat, *([when] if when else [])}
    params: dict[str, str] = {}
    units: dict[str, str] = {}
    for col in frame.columns:
        if col in keys or not pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col]):
            continue
        found = _UNITS.match(col)
        name = found.group("name").strip().replace(" ", "_") if found else col.strip().replace(" ", "_")
        params[col] = name
        if found:
            units[name] = found.group("units").strip()
    if not params:
        raise UnreadableFile("the table has no numeric column besides the station, position and time columns")
    positions = frame.groupby(station, sort=False)[[lon, lat]].nunique()
    moving = positions[(positions[lon] > 1) | (positions[lat] > 1)]
    if len(moving):
        raise UnreadableFile(f"station {moving.index[0]!r} appears at more than one position; a station table "
                             "holds fixed stations (one longitude and latitude per station)")
    index = [station, when] if when else [station]
    dup = frame.duplicated(index, keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)[:2]
        where = f" at {frame[when].iloc[rows[0]]}" if when else ""
        raise UnreadableFile(f"station {frame[station].iloc[rows[0]]!r} has more than one row{where} (rows "
                             f"{', '.join(str(_row(frame, int(r))) for r in rows)})")
    sites = frame.drop_duplicates(station)[[station, lon, lat]]
    table = frame.set_index(index)[list(params)].rename(columns=params).astype("float64")
    ds = xr.Dataset.from_dataframe(table)
    ds = ds.rename({station: "station", **({when: "time"} if when and when != "time" else {})})
    ds = ds.transpose(*(("time",) if when else ()), "station")
    ds = ds.reindex(station=sites[station].tolist())
    ds = ds.assign_coords(lon=("station", sites[lon].to_numpy()), lat=("station", sites[lat].to_numpy()))
    ds["station"].attrs.update(cf_role="timeseries_id", long_name="station id")
    ds["lon"].attrs.update(units="degrees_east", standard_name="longitude")
    ds["lat"].attrs.update(units="degrees_north", standard_name="latitude")
    if when:
        ds["time"].attrs.update(standard_name="time", axis="T")
    for name, unit in units.items():
        ds[name].attrs["units"] = unit
    ds.attrs["featureType"] = "timeSeries"
    features: list[dict[str, Any]] = [
        {"type": "Feature", "id": sid, "geometry": {"type": "Point", "coordinates": [float(x), float(y)]},
         "properties": {"name": sid}}
        for sid, x, y in zip(sites[station], sites[lon], sites[lat], strict=True)]
    ds.attrs["edr:locations"] = json.dumps({"type": "FeatureCollection", "features": features})
    return ds


class CSVFormat(FormatBackend):
    name: ClassVar[str] = "csv"
    description: ClassVar[str] = "a CSV station table"
    suffixes: ClassVar[tuple[str, ...]] = (".csv",)
    media_type: ClassVar[str] = "text/csv"
    requires: ClassVar[tuple[str, ...]] = ("pandas",)

    def open_dataset(self, path: Path) -> xr.Dataset:
        import pandas as pd

        return stations_from_table(pd.read_csv(path, skipinitialspace=True))

    def open_fileobj(self, fileobj: IO[bytes]) -> xr.Dataset | None:
        import pandas as pd

        return stations_from_table(pd.read_csv(fileobj, skipinitialspace=True))


class ParquetFormat(FormatBackend):
    name: ClassVar[str] = "parquet"
    description: ClassVar[str] = "a Parquet station table"
    suffixes: ClassVar[tuple[str, ...]] = (".parquet", ".pq")
    media_type: ClassVar[str] = "application/vnd.apache.parquet"
    requires: ClassVar[tuple[str, ...]] = ("pandas", "pyarrow")

    def open_dataset(self, path: Path) -> xr.Dataset:
        import pandas as pd

        return stations_from_table(pd.read_parquet(path))

    def open_fileobj(self, fileobj: IO[bytes]) -> xr.Dataset | None:
        import pandas as pd

        return stations_from_table(pd.read_parquet(fileobj))
