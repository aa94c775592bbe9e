"""The openEO API 1.2 over the engine's workflows (``/openeo/1.2/`` and ``/.well-known/openeo``)."""
