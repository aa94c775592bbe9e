"""How large and how slow a request may be: the numbers the edge (``api/edge.py``) and the app's body limit
(``api/middleware.py``) both apply, from the settings.

Bodies get a default limit and larger allowances on the few routes that take big uploads (app archives, lake
files, stream batches, state batches, files another engine pushes). Only a verified caller gets an allowance
above the default (the app's middleware checks the token, or a push's bearer, before reading past it), so an
anonymous request never makes the engine read or parse more than the default. Kept free of the API's imports:
``twin serve`` builds its edge before the engine is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twinengine.config import Settings

__all__ = ["BODY_ALLOWANCES", "PUSH_FILE", "BodyLimits", "EdgeLimits"]

# (method, path pattern, the setting that sizes it): routes whose bodies may exceed ``max_request_bytes``.
# tests/integration/test_request_limits_in_process.py checks that each pattern names a route of the app.
BODY_ALLOWANCES: tuple[tuple[str, str, str], ...] = (
    ("POST", r"/api/v1/apps", "max_app_archive_bytes"),
    ("POST", r"/api/v1/lake/uploads", "lake_max_upload_bytes"),
    ("POST", r"/api/v1/runs/rerun", "max_app_archive_bytes"),  # a crate made elsewhere (crates.rerun)
    ("POST", r"/api/v1/state/batch", "state_batch_max_bytes"),
    ("POST", r"/api/v1/twins/[^/]+/streams/[^/]+/records", "stream_max_request_bytes"),
    ("PUT", r"/dsp/push/[^/]+/[^/]+", "lake_max_upload_bytes"),  # a file another engine pushes (its bearer: ours)
)
PUSH_FILE = re.compile(r"/dsp/push/(?P<pid>[^/]+)/[^/]+")  # its caller is verified by the push bearer
_SLASHES = re.compile(r"/{2,}")


@dataclass(frozen=True)
class BodyLimits:
    """The largest body a request may carry: ``default``, or an allowance of its route (``method``, a path
    pattern matched whole)."""

    default: int
    allowances: tuple[tuple[str, str, int], ...] = ()
    _compiled: tuple[tuple[str, re.Pattern[str], int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = tuple((method, re.compile(path), limit) for method, path, limit in self.allowances)
        object.__setattr__(self, "_compiled", compiled)

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        return cls(default=settings.max_request_bytes,
                   allowances=tuple((method, path, int(getattr(settings, name)))
                                    for method, path, name in BODY_ALLOWANCES))

    def allowance(self, method: str, path: str) -> int:
        """The limit for ``method`` on ``path`` (doubled slashes and a trailing one do not change the route)."""
        path = _SLASHES.sub("/", path).rstrip("/") or "/"
        return next((limit for m, pattern, limit in self._compiled if m == method and pattern.fullmatch(path)),
                    self.default)


@dataclass(frozen=True)
class EdgeLimits:
    """What the edge refuses before the engine parses a request: a request line over ``request_line`` bytes
    (414), a header section over ``header_bytes`` or ``header_count`` lines (431), a body over its route's
    limit (413), a head not received within ``head_timeout`` seconds of its first byte (408; a new connection
    that sends nothing is closed then), and a body arriving slower than ``body_min_rate`` bytes a second over
    ``body_rate_window`` seconds of the engine reading it (408)."""

    request_line: int
    header_bytes: int
    header_count: int
    head_timeout: float
    body_min_rate: int
    body_rate_window: float
    body: BodyLimits

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeLimits:
        return cls(request_line=settings.request_line_max_bytes, header_bytes=settings.request_header_max_bytes,
                   header_count=settings.request_header_max_count,
                   head_timeout=settings.request_head_timeout.total_seconds(),
                   body_min_rate=settings.request_body_min_rate,
                   body_rate_window=settings.request_body_rate_window.total_seconds(),
                   body=BodyLimits.from_settings(settings))
