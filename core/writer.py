"""Writing a file: stream → FastCDC chunks → store → one commit transaction.

The pipeline: the calling thread cuts chunks (and feeds the whole-file
SHA-256 to its own thread); a storer thread takes batches of ``BATCH``
chunks, hashes them on the worker pool, and under the shared collector
lock touches the ones already known, stores the others and registers them.
The last batch is registered in the same transaction as the commit. So a
small file costs two transactions, and memory is bounded by a few batches
(at most ``3 * BATCH`` chunks of ≤ 4 MiB) whatever the file size.

Nothing is visible until the commit; a failure anywhere before it leaves
the previous version intact, releases the quota reservation and leaves only
unreferenced chunks, which gc collects after the grace period.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Session

from core import chunkrows, journal, quota, tree
from core.backend import Backend
from core.chunking import chunk_hash, cut_stream
from core.db.models import Manifest, ManifestChunk, Node, UploadSession, Version
from core.errors import (
    DriveError,
    IncompleteUpload,
    NameTaken,
    NotAFile,
    StorageUnavailable,
    VersionConflict,
)
from core.ids import UserId, VersionId
from core.records import ByteSource, ChunkRef, NodeInfo

BATCH = 4


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


def _batches(stream: _GuardedStream, content: UploadedContent, hasher: ThreadPoolExecutor,
             whole: hashlib._Hash) -> Iterator[list[bytes]]:  # fmt: skip
    """Chunks of the stream in lists of BATCH; feeds the whole-file hash in order."""
    batch: list[bytes] = []
    for data in cut_stream(stream):  # type: ignore[arg-type]
        hasher.submit(whole.update, data)
        batch.append(data)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class Upload:
    """One write: an upload session that reserves quota as bytes arrive."""

    def __init__(self, backend: Backend, target: WriteTarget) -> None:
        self.backend = backend
        self.target = target
        self.id = str(uuid.uuid4())
        self.opened = False
        self.old_size = 0
        self.reserved = 0
        self.content = UploadedContent()

    def run(self, stream: ByteSource, expected_size: int | None) -> NodeInfo:
        whole = hashlib.sha256()
        guarded = _GuardedStream(stream, expected_size)
        with (
            ThreadPoolExecutor(1, thread_name_prefix="sha") as hasher,
            ThreadPoolExecutor(1, thread_name_prefix="storer") as storer,
        ):
            batches = _batches(guarded, self.content, hasher, whole)
            current = next(batches, [])
            in_flight: Future[NodeInfo | None] | None = None
            for following in batches:
                if in_flight is not None:
                    in_flight.result()
                in_flight = storer.submit(self._store, current, False)
                current = following
            if in_flight is not None:
                in_flight.result()
        self.content.sha256 = whole.hexdigest()
        if (
            expected_size is not None
            and self.content.size + sum(map(len, current)) != expected_size
        ):
            got = self.content.size + sum(map(len, current))
            raise IncompleteUpload(f"the upload ended after {got} of {expected_size} bytes")
        return self._store(current, True)  # type: ignore[return-value]

    def _store(self, batch: list[bytes], last: bool) -> NodeInfo | None:
        """Store one batch; the last one commits the upload in its final transaction."""
        backend = self.backend
        hashes = list(backend.workers.map(chunk_hash, batch))
        offset = self.content.size
        for key, data in zip(hashes, batch, strict=True):
            self.content.refs.append(ChunkRef(offset=offset, length=len(data), hash=key))
            offset += len(data)
        self.content.size = offset
        with backend.lock.shared():
            now = time.time()
            with backend.db.write() as session:
                if not self.opened:
                    self._open(session, now)
                self._reserve(session, offset, now)
                present = chunkrows.touch(session, hashes, now)
            missing = {k: d for k, d in zip(hashes, batch, strict=True) if k not in present}
            rows = chunkrows.put_blobs(backend, missing)
            with backend.db.write() as session:
                chunkrows.upsert(session, rows)
                if last:
                    return self._commit(session)
        return None

    def _open(self, session: Session, now: float) -> None:
        """Check the target (fail before storing anything) and start the session."""
        parent, name = tree.resolve_parent(session, self.target.user_id, self.target.path)
        existing = tree.live_child(session, parent.id, name)
        _check_base(existing, self.target)
        self.old_size = existing.size if existing is not None else 0
        session.execute(
            insert(UploadSession).values(
                id=self.id, user_id=self.target.user_id, reserved_bytes=0,
                started_at=now, heartbeat_at=now,
            )
        )  # fmt: skip
        self.opened = True

    def _reserve(self, session: Session, size: int, now: float) -> None:
        need = size - self.old_size - self.reserved
        if need > 0:
            quota.reserve(session, self.target.user_id, need)
            self.reserved += need
        session.execute(
            update(UploadSession)
            .where(UploadSession.id == self.id)
            .values(reserved_bytes=self.reserved, heartbeat_at=now)
        )

    def _commit(self, session: Session) -> NodeInfo:
        """Make the upload visible: compare-and-set on the base, version, quota, journal."""
        target = self.target
        journal.lock_user(session, target.user_id)
        parent, name = tree.resolve_parent(session, target.user_id, target.path)
        node = tree.live_child(session, parent.id, name)
        _check_base(node, target)
        old_size = node.size if node is not None else 0
        kind = journal.UPDATE
        if node is None:
            node = new_node(session, parent, name, is_folder=False, mtime_ns=target.mtime_ns)
            kind = journal.CREATE
        manifest_id = write_manifest(session, self.content)
        add_version(
            session, node, manifest_id, self.content.size,
            author_id=target.user_id, origin=target.origin, mtime_ns=target.mtime_ns,
        )  # fmt: skip
        ended = session.execute(delete(UploadSession).where(UploadSession.id == self.id))
        if ended.rowcount != 1:  # type: ignore[attr-defined]
            raise IncompleteUpload("the upload was idle too long and expired; send it again")
        quota.charge(session, target.user_id, self.content.size - old_size, released=self.reserved)
        journal.append(session, node, kind)
        return tree.info(session, node.id)

    def abort(self) -> None:
        """Release the reservation and end the session (best effort: gc cleans up otherwise)."""
        if not self.opened:
            return
        try:
            with self.backend.db.write() as session:
                quota.release(session, self.target.user_id, self.reserved)
                session.execute(delete(UploadSession).where(UploadSession.id == self.id))
        except DriveError:
            pass


def write_manifest(session: Session, content: UploadedContent) -> int:
    """Insert an immutable manifest for ``content``; the chunks' rows must exist (FK)."""
    manifest_id = session.execute(
        insert(Manifest)
        .values(size=content.size, sha256=content.sha256, chunk_count=len(content.refs),
                created_at=time.time())
        .returning(Manifest.id)
    ).scalar_one()  # fmt: skip
    if content.refs:
        session.execute(
            insert(ManifestChunk),
            [
                {"manifest_id": manifest_id, "idx": idx, "offset": ref.offset,
                 "length": ref.length, "chunk_hash": ref.hash}
                for idx, ref in enumerate(content.refs)
            ],
        )  # fmt: skip
    return int(manifest_id)


def add_version(
    session: Session,
    node: Node,
    manifest_id: int,
    size: int,
    *,
    author_id: int,
    origin: str,
    mtime_ns: int | None,
) -> VersionId:
    """Make ``manifest_id`` the node's new current version (no quota, no journal)."""
    number = session.execute(
        select(func.coalesce(func.max(Version.number), 0)).where(Version.node_id == node.id)
    ).scalar_one()
    mtime = mtime_ns if mtime_ns is not None else time.time_ns()
    version_id = session.execute(
        insert(Version)
        .values(node_id=node.id, number=number + 1, manifest_id=manifest_id,
                author_id=author_id, origin=origin, mtime_ns=mtime, created_at=time.time())
        .returning(Version.id)
    ).scalar_one()  # fmt: skip
    node.current_version_id = version_id
    node.size = size
    node.mtime_ns = mtime
    session.flush()
    return VersionId(version_id)


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


def write_stream(
    backend: Backend, target: WriteTarget, stream: ByteSource, expected_size: int | None = None
) -> NodeInfo:
    """Store ``stream`` as the new content of ``target.path`` (all or nothing)."""
    upload = Upload(backend, target)
    try:
        return upload.run(stream, expected_size)
    except SQLIntegrityError as exc:
        upload.abort()
        # Only reachable if gc removed a chunk row this upload relied on.
        raise StorageUnavailable(f"the upload lost a chunk to gc, retry: {exc.orig}") from None
    except BaseException:
        upload.abort()
        raise
