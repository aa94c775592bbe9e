"""What the SDK's workflows namespace returns: runs with rich display, and a run's result asset as downloaded
(``to_xarray()`` for netCDF, imported when called). ``twinengine.client_types`` names them beside the others.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from twinengine._html import table
from twinengine.errors import InvalidInput
from twinengine.workflows.schemas import RunPage, RunRead

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["NETCDF_TYPES", "Run", "RunList", "RunResult"]

NETCDF_TYPES = ("application/x-netcdf", "application/netcdf", "application/x-netcdf4")


class Run(RunRead):
    """A workflow run, shown with its status, progress, error and result assets."""

    def _repr_html_(self) -> str:
        rows: list[tuple[str, Any]] = [
            ("workflow", self.workflow or self.title or self.kind), ("twin", self.twin_name), ("status", self.status),
            ("progress", f"{self.progress:.0f}%"), ("created", self.created_at), ("finished", self.finished_at)]
        if self.error:
            rows.append(("error", f"{self.error.get('code')}: {self.error.get('message')}"))
        rows += [(f"asset {a.get('name')}", f"{a.get('type')}, {a.get('size')} bytes") for a in self.assets]
        return table(f"run {self.id}", ("", "value"), rows)


class RunList(RunPage):
    """A page of runs as summaries (no values: ``client.workflows.get(id)`` reads one run in full)."""

    def _repr_html_(self) -> str:
        return table(f"{self.total} runs", ("id", "workflow", "twin", "status", "progress", "created"),
                     ((r.id, r.workflow or r.title, r.twin_name, r.status, f"{r.progress:.0f}%", r.created_at)
                      for r in self.items))


class RunResult(BaseModel):
    """One result asset of a run, as downloaded: ``to_xarray()`` for netCDF, ``value()`` for JSON."""

    run_id: str
    name: str
    media_type: str
    content: bytes

    def to_xarray(self) -> xr.Dataset:
        """The netCDF asset as an xarray dataset, loaded into memory."""
        import xarray as xr

        if self.media_type.split(";")[0].strip() not in NETCDF_TYPES:
            raise InvalidInput(f"{self.name} is {self.media_type}, not netCDF; read its bytes from .content")
        with xr.open_dataset(io.BytesIO(self.content), engine="h5netcdf") as ds:
            return ds.load()

    def value(self) -> Any:
        """A JSON asset, parsed."""
        return json.loads(self.content)
