"""Consistency check: every chunk a manifest names must exist (and, with
``verify``, decode to bytes that match its hash); manifests must be
contiguous; quota counters must match the files. Damage is reported with the
files it affects, by user and path.

Whole-file SHA-256 sums are known when cheap (an API commit may leave one
NULL, see ``core.manifestwrite``): fsck counts the unknown ones; ``verify``
reads every manifest's content through, checks the sums that are known and
fills in the unknown ones.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy import distinct, func, select, update
from sqlalchemy.orm import Session

from core import properties, segments, tree
from core.backend import Backend
from core.chunkcodec import decode_chunk
from core.db.models import (
    Manifest,
    ManifestSegment,
    Node,
    SegmentChunk,
    User,
    Version,
)
from core.errors import ChunkCorrupt, ChunkMissing, StorageUnavailable
from core.ids import ChunkHash

BATCH = 500
READ_AHEAD = 8  # chunks read in parallel while a manifest's content is hashed


@dataclass
class FsckReport:
    chunks_checked: int = 0
    missing: list[ChunkHash] = field(default_factory=list)
    corrupt: list[ChunkHash] = field(default_factory=list)
    bad_manifests: list[int] = field(default_factory=list)
    affected_files: list[str] = field(default_factory=list)
    quota_mismatches: list[str] = field(default_factory=list)
    sums_unknown: int = 0  # manifests without a whole-file SHA-256 (after filling in)
    sums_filled: int = 0  # unknown sums ``verify`` computed and stored
    bad_sums: list[int] = field(default_factory=list)  # manifests whose content has another sum

    @property
    def damaged(self) -> bool:
        return bool(
            self.missing
            or self.corrupt
            or self.bad_manifests
            or self.quota_mismatches
            or self.bad_sums
        )


def run_fsck(
    backend: Backend, *, verify: bool = False, progress: Callable[[int], None] | None = None
) -> FsckReport:
    report = FsckReport()
    with backend.db.read() as session:
        referenced = [
            ChunkHash(h)
            for h in session.execute(select(distinct(SegmentChunk.chunk_hash))).scalars()
        ]
        report.bad_manifests = _bad_manifests(session)
    for start in range(0, len(referenced), BATCH):
        part = referenced[start : start + BATCH]
        present = backend.store.has_many(part)
        report.missing.extend(key for key in part if key not in present)
        if verify:
            report.corrupt.extend(_corrupt(backend, [key for key in part if key in present]))
        report.chunks_checked += len(part)
        if progress is not None:
            progress(len(part))
    with backend.db.read() as session:
        report.affected_files = _files_using(
            session, set(report.missing + report.corrupt), set(report.bad_manifests)
        )
        report.quota_mismatches = _quota_mismatches(session)
    if verify:
        unreadable = set(report.missing + report.corrupt)
        report.bad_sums, report.sums_filled = _check_sums(backend, unreadable)
        with backend.db.read() as session:
            report.affected_files += _files_using(session, set(), set(report.bad_sums))
    with backend.db.read() as session:
        report.sums_unknown = session.execute(
            select(func.count()).select_from(Manifest).where(Manifest.sha256.is_(None))
        ).scalar_one()
    return report


def _check_sums(backend: Backend, unreadable: set[ChunkHash]) -> tuple[list[int], int]:
    """Hash every manifest's content: (manifests whose known sum differs, sums filled in).
    Manifests naming an unreadable chunk are skipped (already reported)."""
    bad: list[int] = []
    filled = 0
    last = 0
    while True:
        with backend.db.read() as session:
            batch = session.execute(
                select(Manifest.id, Manifest.sha256)
                .where(Manifest.id > last)
                .order_by(Manifest.id)
                .limit(BATCH)
            ).all()
        if not batch:
            return bad, filled
        for manifest_id, known in batch:
            last = manifest_id
            with backend.db.read() as session:
                refs = [(ref.hash, ref.length) for ref in segments.entries(session, manifest_id)]
            if any(key in unreadable for key, _ in refs):
                continue
            try:
                whole = _content_sha256(backend, refs)
            except (ChunkCorrupt, ChunkMissing, StorageUnavailable):
                continue  # gone or damaged since the chunk pass: that pass's report stands
            if known is None:
                with backend.db.write() as session:
                    done = session.execute(
                        update(Manifest)
                        .where(Manifest.id == manifest_id, Manifest.sha256.is_(None))
                        .values(sha256=whole)
                    )
                    filled += done.rowcount  # type: ignore[attr-defined]
            elif known != whole:
                bad.append(manifest_id)


def _content_sha256(backend: Backend, refs: list[tuple[ChunkHash, int]]) -> str:
    """SHA-256 of a manifest's content, reading up to READ_AHEAD chunks ahead in parallel
    (every chunk is verified against its name on the way)."""
    whole = hashlib.sha256()

    def fetch(ref: tuple[ChunkHash, int]) -> bytes:
        key, length = ref
        data = decode_chunk(backend.store.get(key), key)
        if len(data) != length:
            raise ChunkCorrupt(f"chunk {key} has the wrong length")
        return data

    ahead: deque[Future[bytes]] = deque()
    try:
        for ref in refs:
            ahead.append(backend.workers.submit(fetch, ref))
            if len(ahead) >= READ_AHEAD:
                whole.update(ahead.popleft().result())
        while ahead:
            whole.update(ahead.popleft().result())
    finally:
        for future in ahead:
            future.cancel()
    return whole.hexdigest()


def _corrupt(backend: Backend, keys: list[ChunkHash]) -> list[ChunkHash]:
    def check(key: ChunkHash) -> ChunkHash | None:
        try:
            decode_chunk(backend.store.get(key), key)
        except (ChunkCorrupt, ChunkMissing):
            return key
        except StorageUnavailable:
            return key
        return None

    return [key for key in backend.workers.map(check, keys) if key is not None]


def _bad_manifests(session: Session) -> list[int]:
    """Manifests whose chunks do not add up to their size."""
    totals = (
        select(
            ManifestSegment.manifest_id,
            func.coalesce(func.sum(SegmentChunk.length), 0).label("total"),
        )
        .join(SegmentChunk, SegmentChunk.segment_id == ManifestSegment.segment_id)
        .group_by(ManifestSegment.manifest_id)
        .subquery()
    )
    rows = session.execute(
        select(Manifest.id)
        .outerjoin(totals, totals.c.manifest_id == Manifest.id)
        .where(func.coalesce(totals.c.total, 0) != Manifest.size)
    ).scalars()
    return list(rows)


def _files_using(session: Session, chunks: set[ChunkHash], manifests: set[int]) -> list[str]:
    if chunks:
        hashes = list(chunks)
        for start in range(0, len(hashes), BATCH):
            manifests.update(
                session.execute(
                    select(ManifestSegment.manifest_id)
                    .join(SegmentChunk, SegmentChunk.segment_id == ManifestSegment.segment_id)
                    .where(SegmentChunk.chunk_hash.in_(hashes[start : start + BATCH]))
                ).scalars()
            )
    if not manifests:
        return []
    rows = session.execute(
        select(User.name, Version.node_id, Version.number)
        .join(Node, Node.id == Version.node_id)
        .join(User, User.id == Node.owner_id)
        .where(Version.manifest_id.in_(list(manifests)))
        .order_by(User.name, Version.node_id, Version.number)
    ).all()
    return [
        f"{user}:{tree.path_of(session, node_id)} (version {number})"
        for user, node_id, number in rows
    ]


def _quota_mismatches(session: Session) -> list[str]:
    """Users whose ``used_bytes`` is not what their files and dead properties hold."""
    sums: dict[int, int] = {
        owner: int(total)
        for owner, total in session.execute(
            select(Node.owner_id, func.coalesce(func.sum(Node.size), 0))
            .where(Node.is_folder.is_(False))
            .group_by(Node.owner_id)
        )
    }
    for owner, held in properties.bytes_by_owner(session).items():
        sums[owner] = sums.get(owner, 0) + held
    return [
        f"{user.name}: used_bytes is {user.used_bytes}, files and properties hold "
        f"{sums.get(user.id, 0)}"
        for user in session.execute(select(User)).scalars()
        if user.used_bytes != sums.get(user.id, 0)
    ]
