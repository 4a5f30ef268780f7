"""Alembic environment: runs migrations on the connection handed over by
``core.db.migrate`` (there is no alembic.ini; ``drivegate db upgrade`` is the
entry point)."""

from alembic import context

from core.db.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
