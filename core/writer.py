"""Writing a file: stream → FastCDC chunks → store → one commit transaction.

Memory stays bounded: chunks travel in batches of ``BATCH`` (≤ 4 MiB each),
so a 10 GiB upload holds a few tens of MiB at most. Nothing is visible until
the commit; a failure anywhere before it leaves the previous version intact,
releases the quota reservation and leaves only unreferenced chunks, which gc
collects after the grace period.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Session

from core import journal, quota, tree
from core.backend import Backend
from core.chunking import chunk_hash, cut_stream
from core.chunkrows import store_chunks
from core.db.models import Manifest, ManifestChunk, Node, UploadSession, Version
from core.errors import (
    DriveError,
    IncompleteUpload,
    NameTaken,
    NotAFile,
    StorageUnavailable,
    VersionConflict,
)
from core.ids import ChunkHash, UserId, VersionId
from core.records import ByteSource, ChunkRef, NodeInfo

BATCH = 8


@dataclass(frozen=True)
class WriteTarget:
    """Where a write goes and what it must find there.

    ``base_version_id``: commit only if this is still the current version
    (compare-and-set). ``create_only``: commit only if no file exists yet.
    """

    user_id: UserId
    path: str
    base_version_id: VersionId | None = None
    create_only: bool = False
    mtime_ns: int | None = None
    origin: str = "api"


@dataclass
class UploadedContent:
    refs: list[ChunkRef] = field(default_factory=list)
    size: int = 0
    sha256: str = ""
    stored_bytes: int = 0


class _GuardedStream:
    """Reads at most ``limit`` bytes; a broken source becomes IncompleteUpload."""

    def __init__(self, source: ByteSource, limit: int | None) -> None:
        self.source = source
        self.remaining = limit

    def readinto(self, buffer: memoryview) -> int:
        want = len(buffer) if self.remaining is None else min(len(buffer), self.remaining)
        if want == 0:
            return 0
        try:
            data = self.source.read(want)
        except DriveError:
            raise
        except Exception as exc:
            raise IncompleteUpload(f"the upload stream broke: {exc}") from exc
        n = len(data)
        buffer[:n] = data
        if self.remaining is not None:
            self.remaining -= n
        return n


def check_target(backend: Backend, target: WriteTarget) -> int:
    """Fail early (before reading a byte) when the write cannot commit; return the old size."""
    with backend.db.read() as session:
        parent, name = tree.resolve_parent(session, target.user_id, target.path)
        existing = tree.live_child(session, parent.id, name)
        _check_base(existing, target)
        return existing.size if existing is not None else 0


def _check_base(existing: Node | None, target: WriteTarget) -> None:
    if existing is not None and existing.is_folder:
        raise NotAFile(f"a folder exists at {target.path}")
    current = existing.current_version_id if existing is not None else None
    if target.create_only and existing is not None:
        raise VersionConflict(f"{target.path} already exists", current)
    if target.base_version_id is not None and current != target.base_version_id:
        raise VersionConflict(
            f"{target.path} changed: base version {target.base_version_id}, current {current}",
            current,
        )


class Upload:
    """One upload session: reserves quota as bytes arrive and stores chunks."""

    def __init__(self, backend: Backend, user_id: UserId, old_size: int) -> None:
        self.backend = backend
        self.user_id = user_id
        self.old_size = old_size
        self.reserved = 0
        self.id = str(uuid.uuid4())
        now = time.time()
        with backend.db.write() as session:
            session.add(
                UploadSession(
                    id=self.id, user_id=user_id, reserved_bytes=0, started_at=now, heartbeat_at=now
                )
            )

    def _reserve_through(self, size: int) -> Callable[[Session], None]:
        def reserve(session: Session) -> None:
            need = size - self.old_size - self.reserved
            if need > 0:
                quota.reserve(session, self.user_id, need)
                self.reserved += need
            session.execute(
                update(UploadSession)
                .where(UploadSession.id == self.id)
                .values(reserved_bytes=self.reserved, heartbeat_at=time.time())
            )

        return reserve

    def consume(self, stream: ByteSource, expected_size: int | None) -> UploadedContent:
        """Chunk and store the whole stream; return the manifest it makes."""
        content = UploadedContent()
        whole = hashlib.sha256()
        # The whole-file hash runs in its own thread, in order, beside the chunking.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha") as hasher:
            batch: list[bytes] = []
            for data in cut_stream(_GuardedStream(stream, expected_size)):  # type: ignore[arg-type]
                hasher.submit(whole.update, data)
                batch.append(data)
                if len(batch) == BATCH:
                    self._store_batch(batch, content)
                    batch = []
            if batch:
                self._store_batch(batch, content)
        content.sha256 = whole.hexdigest()
        if expected_size is not None and content.size != expected_size:
            raise IncompleteUpload(
                f"the upload ended after {content.size} of {expected_size} bytes"
            )
        return content

    def _store_batch(self, batch: list[bytes], content: UploadedContent) -> None:
        hashes = list(self.backend.workers.map(chunk_hash, batch))
        offset = content.size
        for key, data in zip(hashes, batch, strict=False):
            content.refs.append(ChunkRef(offset=offset, length=len(data), hash=key))
            offset += len(data)
        unique: dict[ChunkHash, bytes] = dict(zip(hashes, batch, strict=False))
        content.stored_bytes += store_chunks(self.backend, unique, self._reserve_through(offset))
        content.size = offset

    def abort(self) -> None:
        """Release the reservation and end the session (best effort: gc cleans up otherwise)."""
        try:
            with self.backend.db.write() as session:
                quota.release(session, self.user_id, self.reserved)
                session.execute(delete(UploadSession).where(UploadSession.id == self.id))
        except DriveError:
            pass


def write_manifest(session: Session, content: UploadedContent) -> int:
    """Insert an immutable manifest for ``content``; the chunks' FK rows must exist."""
    manifest = Manifest(
        size=content.size,
        sha256=content.sha256,
        chunk_count=len(content.refs),
        created_at=time.time(),
    )
    session.add(manifest)
    session.flush()
    if content.refs:
        session.execute(
            insert(ManifestChunk),
            [
                {
                    "manifest_id": manifest.id,
                    "idx": idx,
                    "offset": ref.offset,
                    "length": ref.length,
                    "chunk_hash": ref.hash,
                }
                for idx, ref in enumerate(content.refs)
            ],
        )
    return manifest.id


def add_version(
    session: Session,
    node: Node,
    manifest_id: int,
    size: int,
    *,
    author_id: int,
    origin: str,
    mtime_ns: int | None,
) -> Version:
    """Make ``manifest_id`` the node's new current version (no quota, no journal)."""
    number = session.execute(
        select(func.coalesce(func.max(Version.number), 0)).where(Version.node_id == node.id)
    ).scalar_one()
    mtime = mtime_ns if mtime_ns is not None else time.time_ns()
    version = Version(
        node_id=node.id,
        number=number + 1,
        manifest_id=manifest_id,
        author_id=author_id,
        origin=origin,
        mtime_ns=mtime,
        created_at=time.time(),
    )
    session.add(version)
    session.flush()
    node.current_version_id = version.id
    node.size = size
    node.mtime_ns = mtime
    return version


def new_node(
    session: Session, parent: Node, name: str, *, is_folder: bool, mtime_ns: int | None
) -> Node:
    node = Node(
        owner_id=parent.owner_id,
        parent_id=parent.id,
        name=name,
        is_folder=is_folder,
        size=0,
        mtime_ns=mtime_ns if mtime_ns is not None else time.time_ns(),
        created_at=time.time(),
    )
    session.add(node)
    try:
        with session.begin_nested():
            session.flush()
    except SQLIntegrityError:
        raise NameTaken(f"{name!r} already exists in that folder") from None
    return node


def commit(
    backend: Backend, target: WriteTarget, content: UploadedContent, upload: Upload
) -> NodeInfo:
    """The one transaction that makes an upload visible (compare-and-set on the base)."""
    try:
        with backend.db.write() as session:
            journal.lock_user(session, target.user_id)
            parent, name = tree.resolve_parent(session, target.user_id, target.path)
            node = tree.live_child(session, parent.id, name)
            _check_base(node, target)
            old_size = node.size if node is not None else 0
            kind = journal.UPDATE
            if node is None:
                node = new_node(session, parent, name, is_folder=False, mtime_ns=target.mtime_ns)
                kind = journal.CREATE
            manifest_id = write_manifest(session, content)
            add_version(
                session,
                node,
                manifest_id,
                content.size,
                author_id=target.user_id,
                origin=target.origin,
                mtime_ns=target.mtime_ns,
            )
            ended = session.execute(delete(UploadSession).where(UploadSession.id == upload.id))
            if ended.rowcount != 1:  # type: ignore[attr-defined]
                raise IncompleteUpload("the upload was idle too long and expired; send it again")
            quota.charge(session, target.user_id, content.size - old_size, released=upload.reserved)
            journal.append(session, node, kind)
            session.flush()
            return tree.info(session, node.id)
    except SQLIntegrityError as exc:
        # Only reachable if gc removed a chunk row this upload relied on.
        raise StorageUnavailable(f"the upload lost a chunk to gc, retry: {exc.orig}") from None


def write_stream(
    backend: Backend, target: WriteTarget, stream: ByteSource, expected_size: int | None = None
) -> NodeInfo:
    """Store ``stream`` as the new content of ``target.path`` (all or nothing)."""
    old_size = check_target(backend, target)
    upload = Upload(backend, target.user_id, old_size)
    committed = False
    try:
        content = upload.consume(stream, expected_size)
        result = commit(backend, target, content, upload)
        committed = True
        return result
    finally:
        if not committed:
            upload.abort()
