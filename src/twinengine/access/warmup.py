"""The EDR listing warmed after start: the first ``GET /edr/collections`` would otherwise load the format
plugins and their libraries (zarr, h5netcdf) and open every collection's file, about 0.7 s on the demo's data.
A background thread does it once the server answers (``twinengine.warmup``; ``/health``: ``"warming": ["edr"]``).
"""

from __future__ import annotations

from twinengine.access.listing import PLACEHOLDER, list_collections
from twinengine.access.service import DataAccess
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.warmup import Warmup

__all__ = ["EdrWarmup"]

# a signed-in user with no grants: the per-user readability queries are prepared (compiled) by its listing
NOBODY = Principal(name="system", role=Role.USER, issuer="internal")


class EdrWarmup(Warmup):
    """Lists every collection once as the engine (opening every file) and once as a user without grants
    (the path a person's listing takes)."""

    name = "edr"

    def __init__(self, access: DataAccess) -> None:
        super().__init__()
        self.access = access
        self.opened = 0

    def warm(self) -> str:
        self.opened = len(list_collections(self.access, principal=SYSTEM, base=PLACEHOLDER))
        list_collections(self.access, principal=NOBODY, base=PLACEHOLDER)
        return f"{self.opened} collections opened"
