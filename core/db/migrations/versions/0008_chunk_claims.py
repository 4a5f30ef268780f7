"""Chunk claims: which user uploaded which chunk (proof of possession)

A sync client may name a chunk in a commit only if it can read it through one
of its own nodes or has uploaded its bytes itself; a claim records the latter
until the commit (gc drops claims older than its cutoff, and with their chunk).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chunk_claims",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chunk_hash", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name=op.f("fk_chunk_claims_user_id_users"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["chunk_hash"], ["chunks.hash"],
            name=op.f("fk_chunk_claims_chunk_hash_chunks"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "chunk_hash", name=op.f("pk_chunk_claims")),
    )  # fmt: skip
    op.create_index(
        op.f("ix_chunk_claims_chunk_hash"), "chunk_claims", ["chunk_hash"], unique=False
    )
    op.create_index(
        op.f("ix_chunk_claims_claimed_at"), "chunk_claims", ["claimed_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_chunk_claims_claimed_at"), table_name="chunk_claims")
    op.drop_index(op.f("ix_chunk_claims_chunk_hash"), table_name="chunk_claims")
    op.drop_table("chunk_claims")
