"""Sync API: WebDAV locks know their node; a user's nodes by id

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_nodes_owner_id", "nodes", ["owner_id", "id"], unique=False)
    with op.batch_alter_table("dav_locks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("node_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_dav_locks_node_id"), ["node_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_dav_locks_node_id_nodes"), "nodes", ["node_id"], ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("dav_locks", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_dav_locks_node_id_nodes"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_dav_locks_node_id"))
        batch_op.drop_column("node_id")
    op.drop_index("ix_nodes_owner_id", table_name="nodes")
