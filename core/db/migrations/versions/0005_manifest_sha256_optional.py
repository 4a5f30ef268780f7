"""A manifest's whole-file SHA-256 is known when cheap: NULL when unknown

An API commit of chunks uploaded beforehand no longer reads the whole file
back to hash it; it stores the client's sum if given, else NULL.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("manifests", schema=None) as batch_op:
        batch_op.alter_column(
            "sha256", existing_type=sa.String(length=64), nullable=True
        )


def downgrade() -> None:
    # The sum of an unknown manifest cannot be made up: downgrading needs
    # `drivegate fsck --verify` first, which fills every unknown sum in.
    with op.batch_alter_table("manifests", schema=None) as batch_op:
        batch_op.alter_column(
            "sha256", existing_type=sa.String(length=64), nullable=False
        )
