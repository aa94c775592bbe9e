"""openEO's process-graph schema (openeo-pg-parser-networkx's ``pg_schema``) without that package's graph module.

The package's ``__init__`` imports ``graph.py``, which imports yprov4wfs (GPL-3.0) for a provenance export the
engine does not use. The engine (dates, process arguments) and openeo-processes-dask (bounding boxes, temporal
intervals) need only the schema. ``register()`` puts the package in ``sys.modules`` unexecuted, with its
``__init__`` run on the first name asked of it, so importing ``pg_schema`` runs no ``graph.py`` while
``from openeo_pg_parser_networkx import OpenEOProcessGraph`` still works for whoever wants the parser.
``twinengine.workflows`` registers it as it is imported, before any of its modules imports the schema or
openeo-processes-dask, so they import ``openeo_pg_parser_networkx.pg_schema`` as usual. The engine's image
leaves yprov4wfs out (deploy/build-image.sh); tests/unit/test_openeo_schema.py proves neither
is imported by a run of the standard processes.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from typing import Any

__all__ = ["PACKAGE", "register"]

PACKAGE = "openeo_pg_parser_networkx"
_LOCK = threading.Lock()


def register() -> None:
    """Put the parser's package in ``sys.modules`` without running its ``__init__`` (idempotent; a package
    imported already, or not installed, is left as it is)."""
    with _LOCK:
        if PACKAGE in sys.modules:
            return
        spec = importlib.util.find_spec(PACKAGE)  # finds it without executing it
        if spec is None or spec.loader is None:
            return
        package = importlib.util.module_from_spec(spec)  # __path__, __spec__ and __file__ set; nothing run
        loader = spec.loader
        run = threading.Lock()

        def __getattr__(name: str) -> Any:  # a module's own attribute hook (PEP 562)
            if name.startswith("__") and name != "__version__":
                raise AttributeError(name)  # the import system's probes (__all__ is asked by ``import *`` only)
            with run:
                if package.__dict__.pop("__getattr__", None) is not None:
                    loader.exec_module(package)  # the package's own __init__: the parser and its graph module
            return getattr(package, name)

        package.__getattr__ = __getattr__  # type: ignore[method-assign]
        sys.modules[PACKAGE] = package
