"""Garbage collection: expired trash, version retention, dead uploads, then chunks.

Safe while uploads run. A chunk goes only if no manifest names it, nobody
touched it within the grace period, and no live upload session started
before it was last touched; rows are deleted (under the exclusive collector
lock) before their blobs, so a crash leaves at worst an orphan blob, which
a later run sweeps. ``dry_run`` reports the same numbers and changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core import access, quota, segments, trash, versions
from core.backend import Backend
from core.db.models import Chunk, ChunkClaim, Manifest, SegmentChunk, UploadSession, Version
from core.ids import ChunkHash
from core.treeops import delete_unused_manifests

log = logging.getLogger(__name__)
BATCH = 500


@dataclass
class GcReport:
    trash_entries: int = 0
    versions: int = 0
    dead_uploads: int = 0
    manifests: int = 0
    chunks: int = 0
    chunk_bytes: int = 0
    orphan_blobs: int = 0
    dry_run: bool = False


def _cutoff(session: Session, grace: float, upload_timeout: float, now: float) -> float:
    """Chunks last seen at or after this instant are protected."""
    oldest_live = session.execute(
        select(func.min(UploadSession.started_at)).where(
            UploadSession.heartbeat_at >= now - upload_timeout
        )
    ).scalar_one_or_none()
    cutoff = now - grace
    return min(cutoff, oldest_live) if oldest_live is not None else cutoff


def _unreferenced(cutoff: float) -> object:
    used = select(SegmentChunk.segment_id).where(SegmentChunk.chunk_hash == Chunk.hash).exists()
    return (~used) & (Chunk.last_seen < cutoff)


def _batches(items: list[ChunkHash]) -> Iterator[list[ChunkHash]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def run_gc(backend: Backend, *, dry_run: bool = False, now: float | None = None) -> GcReport:
    settings = backend.settings
    now = time.time() if now is None else now
    report = GcReport(dry_run=dry_run)
    db = backend.db

    with db.read() as session:
        expired = trash.expired_entries(session, settings.trash_days)
    report.trash_entries = len(expired)
    if not dry_run:
        for user_id, entry_id in expired:
            with db.write() as session:
                trash.purge(session, access.principal(user_id), entry_id)

    with db.write() as session:
        report.versions = versions.prune(session, settings.retention, dry_run=dry_run, now=now)
        dead = (
            session.execute(
                select(UploadSession).where(
                    UploadSession.heartbeat_at < now - settings.upload_timeout_seconds
                )
            )
            .scalars()
            .all()
        )
        report.dead_uploads = len(dead)
        orphan_manifests = set(
            session.execute(
                select(Manifest.id).where(
                    ~select(Version.id).where(Version.manifest_id == Manifest.id).exists()
                )
            ).scalars()
        )
        report.manifests = len(orphan_manifests)
        if not dry_run:
            for upload in dead:
                quota.release(session, upload.user_id, upload.reserved_bytes)
                session.delete(upload)
            delete_unused_manifests(session, orphan_manifests)
            segments.delete_unused(session)  # strays: none are expected

    with db.read() as session:
        cutoff = _cutoff(session, settings.gc_grace_seconds, settings.upload_timeout_seconds, now)
        condition = _unreferenced(cutoff)
        garbage = session.execute(select(Chunk.hash, Chunk.stored_length).where(condition)).all()  # type: ignore[arg-type]
    if not dry_run:  # claims only bridge an upload and its commit (core.chunkaccess)
        with db.write() as session:
            session.execute(delete(ChunkClaim).where(ChunkClaim.claimed_at < cutoff))
    report.chunks = len(garbage)
    report.chunk_bytes = sum(length for _, length in garbage)
    if not dry_run:
        _collect_chunks(backend, [ChunkHash(h) for h, _ in garbage], cutoff)
    report.orphan_blobs = _sweep_orphans(backend, cutoff, dry_run)
    log.info("gc %s", report)
    return report


def _collect_chunks(backend: Backend, hashes: list[ChunkHash], cutoff: float) -> None:
    for part in _batches(hashes):
        with backend.lock.exclusive():
            with backend.db.write() as session:
                gone = [
                    ChunkHash(h)
                    for h in session.execute(
                        delete(Chunk)
                        .where(Chunk.hash.in_(part), _unreferenced(cutoff))  # type: ignore[arg-type]
                        .returning(Chunk.hash)
                    ).scalars()
                ]
            backend.store.delete_many(gone)


def _sweep_orphans(backend: Backend, cutoff: float, dry_run: bool) -> int:
    """Blobs no row knows (left by a crash between a put and its row), older than the cutoff."""
    old_blobs = [key for key, stamp in backend.store.list_all() if stamp < cutoff]
    swept = 0
    for part in _batches(old_blobs):
        with backend.lock.exclusive():
            with backend.db.read() as session:
                known = set(
                    session.execute(select(Chunk.hash).where(Chunk.hash.in_(part))).scalars()
                )
            orphans = [key for key in part if key not in known]
            swept += len(orphans)
            if orphans and not dry_run:
                backend.store.delete_many(orphans)
    return swept
