"""Alembic environment: the connection comes from lib.db.upgrade_schema (or `alembic` with HELPDESK_DATABASE_URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from lib.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from lib.db import make_engine

    with make_engine().connect() as conn:
        _run(conn)
        conn.commit()
