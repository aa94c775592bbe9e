"""Workflow composition: openEO process graphs on Dask, runs, triggers, provenance; the openEO API."""

from twinengine.workflows.openeo_schema import register as _register_openeo_schema

# Before anything here imports openeo-processes-dask (whose processes import the parser's pg_schema): the parser's
# package is registered without its graph module, which imports a GPL-3.0 library the engine does not use.
_register_openeo_schema()
