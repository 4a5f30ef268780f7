"""Manifests list shared segments of entries instead of every entry

A new version of a big file wrote one row per chunk (and as many index
entries) however little changed. Now a manifest lists segments of up to 32
entries, and a new manifest reuses the unchanged segments of the previous
one (see core/segments.py). Existing manifests are cut into segments of 32
entries, in order; nothing is shared between them until files change again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PER_SEGMENT = 32
BATCH = 200

entries_table = sa.table(
    "manifest_chunks",
    sa.column("manifest_id", sa.BigInteger()),
    sa.column("idx", sa.Integer()),
    sa.column("offset", sa.BigInteger()),
    sa.column("length", sa.Integer()),
    sa.column("chunk_hash", sa.String(64)),
)
segments_table = sa.table(
    "segments",
    sa.column("id", sa.BigInteger()),
    sa.column("chunk_count", sa.Integer()),
    sa.column("size", sa.BigInteger()),
)
segment_entries_table = sa.table(
    "segment_chunks",
    sa.column("segment_id", sa.BigInteger()),
    sa.column("idx", sa.Integer()),
    sa.column("offset", sa.BigInteger()),
    sa.column("length", sa.Integer()),
    sa.column("chunk_hash", sa.String(64)),
)
listing_table = sa.table(
    "manifest_segments",
    sa.column("manifest_id", sa.BigInteger()),
    sa.column("idx", sa.Integer()),
    sa.column("segment_id", sa.BigInteger()),
    sa.column("first_chunk", sa.Integer()),
    sa.column("offset", sa.BigInteger()),
)


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", BigId, nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
    )
    op.create_table(
        "segment_chunks",
        sa.Column("segment_id", BigId, nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("chunk_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["chunk_hash"], ["chunks.hash"],
            name=op.f("fk_segment_chunks_chunk_hash_chunks"), ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segments.id"],
            name=op.f("fk_segment_chunks_segment_id_segments"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("segment_id", "idx", name=op.f("pk_segment_chunks")),
    )  # fmt: skip
    op.create_index(
        op.f("ix_segment_chunks_chunk_hash"), "segment_chunks", ["chunk_hash"], unique=False
    )
    op.create_table(
        "manifest_segments",
        sa.Column("manifest_id", BigId, nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("segment_id", BigId, nullable=False),
        sa.Column("first_chunk", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["manifest_id"], ["manifests.id"],
            name=op.f("fk_manifest_segments_manifest_id_manifests"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segments.id"],
            name=op.f("fk_manifest_segments_segment_id_segments"), ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("manifest_id", "idx", name=op.f("pk_manifest_segments")),
    )  # fmt: skip
    op.create_index(
        op.f("ix_manifest_segments_segment_id"), "manifest_segments", ["segment_id"], unique=False
    )
    _move_entries(op.get_bind())
    op.drop_index(op.f("ix_manifest_chunks_chunk_hash"), table_name="manifest_chunks")
    op.drop_table("manifest_chunks")


def _move_entries(connection: sa.Connection) -> None:
    """Cut every manifest's entries into segments of PER_SEGMENT, in order."""
    last = -1
    while True:
        manifest_ids = connection.execute(
            sa.select(sa.distinct(entries_table.c.manifest_id))
            .where(entries_table.c.manifest_id > last)
            .order_by(entries_table.c.manifest_id)
            .limit(BATCH)
        ).scalars().all()  # fmt: skip
        if not manifest_ids:
            return
        for manifest_id in manifest_ids:
            _move_manifest(connection, manifest_id)
        last = manifest_ids[-1]


def _move_manifest(connection: sa.Connection, manifest_id: int) -> None:
    rows = connection.execute(
        sa.select(entries_table.c.offset, entries_table.c.length, entries_table.c.chunk_hash)
        .where(entries_table.c.manifest_id == manifest_id)
        .order_by(entries_table.c.idx)
    ).all()
    for place, start in enumerate(range(0, len(rows), PER_SEGMENT)):
        run = rows[start : start + PER_SEGMENT]
        segment_id = connection.execute(
            sa.insert(segments_table)
            .values(chunk_count=len(run), size=sum(length for _, length, _ in run))
            .returning(segments_table.c.id)
        ).scalar_one()
        connection.execute(
            sa.insert(segment_entries_table),
            [
                {"segment_id": segment_id, "idx": idx, "offset": offset - run[0][0],
                 "length": length, "chunk_hash": key}
                for idx, (offset, length, key) in enumerate(run)
            ],
        )  # fmt: skip
        connection.execute(
            sa.insert(listing_table).values(
                manifest_id=manifest_id, idx=place, segment_id=segment_id,
                first_chunk=start, offset=run[0][0],
            )
        )  # fmt: skip


def downgrade() -> None:
    op.create_table(
        "manifest_chunks",
        sa.Column("manifest_id", BigId, nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("chunk_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["chunk_hash"], ["chunks.hash"],
            name=op.f("fk_manifest_chunks_chunk_hash_chunks"), ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["manifest_id"], ["manifests.id"],
            name=op.f("fk_manifest_chunks_manifest_id_manifests"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("manifest_id", "idx", name=op.f("pk_manifest_chunks")),
    )  # fmt: skip
    op.create_index(
        op.f("ix_manifest_chunks_chunk_hash"), "manifest_chunks", ["chunk_hash"], unique=False
    )
    connection = op.get_bind()
    connection.execute(
        sa.insert(entries_table).from_select(
            ["manifest_id", "idx", "offset", "length", "chunk_hash"],
            sa.select(
                listing_table.c.manifest_id,
                listing_table.c.first_chunk + segment_entries_table.c.idx,
                listing_table.c.offset + segment_entries_table.c.offset,
                segment_entries_table.c.length,
                segment_entries_table.c.chunk_hash,
            ).join(
                segment_entries_table,
                segment_entries_table.c.segment_id == listing_table.c.segment_id,
            ),
        )
    )
    op.drop_table("manifest_segments")
    op.drop_table("segment_chunks")
    op.drop_table("segments")
