"""The catalogue of DT applications: the twinapp.yaml manifest, app archives, publishing and browsing."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twinengine.catalog.manifest import Manifest, parse_app_ref
    from twinengine.catalog.validate import check_app_dir

__all__ = ["Manifest", "check_app_dir", "parse_app_ref"]

# Imported on first use: the catalogue's tables (which migrations import) need neither.
_WHERE = {"Manifest": "manifest", "parse_app_ref": "manifest", "check_app_dir": "validate"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"twinengine.catalog.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'twinengine.catalog' has no attribute {name!r}")
