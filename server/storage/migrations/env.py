"""Alembic's environment: migrations run on the connection that
``server.storage.database.Database.migrate`` hands in (inside its lock),
never on one of their own."""

from __future__ import annotations

from alembic import context

from server.storage.models import Base


def run() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if getattr(context, "config", None) is not None:  # run by Alembic (not just imported)
    run()
