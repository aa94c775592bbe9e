"""The EDR listing warmed after start: the first ``GET /edr/collections`` would otherwise load the format
plugins and their libraries (zarr, h5netcdf) and open every collection's file, about 0.7 s on the demo's data;
the map's first layer (a cube drawn as a PNG) would load the imaging library. A served engine does both once
it answers (``twinengine.warmup``; ``/health``: ``"warming": ["edr"]``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.warmup import Warmup

if TYPE_CHECKING:
    from twinengine.access.service import DataAccess

__all__ = ["EdrWarmup"]

# a signed-in user with no grants: the per-user readability queries are prepared (compiled) by its listing
NOBODY = Principal(name="system", role=Role.USER, issuer="internal")


class EdrWarmup(Warmup):
    """Lists every collection once as the engine (opening every file) and once as a user without grants
    (the path a person's listing takes)."""

    name = "edr"

    def __init__(self, access: Callable[[], DataAccess]) -> None:
        super().__init__()
        self.access = access  # the runtime's, made here (with xarray) when the warm-up runs, after the first answer
        self.opened = 0

    def warm(self) -> str:
        from twinengine.access.listing import PLACEHOLDER, list_collections  # here: not before the first answer

        access = self.access()
        self.opened = len(list_collections(access, principal=SYSTEM, base=PLACEHOLDER, stop=self.stopping))
        list_collections(access, principal=NOBODY, base=PLACEHOLDER, stop=self.stopping)
        _draw_a_pixel()
        return f"{self.opened} collections opened"


def _draw_a_pixel() -> None:
    """The imaging library loaded, its PNG writer included, as ``access.render`` draws a map layer."""
    import io

    from PIL import Image

    Image.new("RGBA", (1, 1)).save(io.BytesIO(), format="PNG", compress_level=1)
