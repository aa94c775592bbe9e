"""Alembic environment: the schema is the union of every package's ``models`` module."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import twinengine.auth.models
import twinengine.calibration.models
import twinengine.catalog.models
import twinengine.compute.models
import twinengine.dataspace.models
import twinengine.lake.models
import twinengine.ml.models
import twinengine.processes.models
import twinengine.store.changes
import twinengine.store.shared_blobs
import twinengine.streams.models
import twinengine.subscriptions.models
import twinengine.twin_assimilation.models
import twinengine.twins.forecast_models
import twinengine.twins.models
import twinengine.twins.relationship_models
import twinengine.workflows.models  # noqa: F401  (registers tables on Base.metadata)
from twinengine.store.base import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
    else:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as conn:
            _run(conn)
        engine.dispose()
