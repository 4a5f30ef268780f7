"""Dead properties count toward their owner's quota

A property's name and value bytes are charged to ``users.used_bytes`` like
file content from now on (``core.properties``); this adds what existing
properties hold.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 14:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HELD = """
    SELECT coalesce(sum(length(p.name) + length(p.value)), 0)
    FROM dead_properties p JOIN nodes n ON n.id = p.node_id
    WHERE n.owner_id = users.id
"""


def upgrade() -> None:
    op.execute(f"UPDATE users SET used_bytes = used_bytes + ({_HELD})")


def downgrade() -> None:
    op.execute(f"UPDATE users SET used_bytes = used_bytes - ({_HELD})")
