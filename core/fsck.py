"""Consistency check: every chunk a manifest names must exist (and, with
``verify``, decode to bytes that match its hash); manifests must be
contiguous; quota counters must match the files. Damage is reported with the
files it affects, by user and path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from core import tree
from core.backend import Backend
from core.chunkcodec import decode_chunk
from core.db.models import Chunk, Manifest, ManifestChunk, Node, User, Version
from core.errors import ChunkCorrupt, ChunkMissing, StorageUnavailable
from core.ids import ChunkHash

BATCH = 500


@dataclass
class FsckReport:
    chunks_checked: int = 0
    missing: list[ChunkHash] = field(default_factory=list)
    corrupt: list[ChunkHash] = field(default_factory=list)
    bad_manifests: list[int] = field(default_factory=list)
    affected_files: list[str] = field(default_factory=list)
    quota_mismatches: list[str] = field(default_factory=list)

    @property
    def damaged(self) -> bool:
        return bool(self.missing or self.corrupt or self.bad_manifests or self.quota_mismatches)


def run_fsck(
    backend: Backend, *, verify: bool = False, progress: Callable[[int], None] | None = None
) -> FsckReport:
    report = FsckReport()
    with backend.db.read() as session:
        referenced = [
            ChunkHash(h)
            for h in session.execute(select(distinct(ManifestChunk.chunk_hash))).scalars()
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
    return report


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
            ManifestChunk.manifest_id,
            func.coalesce(func.sum(ManifestChunk.length), 0).label("total"),
        )
        .group_by(ManifestChunk.manifest_id)
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
                    select(ManifestChunk.manifest_id).where(
                        ManifestChunk.chunk_hash.in_(hashes[start : start + BATCH])
                    )
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
    sums: dict[int, int] = {
        owner: int(total)
        for owner, total in session.execute(
            select(Node.owner_id, func.coalesce(func.sum(Node.size), 0))
            .where(Node.is_folder.is_(False))
            .group_by(Node.owner_id)
        )
    }
    return [
        f"{user.name}: used_bytes is {user.used_bytes}, files hold {sums.get(user.id, 0)}"
        for user in session.execute(select(User)).scalars()
        if user.used_bytes != sums.get(user.id, 0)
    ]


def unreferenced_chunk_count(session: Session) -> int:
    used = select(ManifestChunk.manifest_id).where(ManifestChunk.chunk_hash == Chunk.hash).exists()
    return session.execute(select(func.count()).select_from(Chunk).where(~used)).scalar_one()
