"""The format registry: built-in formats merged with plugins from the ``twinengine.formats`` entry-point group.

Built-ins whose libraries are missing are kept apart with the reason (a file of that format gets a clear
error naming the package to install); a broken plugin is reported in a warning and never breaks the host.
"""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from twinengine.formats._base import FormatBackend

__all__ = ["FormatMatch", "list_formats", "match", "media_type_for", "missing_formats", "refresh_formats"]

log = logging.getLogger(__name__)
GROUP = "twinengine.formats"


def _builtins() -> list[type[FormatBackend]]:
    from twinengine.formats._geotiff import GeoTIFFFormat
    from twinengine.formats._grib import GRIBFormat
    from twinengine.formats._netcdf import HDF5Format, NetCDFFormat
    from twinengine.formats._root import ROOTFormat
    from twinengine.formats._tables import CSVFormat, ParquetFormat
    from twinengine.formats._zarr import ZarrFormat, ZipZarrFormat

    return [ZarrFormat, ZipZarrFormat, NetCDFFormat, HDF5Format, GRIBFormat, GeoTIFFFormat, CSVFormat,
            ParquetFormat, ROOTFormat]


@dataclass(frozen=True)
class _Registry:
    available: dict[str, FormatBackend]
    missing: dict[str, tuple[type[FormatBackend], str]]  # name -> (class, why it is not available)


_lock = threading.Lock()
_cache: _Registry | None = None


def _load() -> _Registry:
    classes: dict[str, type[FormatBackend]] = {cls.name: cls for cls in _builtins()}
    for point in entry_points(group=GROUP):
        try:
            cls = point.load()
            if not (isinstance(cls, type) and issubclass(cls, FormatBackend)):
                raise TypeError(f"{point.value} is not a twinengine.formats.FormatBackend")
        except Exception as exc:
            warnings.warn(f"format plugin {point.name!r} could not be loaded and is ignored: {exc}", RuntimeWarning,
                          stacklevel=2)
            continue
        classes[cls.name] = cls  # a plugin may replace a built-in of the same name
    available: dict[str, FormatBackend] = {}
    missing: dict[str, tuple[type[FormatBackend], str]] = {}
    for name, cls in classes.items():
        absent = cls.missing()
        if absent:
            why = f"{cls.description} needs {', '.join(absent)}" + (f" ({cls.install})" if cls.install else "")
            missing[name] = (cls, why)
            log.info("format %s is not available: %s", name, why)
        else:
            available[name] = cls()
    return _Registry(available, missing)


def _registry() -> _Registry:
    global _cache
    with _lock:
        if _cache is None:
            _cache = _load()
        return _cache


def refresh_formats() -> None:
    """Forget the cached registry (after installing a plugin or a format's library)."""
    global _cache
    with _lock:
        _cache = None


def list_formats() -> dict[str, FormatBackend]:
    """The formats that can be read here, by name."""
    return dict(_registry().available)


def missing_formats() -> dict[str, str]:
    """Formats known but not readable here, by name, with the reason."""
    return {name: why for name, (_, why) in _registry().missing.items()}


@dataclass(frozen=True)
class FormatMatch:
    """What a file name says: its format (by name), the stem before the suffix, whether files of that format
    are collections, and why the format cannot be read here (None when it can)."""

    format: str
    stem: str
    suffix: str
    collection: bool = True
    unavailable: str | None = None

    @property
    def backend(self) -> FormatBackend:
        return _registry().available[self.format]


def match(name: str, *, is_dir: bool | None = None) -> FormatMatch | None:
    """The format a file (or store folder) name belongs to by its suffix (longest suffix first), or None.
    ``is_dir``: whether the entry is a folder, when known (only folder formats match folders)."""
    registry = _registry()
    candidates: list[tuple[str, str, type[FormatBackend], str | None]] = []
    for fmt_name, backend in registry.available.items():
        candidates += [(s, fmt_name, type(backend), None) for s in backend.suffixes]
    for fmt_name, (cls, reason) in registry.missing.items():
        candidates += [(s, fmt_name, cls, reason) for s in cls.suffixes]
    lower = name.lower()
    for suffix, fmt_name, cls, why in sorted(candidates, key=lambda c: -len(c[0])):
        if lower.endswith(suffix) and len(name) > len(suffix):
            if is_dir is not None and is_dir != cls.directory:
                continue
            return FormatMatch(fmt_name, name[: -len(suffix)], suffix, cls.collection, why)
    return None


def media_type_for(name: str) -> str | None:
    """The media type of a file by its name, for formats the engine knows (readable here or not)."""
    found = match(Path(name).name)
    if found is None:
        return None
    registry = _registry()
    if found.unavailable is None:
        return registry.available[found.format].media_type_of(name)
    return registry.missing[found.format][0]().media_type_of(name)


def known_suffixes() -> list[str]:
    registry = _registry()
    names = [s for b in registry.available.values() for s in b.suffixes]
    names += [s for cls, _ in registry.missing.values() for s in cls.suffixes]
    return sorted(set(names))
