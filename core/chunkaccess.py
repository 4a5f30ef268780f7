"""Chunks by hash, for sync clients: authorised reads, verified uploads, and
"which of these do you lack".

A chunk is readable by a user only if a version of one of their own nodes
(live, in the trash, or an old version) names it: knowing a hash is no proof
of access. Uploads are verified against their name before anything is
stored, and registered the way the writer registers its chunks (under the
shared collector lock: blob first, then its row), so an uploaded chunk is
protected from gc for the grace period and a commit can rely on it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import chunkrows
from core.backend import Backend
from core.chunkcodec import decode_chunk, frame
from core.chunking import MAX_CHUNK, chunk_hash
from core.db.models import ManifestSegment, Node, SegmentChunk, Version
from core.errors import ChunkMissing, HashMismatch, InvalidRequest, NotFound
from core.ids import ChunkHash

_HASH = re.compile(r"[0-9a-f]{64}")


def checked_hash(value: str) -> ChunkHash:
    """``value`` if it is a chunk name (64 lower-case hex digits), else InvalidRequest."""
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise InvalidRequest(f"not a chunk hash (64 lower-case hex digits): {str(value)[:80]!r}")
    return ChunkHash(value)


def may_read(session: Session, user_id: int, key: ChunkHash) -> bool:
    """Does a version of one of the user's nodes name this chunk? (one query)"""
    found = session.execute(
        select(SegmentChunk.idx)
        .join(ManifestSegment, ManifestSegment.segment_id == SegmentChunk.segment_id)
        .join(Version, Version.manifest_id == ManifestSegment.manifest_id)
        .join(Node, Node.id == Version.node_id)
        .where(SegmentChunk.chunk_hash == key, Node.owner_id == user_id)
        .limit(1)
    ).first()
    return found is not None


def read(backend: Backend, user_id: int, key: ChunkHash, *, verify: bool = True) -> bytes:
    """The chunk's plaintext, verified against its hash; NotFound unless the user may read it.

    ``verify=False`` skips the hash (a damaged header or zstd payload is still
    ChunkCorrupt). Only for the sync API's chunk GET, whose contract makes the
    client verify what it receives (the name of a chunk is its hash, and the
    bytes cross a network anyway): hashing them twice cost the server ~0.7
    CPU-seconds per GiB a mount reads, on machines where the mount and the
    server share the cores. Everything else the core reads stays verified.
    """
    with backend.db.read() as session:
        allowed = may_read(session, user_id, checked_hash(key))
    if not allowed:
        raise NotFound(f"no chunk {key}")
    try:
        return decode_chunk(backend.store.get(key), key, verify=verify)
    except ChunkMissing as exc:
        raise ChunkMissing(f"a file's chunk is missing from the store: {exc}") from None


def missing(backend: Backend, keys: Iterable[str]) -> list[ChunkHash]:
    """Which of ``keys`` the server lacks, in the order asked. The ones it has are
    touched, so gc keeps them for the grace period while the client commits."""
    wanted = list(dict.fromkeys(checked_hash(key) for key in keys))
    if not wanted:
        return []
    with backend.lock.shared(), backend.db.write(durable=False) as session:
        present = chunkrows.touch(session, wanted, time.time())
    return [key for key in wanted if key not in present]


def put(backend: Backend, key: str, data: bytes) -> bool:
    """Store a chunk sent by a client; True if it was new, False if already there.

    HashMismatch (nothing stored) unless ``data`` hashes to ``key``.
    """
    name = checked_hash(key)
    if not data or len(data) > MAX_CHUNK:
        raise InvalidRequest(f"a chunk holds 1 to {MAX_CHUNK} bytes, not {len(data)}")
    if chunk_hash(data) != name:
        raise HashMismatch(f"the bytes sent do not hash to {name}")
    with backend.lock.shared():  # bookkeeping only: the commit naming it is durable
        with backend.db.write(durable=False) as session:
            if chunkrows.touch(session, [name], time.time()):
                return False
        rows = chunkrows.put_blobs(backend, {name: frame(data)})
        with backend.db.write(durable=False) as session:
            chunkrows.upsert(session, rows)
    return True
