"""The format interface: how to recognise a file of one format and open it as an xarray dataset."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import IO, TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import xarray as xr


__all__ = ["FormatBackend"]


class FormatBackend:
    """One file format. Subclasses set the class attributes and implement ``open_dataset``.

    ``collection``: files of this format are served as collections (EDR, openEO ``load_collection``,
    the datacube fields of STAC items); a format that is not (ROOT) is still registered in the lake and
    read by app code through ``twinengine.formats.open_dataset``. ``requires`` names the modules the
    format needs: without them it is listed as missing, with the reason, and never breaks the host.
    """

    name: ClassVar[str] = "abstract"
    description: ClassVar[str] = ""
    suffixes: ClassVar[tuple[str, ...]] = ()  # lower case, with the dot; several parts allowed (".zarr.zip")
    media_type: ClassVar[str] = "application/octet-stream"
    requires: ClassVar[tuple[str, ...]] = ()
    install: ClassVar[str] = ""  # how to get ``requires``: shown when they are missing
    collection: ClassVar[bool] = True
    directory: ClassVar[bool] = False  # a store is a folder (zarr), not one file

    def open_dataset(self, path: Path) -> xr.Dataset:
        """The file as a lazily loaded dataset; raise on anything that cannot be read (the registry names the
        file and keeps the reason)."""
        raise NotImplementedError

    def open_fileobj(self, fileobj: IO[bytes]) -> xr.Dataset | None:
        """Open from a file object (a replica on object storage); None: this format needs a local path."""
        return None

    def media_type_of(self, name: str) -> str:
        """The media type of a file with this name (a format may have variants, e.g. COG)."""
        return self.media_type

    @classmethod
    def missing(cls) -> list[str]:
        """The required modules that are not installed."""
        return [m for m in cls.requires if importlib.util.find_spec(m) is None]
