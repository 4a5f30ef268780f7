"""Migrations build exactly the schema the models describe, on both dialects."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core import Drive
from core.db.migrate import current_revision, head_revision
from core.db.models import Base


def test_migrated_database_matches_the_models(drive: Drive) -> None:
    with drive.db.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
