"""Schema migrations (Alembic): bring a database to the newest revision.

A fresh database is migrated on first use; an older one is upgraded only by
``drivegate db upgrade`` so an operator decides when a schema changes.
Concurrent first starts of several server processes on one PostgreSQL are
serialised by an advisory lock.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from core.db.engine import Database
from core.errors import StorageUnavailable

_MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x6D696772  # "migr"


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    script = ScriptDirectory(str(_MIGRATIONS))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(db: Database) -> tuple[str | None, str]:
    """Migrate to the newest revision; return (revision before, revision after)."""
    with db.engine.begin() as connection:
        if db.dialect == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
        before = current_revision(connection)
        command.upgrade(_config(connection), "head")
        return before, head_revision()


def ensure_schema(db: Database) -> None:
    """Migrate a fresh database; refuse to run on one that is behind."""
    with db.engine.connect() as connection:
        current = current_revision(connection)
    if current is None:
        upgrade(db)
    elif current != head_revision():
        raise StorageUnavailable(
            f"the database schema is at revision {current}, this drivegate needs "
            f"{head_revision()}: run `drivegate db upgrade`"
        )
