"""Node ids reserved for a sync client before their node exists

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reserved_node_ids",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reserved_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name=op.f("fk_reserved_node_ids_user_id_users"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reserved_node_ids")),
    )  # fmt: skip
    op.create_index(
        op.f("ix_reserved_node_ids_user_id"), "reserved_node_ids", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_reserved_node_ids_user_id"), table_name="reserved_node_ids")
    op.drop_table("reserved_node_ids")
