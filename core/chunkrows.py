"""Registering chunks in the ``chunks`` table under the collector lock.

The protocol (see ``core.db.mutex``): inside one shared hold a
writer touches the rows of chunks it will rely on, stores the blobs that
have no row, then inserts their rows. A row therefore never exists without
its blob, and gc cannot remove a touched chunk.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import cache
from typing import cast

from sqlalchemy import Insert, Table, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.backend import Backend
from core.chunkcodec import HEADER, encode_frame
from core.db.models import Chunk
from core.ids import ChunkHash

ChunkRow = dict[str, object]

_CHUNKS = cast(Table, Chunk.__table__)  # Core statements: no ORM work per call

_TOUCH = (
    update(_CHUNKS)
    .where(_CHUNKS.c.hash.in_(bindparam("hashes", expanding=True)))
    .values(last_seen=bindparam("now"))
    .returning(_CHUNKS.c.hash, _CHUNKS.c.length)
)


def touch(session: Session, hashes: Iterable[ChunkHash], now: float) -> dict[ChunkHash, int]:
    """Bump ``last_seen`` of the known chunks among ``hashes``; return those known,
    with their lengths."""
    wanted = list(set(hashes))
    if not wanted:
        return {}
    rows = session.execute(_TOUCH, {"hashes": wanted, "now": now}).all()
    return {ChunkHash(h): length for h, length in rows}


def put_blobs(backend: Backend, chunks: dict[ChunkHash, memoryview]) -> list[ChunkRow]:
    """Encode and store ``chunks`` (plaintext framed as ``chunkcodec.frame`` makes it)
    in parallel; return their rows, ready for ``upsert``."""
    now = time.time()

    def put(item: tuple[ChunkHash, memoryview]) -> ChunkRow:
        return put_blob(backend, *item, now)

    if len(chunks) == 1:  # not worth a trip through the pool
        return [put(next(iter(chunks.items())))]
    return list(backend.workers.map(put, chunks.items()))


def put_blob(backend: Backend, key: ChunkHash, framed: memoryview, now: float) -> ChunkRow:
    """Encode and store one chunk (framed as ``chunkcodec.frame`` makes it); its row."""
    blob = encode_frame(framed, backend.settings.zstd_level)
    backend.store.put(key, blob)
    length = len(framed) - HEADER
    return {"hash": key, "length": length, "stored_length": len(blob), "last_seen": now}


def upsert(session: Session, rows: list[ChunkRow]) -> None:
    """Insert chunk rows (after their blobs are durable); existing ones just get touched."""
    if rows:
        session.execute(_upsert(session.get_bind().dialect.name), rows)


def _upsert(dialect: str) -> Insert:
    return touching_insert(dialect, _CHUNKS, ("hash",), "last_seen")


@cache
def touching_insert(dialect: str, table: Table, keys: tuple[str, ...], stamp: str) -> Insert:
    """An INSERT of ``table`` rows that, for a row whose ``keys`` (column names) exist
    already, only sets ``stamp`` to the new value. A Core statement built once per dialect, run
    with many parameter sets: the writer registers a batch of chunks per call, and
    building a multi-row VALUES statement each time cost more CPU than running it."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={stamp: statement.excluded[stamp]}
    )
