"""Workflow composition: openEO process graphs on Dask, runs, triggers, provenance; the openEO API."""
