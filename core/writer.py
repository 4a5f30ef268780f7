"""Writing a file: stream → FastCDC chunks → store → one commit transaction.

The pipeline: the calling thread cuts chunks into batches of ``BATCH``
(and feeds the whole-file SHA-256 to a thread of its own); two storer
threads take batches, hash their chunks on the worker pool, and under the
shared collector lock touch the ones already known, store the others and
register them. The last batch is registered in the same transaction as the
commit, so a small file costs two transactions. Memory is bounded by
``IN_FLIGHT + 2`` batches (chunks ≤ 4 MiB) whatever the file size.

Nothing is visible until the commit; a failure anywhere before it leaves
the previous version intact, releases the quota reservation and leaves only
unreferenced chunks, which gc collects after the grace period.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
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
IN_FLIGHT = 3


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
        # Only real files and buffers get the zero-copy path: a readinto inherited
        # by a read()-only stream class may not call its read().
        self._source_readinto: Callable[[memoryview], int | None] | None = (
            source.readinto if isinstance(source, io.BufferedIOBase | io.FileIO) else None
        )

    def readinto(self, buffer: memoryview) -> int:
        want = len(buffer) if self.remaining is None else min(len(buffer), self.remaining)
        if want == 0:
            return 0
        try:
            if self._source_readinto is not None:  # files and BytesIO: no copy
                n = self._source_readinto(buffer[:want]) or 0
            else:
                data = self.source.read(want)
                n = len(data)
                buffer[:n] = data
        except DriveError:
            raise
        except Exception as exc:
            raise IncompleteUpload(f"the upload stream broke: {exc}") from exc
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


def _batches(stream: _GuardedStream) -> Iterator[list[bytes]]:
    """The stream's chunks in lists of BATCH."""
    batch: list[bytes] = []
    for data in cut_stream(stream):  # type: ignore[arg-type]
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
        self.whole = hashlib.sha256()
        self.cut_bytes = 0  # bytes handed to storers so far
        self._last_batch: list[bytes] = []
        self._reserving = threading.Lock()

    def run(self, stream: ByteSource, expected_size: int | None) -> NodeInfo:
        batches = _batches(_GuardedStream(stream, expected_size))
        current = next(batches, [])
        following = next(batches, None)
        if following is not None:
            self._store_middle(current, following, batches)
            current = self._last_batch
        size = self.cut_bytes + sum(map(len, current))
        if expected_size is not None and size != expected_size:
            raise IncompleteUpload(f"the upload ended after {size} of {expected_size} bytes")
        self._hash_whole(current)
        self.content.sha256 = self.whole.hexdigest()
        _, result = self._store(current, self.cut_bytes, last=True)
        assert result is not None
        return result

    def _store_middle(
        self, current: list[bytes], following: list[bytes] | None, rest: Iterator[list[bytes]]
    ) -> None:
        """Store every batch but the last; keep the last in ``_last_batch``.

        The calling thread cuts while up to ``IN_FLIGHT`` batches are stored by
        two storer threads; the whole-file hash runs on a thread of its own.
        Refs are appended in order as the oldest batch completes.
        """
        with self.backend.db.write() as session:
            self._open(session, time.time())
        in_flight: deque[Future[tuple[list[ChunkRef], NodeInfo | None]]] = deque()
        with (
            ThreadPoolExecutor(2, thread_name_prefix="storer") as storers,
            ThreadPoolExecutor(1, thread_name_prefix="sha") as hasher,
        ):
            try:
                while following is not None:
                    hasher.submit(self._hash_whole, current)
                    in_flight.append(storers.submit(self._store, current, self.cut_bytes, False))
                    self.cut_bytes += sum(map(len, current))
                    while len(in_flight) >= IN_FLIGHT:
                        self.content.refs.extend(in_flight.popleft().result()[0])
                    current, following = following, next(rest, None)
                while in_flight:
                    self.content.refs.extend(in_flight.popleft().result()[0])
            finally:
                for future in in_flight:
                    future.cancel()
        self._last_batch = current

    def _store(
        self, batch: list[bytes], start: int, last: bool
    ) -> tuple[list[ChunkRef], NodeInfo | None]:
        """Store one batch starting at offset ``start``; the last one also commits,
        in the transaction that registers its chunks."""
        backend = self.backend
        hashes = list(
            backend.workers.map(chunk_hash, batch) if len(batch) > 1 else map(chunk_hash, batch)
        )
        refs = []
        end = start
        for key, data in zip(hashes, batch, strict=True):
            refs.append(ChunkRef(offset=end, length=len(data), hash=key))
            end += len(data)
        with backend.lock.shared():
            now = time.time()
            with backend.db.write() as session:
                if not self.opened:
                    self._open(session, now)
                self._reserve(session, end, now)
                present = chunkrows.touch(session, hashes, now)
            missing = {k: d for k, d in zip(hashes, batch, strict=True) if k not in present}
            rows = chunkrows.put_blobs(backend, missing)
            with backend.db.write() as session:
                chunkrows.upsert(session, rows)
                if last:
                    self.content.refs.extend(refs)
                    self.content.size = end
                    return refs, self._commit(session)
        return refs, None

    def _hash_whole(self, batch: list[bytes]) -> None:
        for data in batch:
            self.whole.update(data)

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
        """Hold quota for the bytes through ``size`` beyond the old size (storers run
        two at a time, so the bookkeeping is locked)."""
        with self._reserving:
            need = size - self.old_size - self.reserved
            if need > 0:
                quota.reserve(session, self.target.user_id, need)
                self.reserved += need
            reserved = self.reserved
        session.execute(
            update(UploadSession)
            .where(UploadSession.id == self.id)
            .values(reserved_bytes=reserved, heartbeat_at=now)
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
        else:
            _drop_lone_empty_version(session, node)
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


def _drop_lone_empty_version(session: Session, node: Node) -> None:
    """A file whose only version is empty gets its first real content as version 1.

    Windows Explorer and office apps create a file with a 0-byte PUT (or a
    LOCK on an unmapped URL) and then PUT the content: that must leave one
    version with content, not an empty one in the history.
    """
    if node.size != 0:
        return
    versions = session.execute(
        select(Version.id, Version.manifest_id).where(Version.node_id == node.id).limit(2)
    ).all()
    if len(versions) == 1:
        ((version_id, manifest_id),) = versions
        node.current_version_id = None
        session.flush()
        session.execute(delete(Version).where(Version.id == version_id))
        session.execute(
            delete(Manifest).where(
                Manifest.id == manifest_id,
                ~select(Version.id).where(Version.manifest_id == manifest_id).exists(),
            )
        )


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
