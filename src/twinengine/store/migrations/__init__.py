"""The engine's one Alembic history, and the models it builds: every package's ``models`` module.

``schema()`` imports them all and answers the metadata they register. An empty store is built from it at once
and stamped at the head (``store.migrate``), as Alembic's cookbook recipe does, instead of replaying every
migration (0.7 s of an engine's first start); ``SEEDS`` are the rows the history writes into an empty store,
written the same way. ``tests/integration/test_store.py`` checks that both ways give the same tables, columns,
indexes, constraints and rows, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import importlib
from typing import Any

from sqlalchemy import MetaData

__all__ = ["HEAD", "MODEL_MODULES", "SEEDS", "schema"]

# The history's head, so that a start on a store already there asks one query instead of loading Alembic's
# environment and all its scripts (0.3-0.5 s). A new migration changes it; ``tests/unit/test_migrations.py``
# fails while it names anything but the scripts' head.
HEAD = "0044"

MODEL_MODULES = (
    "twinengine.auth.models",
    "twinengine.calibration.models",
    "twinengine.catalog.models",
    "twinengine.compute.models",
    "twinengine.dataspace.models",
    "twinengine.lake.models",
    "twinengine.ml.models",
    "twinengine.processes.models",
    "twinengine.store.changes",
    "twinengine.store.shared_blobs",
    "twinengine.streams.models",
    "twinengine.subscriptions.models",
    "twinengine.twin_assimilation.models",
    "twinengine.twins.forecast_models",
    "twinengine.twins.models",
    "twinengine.twins.relationship_models",
    "twinengine.workflows.models",
)

# table -> rows: the change counters of 0009_fleets, each topic at 0
SEEDS: dict[str, list[dict[str, Any]]] = {
    "change_counters": [{"topic": topic, "value": 0} for topic in ("twins", "apps", "bindings")],
}


def schema() -> MetaData:
    """The metadata of every model (the schema the history's head has)."""
    for module in MODEL_MODULES:
        importlib.import_module(module)
    from twinengine.store.base import Base

    return Base.metadata
