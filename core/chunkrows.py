"""Registering chunks in the ``chunks`` table under the collector lock.

The protocol (see ``core.db.collector_lock``): inside one shared hold a
writer touches the rows of chunks it will rely on, stores the blobs that
have no row, then inserts their rows. A row therefore never exists without
its blob, and gc cannot remove a touched chunk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.backend import Backend
from core.chunkcodec import encode_chunk
from core.db.models import Chunk
from core.ids import ChunkHash


def touch(session: Session, hashes: Iterable[ChunkHash], now: float) -> set[ChunkHash]:
    """Bump ``last_seen`` of the known chunks among ``hashes``; return those known."""
    wanted = list(set(hashes))
    if not wanted:
        return set()
    rows = session.execute(
        update(Chunk).where(Chunk.hash.in_(wanted)).values(last_seen=now).returning(Chunk.hash)
    ).scalars()
    return {ChunkHash(h) for h in rows}


def upsert(session: Session, rows: list[dict[str, object]]) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Chunk).values(rows)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[Chunk.hash], set_={"last_seen": statement.excluded.last_seen}
        )
    )


def store_chunks(
    backend: Backend,
    chunks: dict[ChunkHash, bytes],
    before_store: Callable[[Session], None] | None = None,
) -> int:
    """Make every chunk durable and registered; return the stored bytes written.

    ``before_store`` runs inside the first transaction, before any blob is
    written (the writer reserves quota and beats its session's heart there).
    """
    level = backend.settings.zstd_level

    def put(item: tuple[ChunkHash, bytes]) -> dict[str, object]:
        key, data = item
        blob = encode_chunk(data, level)
        backend.store.put(key, blob)
        return {"hash": key, "length": len(data), "stored_length": len(blob), "last_seen": now}

    with backend.lock.shared():
        now = time.time()
        with backend.db.write() as session:
            if before_store is not None:
                before_store(session)
            present = touch(session, chunks, now)
        missing = [(key, data) for key, data in chunks.items() if key not in present]
        rows = list(backend.workers.map(put, missing))
        with backend.db.write() as session:
            upsert(session, rows)
    return sum(int(row["stored_length"]) for row in rows)  # type: ignore[call-overload]
