"""Shares (grants of a subtree to a user or a group) and share entries

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 21:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("nodes") as nodes:
        nodes.add_column(sa.Column("target_id", _ID, nullable=True))
        nodes.create_foreign_key(
            op.f("fk_nodes_target_id_nodes"), "nodes", ["target_id"], ["id"], ondelete="CASCADE"
        )
        nodes.create_index(op.f("ix_nodes_target_id"), ["target_id"], unique=False)
    op.create_table(
        "shares",
        sa.Column("id", _ID, nullable=False),
        sa.Column("node_id", _ID, nullable=False),
        sa.Column("owner_id", _ID, nullable=False),
        sa.Column("granted_by", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=True),
        sa.Column("group_id", _ID, nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("reshare", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (group_id IS NULL)", name=op.f("ck_shares_one_grantee")
        ),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"],
                                name=op.f("fk_shares_node_id_nodes"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"],
                                name=op.f("fk_shares_owner_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["granted_by"], ["users.id"],
                                name=op.f("fk_shares_granted_by_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_shares_user_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"],
                                name=op.f("fk_shares_group_id_groups"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shares")),
    )  # fmt: skip
    for column in ("node_id", "owner_id", "user_id", "group_id"):
        op.create_index(op.f(f"ix_shares_{column}"), "shares", [column], unique=False)
    op.create_index(
        "uq_shares_node_user", "shares", ["node_id", "user_id"], unique=True,
        sqlite_where=sa.text("user_id IS NOT NULL"),
        postgresql_where=sa.text("user_id IS NOT NULL"),
    )  # fmt: skip
    op.create_index(
        "uq_shares_node_group", "shares", ["node_id", "group_id"], unique=True,
        sqlite_where=sa.text("group_id IS NOT NULL"),
        postgresql_where=sa.text("group_id IS NOT NULL"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("shares")
    with op.batch_alter_table("nodes") as nodes:
        nodes.drop_index(op.f("ix_nodes_target_id"))
        nodes.drop_constraint(op.f("fk_nodes_target_id_nodes"), type_="foreignkey")
        nodes.drop_column("target_id")
