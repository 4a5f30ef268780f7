"""WebDAV locks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 08:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dav_locks",
        sa.Column("token", sa.String(length=100), nullable=False),
        sa.Column("root", sa.String(length=4096), nullable=False),
        sa.Column("principal", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("depth", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("timeout", sa.Double(), nullable=False),
        sa.Column("expire", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_dav_locks")),
    )
    with op.batch_alter_table("dav_locks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dav_locks_root"), ["root"], unique=False)


def downgrade() -> None:
    op.drop_table("dav_locks")
