"""The catalogue of DT applications: the twinapp.yaml manifest, app archives, publishing and browsing."""

from twinengine.catalog.manifest import Manifest, parse_app_ref
from twinengine.catalog.validate import check_app_dir

__all__ = ["Manifest", "check_app_dir", "parse_app_ref"]
