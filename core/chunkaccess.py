"""Chunks by hash, for sync clients: who may name which chunk, authorised
reads, verified uploads, and "which of these do you lack".

Dedup is across users, so a hash is no secret and no proof of anything. A
user may *use* a chunk (read it, name it in a commit, be told the server has
it) only if they can already read it, because a version of one of their own
nodes (live, in the trash, or an old version) names it, or if they have
proved they hold its bytes by uploading them (a claim, ``ChunkClaim``). For
every other chunk each answer is the one it would be if nobody stored it:
``missing`` lists it, a commit naming it fails with MissingChunks (its length
unchecked), a GET is 404, and a PUT stores it "anew" (201) and claims it.

What is not hidden: timing. A PUT of a chunk someone else stores skips the
blob write, and so does a WebDAV PUT of such content; a user who already
holds the bytes can time that. Closing it would mean giving up cross-user
dedup of writes (docs/architecture.md, Security).

Uploads are verified against their name before anything is stored, and
registered the way the writer registers its chunks (under the shared
collector lock: blob first, then its row), so an uploaded chunk is protected
from gc for the grace period and a commit can rely on it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Iterable
from typing import cast

from sqlalchemy import Insert, Table, bindparam, select
from sqlalchemy.orm import Session

from cdc.chunking import MAX_CHUNK, chunk_hash
from core import access, chunkrows
from core.backend import Backend
from core.chunkcodec import decode_chunk, frame
from core.db.models import ChunkClaim, ManifestSegment, Node, SegmentChunk, Version
from core.errors import ChunkMissing, HashMismatch, InvalidRequest, NotFound
from core.ids import ChunkHash, UserId

_HASH = re.compile(r"[0-9a-f]{64}")


def checked_hash(value: str) -> ChunkHash:
    """``value`` if it is a chunk name (64 lower-case hex digits), else InvalidRequest."""
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise InvalidRequest(f"not a chunk hash (64 lower-case hex digits): {str(value)[:80]!r}")
    return ChunkHash(value)


_CLAIMED = (
    select(ChunkClaim.chunk_hash)
    .where(ChunkClaim.user_id == bindparam("user"))
    .where(ChunkClaim.chunk_hash.in_(bindparam("hashes", expanding=True)))
)
_READABLE = (
    select(SegmentChunk.chunk_hash)
    .distinct()
    .join(ManifestSegment, ManifestSegment.segment_id == SegmentChunk.segment_id)
    .join(Version, Version.manifest_id == ManifestSegment.manifest_id)
    .join(Node, Node.id == Version.node_id)
    .where(SegmentChunk.chunk_hash.in_(bindparam("hashes", expanding=True)))
    .where(access.visible_to(bindparam("user")))
)


def usable(session: Session, user_id: int, keys: Collection[ChunkHash]) -> set[ChunkHash]:
    """The ``keys`` this user may use: claimed by them, or named by a version of one
    of their nodes (at most two queries)."""
    if not keys:
        return set()
    wanted = list(set(keys))
    claimed = session.execute(_CLAIMED, {"user": user_id, "hashes": wanted}).scalars()
    found = {ChunkHash(h) for h in claimed}
    rest = [key for key in wanted if key not in found]
    if rest:
        rows = session.execute(_READABLE, {"user": user_id, "hashes": rest}).scalars()
        found.update(ChunkHash(h) for h in rows)
    return found


def claim(session: Session, user_id: int, keys: Iterable[ChunkHash], now: float) -> None:
    """Record that the user uploaded these chunks (their rows must exist)."""
    rows = [{"user_id": user_id, "chunk_hash": key, "claimed_at": now} for key in keys]
    if rows:
        session.execute(_claim(session.get_bind().dialect.name), rows)


_CLAIMS = cast(Table, ChunkClaim.__table__)


def _claim(dialect: str) -> Insert:
    return chunkrows.touching_insert(dialect, _CLAIMS, ("user_id", "chunk_hash"), "claimed_at")


def read(backend: Backend, user_id: int, key: ChunkHash, *, verify: bool = True) -> bytes:
    """The chunk's plaintext, verified against its hash; NotFound unless the user may read it.

    ``verify=False`` skips the hash (a damaged header or zstd payload is still
    ChunkCorrupt). Only for the sync API's chunk GET, whose contract makes the
    client verify what it receives (the name of a chunk is its hash, and the
    bytes cross a network anyway): hashing them twice costs the server CPU on
    every read, taken from the mount where both share the cores. Everything
    else the core reads stays verified.
    """
    key = checked_hash(key)
    with backend.db.read() as session:
        allowed = usable(session, user_id, [key])
    if not allowed:
        raise NotFound(f"no chunk {key}")
    try:
        return decode_chunk(backend.store.get(key), key, verify=verify)
    except ChunkMissing as exc:
        raise ChunkMissing(f"a file's chunk is missing from the store: {exc}") from None


def missing(backend: Backend, user_id: UserId, keys: Iterable[str]) -> list[ChunkHash]:
    """Which of ``keys`` the user must upload, in the order asked: every chunk they
    may not use (see the module's docstring), stored or not. The others are
    touched, so gc keeps them for the grace period while the client commits."""
    wanted = list(dict.fromkeys(checked_hash(key) for key in keys))
    if not wanted:
        return []
    with backend.lock.shared(), backend.db.write(durable=False) as session:
        present = chunkrows.touch(session, usable(session, user_id, wanted), time.time())
    return [key for key in wanted if key not in present]


def put(backend: Backend, user_id: UserId, key: str, data: bytes) -> bool:
    """Store a chunk sent by a client and claim it for the user; True if the user
    could not use it before (stored now, or by someone else: the answer is the
    same), False if they could.

    HashMismatch (nothing stored) unless ``data`` hashes to ``key``.
    """
    name = checked_hash(key)
    if not data or len(data) > MAX_CHUNK:
        raise InvalidRequest(f"a chunk holds 1 to {MAX_CHUNK} bytes, not {len(data)}")
    if chunk_hash(data) != name:
        raise HashMismatch(f"the bytes sent do not hash to {name}")
    with backend.lock.shared():  # bookkeeping only: the commit naming it is durable
        with backend.db.write(durable=False) as session:
            now = time.time()
            if usable(session, user_id, [name]) and chunkrows.touch(session, [name], now):
                return False
            stored = chunkrows.touch(session, [name], now)
            if stored:
                claim(session, user_id, [name], now)
                return True
        rows = chunkrows.put_blobs(backend, {name: frame(data)})
        with backend.db.write(durable=False) as session:
            chunkrows.upsert(session, rows)
            claim(session, user_id, [name], time.time())
    return True
