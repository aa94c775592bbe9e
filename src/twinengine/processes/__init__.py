"""OGC API - Processes over the engine's runs: processes described in the OGC process description, executed
synchronously or as jobs (which are the engine's runs), and CWL application packages deployed, replaced and
undeployed (Part 2). The routes live in ``api.py`` under ``/ogcapi``."""
