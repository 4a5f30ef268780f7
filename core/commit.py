"""The one commit step every content write ends with, and the checks it shares.

Every write ends in :func:`apply_write`, in the caller's transaction: row-lock
the user, find the target, compare-and-set against the base version, refuse
it under a WebDAV lock it does not name (when asked to), create the node if
new, insert the manifest and the version, charge the quota and append to the
change journal. A manifest of chunks uploaded beforehand
(``core.manifestwrite``) needs nothing else: it commits in one transaction.
A streamed write (``core.writer``) spans many transactions, so it is a
:class:`PendingWrite`:

- ``open`` checks the target early (so a doomed upload fails before its
  bytes are stored) and opens the upload session that holds the quota
  reservation and protects the write's chunks from gc;
- ``reserve`` grows the reservation as bytes arrive;
- ``commit`` ends the upload session and makes the write visible
  (``apply_write``, the reservation counted);
- ``abort`` releases the reservation when anything fails before the commit.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Session

from cdc.chunking import ChunkRef
from core import access, journal, lockcheck, nodeids, quota, segments, tree
from core.backend import Backend
from core.db.models import Manifest, Node, UploadSession, Version
from core.errors import (
    DriveError,
    FileExists,
    IncompleteUpload,
    InvalidRequest,
    NameTaken,
    NotAFile,
    QuotaExceeded,
    VersionConflict,
)
from core.ids import NodeId, UserId, VersionId
from core.records import NodeInfo
from core.refs import NodeRef


@dataclass(frozen=True)
class WriteTarget:
    """Where a write goes and what it must find there.

    The file is named by exactly one of: ``path``; ``node_id`` (an existing
    file); ``parent_id`` with ``name`` (a file in that folder, new or not).
    ``base_version_id``: commit only if this is still the current version
    (compare-and-set). ``create_only``: commit only if no file exists yet.
    ``check_locks``: refuse (Locked) when a WebDAV lock other than
    ``lock_token`` covers the file, or the folder of a new one (the WebDAV
    face checks its locks itself, from the request's If header).
    ``new_id`` (with ``parent_id`` and ``name`` only): create the file with this
    reserved id (``core.nodeids``); implies ``create_only``, and a replay (the
    id names the user's live node already) raises ``nodeids.AlreadyCreated``.
    """

    user_id: UserId
    path: str | None = None
    node_id: NodeId | None = None
    parent_id: NodeId | None = None
    name: str | None = None
    base_version_id: VersionId | None = None
    create_only: bool = False
    mtime_ns: int | None = None
    origin: str = "api"
    check_locks: bool = False
    lock_token: str | None = None
    new_id: NodeId | None = None

    @property
    def ref(self) -> NodeRef:
        """The file the target names (a ``NodeRef``: the fields above, checked)."""
        if self.parent_id is None and self.name is not None:  # a name alone names nothing
            raise InvalidRequest("a write needs a path, a node id, or a folder id and a name")
        try:
            return NodeRef(self.path, self.node_id, self.parent_id, self.name)
        except InvalidRequest:
            raise InvalidRequest(
                "a write needs a path, a node id, or a folder id and a name"
            ) from None

    @property
    def label(self) -> str:
        """How messages name the target."""
        if self.path is not None:
            return self.path
        if self.node_id is not None:
            return f"node {self.node_id}"
        return repr(self.name)


@dataclass
class UploadedContent:
    """What a write stored: the manifest's chunks, the size and the whole-file
    SHA-256 (None when unknown: see ``core.manifestwrite``). ``reusable``: the
    stored segments the new manifest may share (None: those of the file's
    current version, looked up at the commit)."""

    refs: list[ChunkRef] = field(default_factory=list)
    size: int = 0
    sha256: str | None = None
    reusable: list[segments.StoredSegment] | None = None
    placed: list[segments.Placed] | None = None
    """The manifest laid out already (a splice, see ``core.manifestwrite``): ``refs``
    and ``reusable`` are not used."""


def locate(session: Session, target: WriteTarget) -> tuple[Node, str, Node | None]:
    """The folder the target is in, its (normalised) name and the live node there now."""
    if target.new_id is not None and (target.path is not None or target.node_id is not None):
        raise InvalidRequest("a new id goes with a folder id and a name only")
    return access.place_and_node(session, access.principal(target.user_id), target.ref)


def check_target(
    session: Session, target: WriteTarget, parent: Node, existing: Node | None
) -> None:
    """Kind, compare-and-set and (if asked) locks: raise if the write may not land here."""
    label = target.label
    if existing is not None and existing.is_folder:
        raise NotAFile(f"a folder exists at {label}")
    current = existing.current_version_id if existing is not None else None
    if (target.create_only or target.new_id is not None) and existing is not None:
        raise FileExists(f"{label} already exists", current, existing.id)
    if target.base_version_id is not None and current != target.base_version_id:
        raise VersionConflict(
            f"{label} changed: base version {target.base_version_id}, current {current}",
            current,
            existing.id if existing is not None else None,
        )
    if target.check_locks:
        written = existing if existing is not None else parent
        lockcheck.require_unlocked(session, target.user_id, written.id, token=target.lock_token)


RESERVE_AHEAD = 64 * 1024 * 1024
HEARTBEAT_SECONDS = 10.0


class PendingWrite:
    """One write on its way in: its upload session, quota reservation and commit."""

    def __init__(self, backend: Backend, target: WriteTarget) -> None:
        self.backend = backend
        self.target = target
        self.id = str(uuid.uuid4())
        self.opened = False
        self.old_size = 0
        self.reserved = 0
        self._heartbeat = 0.0
        self._reserving = threading.Lock()

    def open(self, session: Session, now: float, size: int | None = None) -> None:
        """Check the target (fail before storing anything) and start the session;
        with ``size``, reserve the quota for that many bytes in the same step."""
        if self.target.new_id is not None:
            nodeids.check(session, self.target.user_id, self.target.new_id)
        parent, _, existing = locate(session, self.target)
        check_target(session, self.target, parent, existing)
        self.old_size = existing.size if existing is not None else 0
        if size is not None and size > self.old_size:
            quota.reserve(session, self.target.user_id, size - self.old_size)
            self.reserved = size - self.old_size
        session.execute(
            insert(UploadSession).values(
                id=self.id, user_id=self.target.user_id, reserved_bytes=self.reserved,
                started_at=now, heartbeat_at=now,
            )
        )  # fmt: skip
        self._heartbeat = now
        self.opened = True

    def reserve(self, session: Session, size: int, now: float) -> None:
        """Hold quota for the bytes through ``size`` beyond the old size and keep the
        session alive (the streamed writer calls this for every batch, from two threads).

        Quota is taken ``RESERVE_AHEAD`` bytes beyond the need when that fits (exactly
        the need otherwise), and the heartbeat is written every ``HEARTBEAT_SECONDS``:
        most batches cost no statement here. The commit settles the reservation.
        The lock orders the session's updates as their values were computed.
        """
        with self._reserving:
            need = size - self.old_size - self.reserved
            if need <= 0 and now - self._heartbeat < HEARTBEAT_SECONDS:
                return
            reserved = self.reserved
            if need > 0:
                try:
                    quota.reserve(session, self.target.user_id, need + RESERVE_AHEAD, reclaim=False)
                    need += RESERVE_AHEAD
                except QuotaExceeded:
                    quota.reserve(session, self.target.user_id, need)
                reserved += need
            self._beat(session, now, reserved)
            self.reserved = reserved

    def heartbeat(self, now: float) -> None:
        """Tell the world this upload is alive (the streamed writer calls this every
        ``HEARTBEAT_SECONDS`` while bytes arrive, however slowly: see ``core.quota``);
        IncompleteUpload if it was ended as dead meanwhile. Only the heartbeat is
        written, in a transaction of its own: no lock is held while waiting for it
        (a storer may be inside ``reserve`` with the database's write lock)."""
        if not self.opened or now - self._heartbeat < HEARTBEAT_SECONDS:
            return
        with self.backend.db.write(durable=False) as session:
            alive = session.execute(
                update(UploadSession).where(UploadSession.id == self.id).values(heartbeat_at=now)
            )
        if alive.rowcount != 1:  # type: ignore[attr-defined]
            raise IncompleteUpload("the upload was idle too long and expired; send it again")
        self._heartbeat = now

    def _beat(self, session: Session, now: float, reserved: int) -> None:
        """Write the session's reservation and heartbeat; IncompleteUpload (the
        transaction then undoes any reservation made in it) if the session was ended
        as dead meanwhile."""
        alive = session.execute(
            update(UploadSession)
            .where(UploadSession.id == self.id)
            .values(reserved_bytes=reserved, heartbeat_at=now)
        )
        if alive.rowcount != 1:  # type: ignore[attr-defined]
            raise IncompleteUpload("the upload was idle too long and expired; send it again")
        self._heartbeat = now

    def commit(self, session: Session, content: UploadedContent) -> tuple[NodeInfo, bool]:
        """Make the write visible; return the file and whether it is new.

        The chunks' rows must exist (the manifest's foreign keys refuse others).
        """
        ended = session.execute(delete(UploadSession).where(UploadSession.id == self.id))
        if ended.rowcount != 1:  # type: ignore[attr-defined]
            raise IncompleteUpload("the upload was idle too long and expired; send it again")
        return apply_write(session, self.target, content, reserved=self.reserved)

    def abort(self) -> None:
        """End the session and release its reservation, unless gc or a reclaim ended it
        first (they released it then). Best effort: gc cleans up otherwise."""
        if not self.opened:
            return
        try:
            with self.backend.db.write(durable=False) as session:
                ended = session.execute(delete(UploadSession).where(UploadSession.id == self.id))
                if ended.rowcount == 1:  # type: ignore[attr-defined]  # else released already
                    quota.release(session, self.target.user_id, self.reserved)
        except DriveError:
            pass


def apply_write(
    session: Session,
    target: WriteTarget,
    content: UploadedContent,
    *,
    reserved: int,
    check_content: Callable[[], None] | None = None,
) -> tuple[NodeInfo, bool]:
    """Check the target and make ``content`` its new version in this transaction;
    return the file and whether it is new. The quota is charged for the change in
    size, ``reserved`` bytes of it held already; ``check_content`` runs once the
    target passed its checks, before anything is written."""
    journal.lock_user(session, target.user_id)
    if target.new_id is not None:
        nodeids.check(session, target.user_id, target.new_id)
    parent, name, node = locate(session, target)
    check_target(session, target, parent, node)
    if check_content is not None:
        check_content()
    old_size = node.size if node is not None else 0
    created = node is None
    if content.placed is None and content.reusable is None:
        content.reusable = []  # what the file's current version holds, if it has one
        if node is not None and node.current_version_id is not None:
            content.reusable = segments.of_version(session, node.current_version_id, node.id)
    if node is None:
        if target.new_id is not None:
            nodeids.consume(session, target.new_id)
        node = new_node(
            session, parent, name, is_folder=False, mtime_ns=target.mtime_ns,
            node_id=target.new_id,
        )  # fmt: skip
    else:
        _drop_lone_empty_version(session, node)
    manifest_id = write_manifest(session, content)
    number = 1 if created else next_number(session, node.id)
    add_version(
        session, node, manifest_id, content.size,
        author_id=target.user_id, origin=target.origin, mtime_ns=target.mtime_ns,
        number=number,
    )  # fmt: skip
    quota.charge(session, target.user_id, content.size - old_size, released=reserved)
    journal.append(session, node, journal.CREATE if created else journal.UPDATE)
    return tree.info(session, node.id), created


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
    placed = content.placed
    if placed is None:
        placed = segments.layout(content.refs, content.reusable or [])
    count, size = segments.totals(placed)
    assert size == content.size, "the layout holds the content's bytes"
    manifest_id = session.execute(
        insert(Manifest)
        .values(size=content.size, sha256=content.sha256, chunk_count=count,
                created_at=time.time())
        .returning(Manifest.id)
    ).scalar_one()  # fmt: skip
    segments.write(session, manifest_id, placed)
    return int(manifest_id)


def next_number(session: Session, node_id: int) -> int:
    """The number the node's next version gets."""
    number = session.execute(
        select(func.coalesce(func.max(Version.number), 0)).where(Version.node_id == node_id)
    ).scalar_one()
    return int(number) + 1


def add_version(
    session: Session,
    node: Node,
    manifest_id: int,
    size: int,
    *,
    author_id: int,
    origin: str,
    mtime_ns: int | None,
    number: int | None = None,
) -> VersionId:
    """Make ``manifest_id`` the node's new current version (no quota, no journal);
    ``number``: the version's number when the caller knows it (``next_number``)."""
    if number is None:
        number = next_number(session, node.id)
    mtime = mtime_ns if mtime_ns is not None else time.time_ns()
    version_id = session.execute(
        insert(Version)
        .values(node_id=node.id, number=number, manifest_id=manifest_id,
                author_id=author_id, origin=origin, mtime_ns=mtime, created_at=time.time())
        .returning(Version.id)
    ).scalar_one()  # fmt: skip
    node.current_version_id = version_id
    node.size = size
    node.mtime_ns = mtime
    session.flush()
    return VersionId(version_id)


def new_node(
    session: Session,
    parent: Node,
    name: str,
    *,
    is_folder: bool,
    mtime_ns: int | None,
    node_id: int | None = None,
) -> Node:
    """Insert a node (NameTaken if the name is live there). ``node_id``: an id the
    caller checked and consumed (``core.nodeids``); otherwise a fresh one (see ``core.nodeids``)."""
    node = Node(
        id=node_id if node_id is not None else nodeids.fresh_id(session),
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
