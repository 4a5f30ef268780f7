"""WebDAV lock records (the WebDAV face decides what a lock means; the core
keeps them in SQL so every server process sees the same locks).

A lock taken on a node of a user's tree remembers the node, and taking,
releasing or expiring it appends a ``lock`` row to the owner's change
journal (in the same transaction), so sync clients learn about locks from
the change feed. Expired locks are invisible to every read; they are
deleted (and journalled) by ``purge_expired``, which the server runs
periodically.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from sqlalchemy import BindParameter, ColumnElement, delete, func, or_, select, update
from sqlalchemy.orm import Session

from core import access, journal
from core.db.engine import Database
from core.db.models import DavLock, Node
from core.db.mutex import NamedMutex
from core.errors import InvalidRequest, LimitReached, NotFound
from core.ids import UserId


@dataclass
class LockRecord:
    token: str
    root: str
    principal: str
    scope: str
    type: str
    depth: str
    owner: str
    timeout: float
    expire: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _record(row: DavLock) -> LockRecord:
    return LockRecord(
        token=row.token, root=row.root, principal=row.principal, scope=row.scope,
        type=row.type, depth=row.depth, owner=row.owner, timeout=row.timeout, expire=row.expire,
    )  # fmt: skip


def unexpired(now: float | BindParameter[float] | None = None) -> ColumnElement[bool]:
    """The SQL condition of a lock that has not expired (``expire`` < 0: never) at
    ``now`` (default: the current time)."""
    return or_(DavLock.expire < 0, DavLock.expire >= (time.time() if now is None else now))


def _journal(session: Session, node_ids: Iterable[int | None]) -> None:
    """A ``lock`` change for each node whose lock state changed (if it still exists)."""
    for node_id in sorted({n for n in node_ids if n is not None}):
        node = session.get(Node, node_id)
        if node is not None:
            journal.append(session, node, journal.LOCK)


MAX_OWNER = 4096
"""Bytes of a lock's owner (clients send a name or a URL in it)."""
MAX_PER_PRINCIPAL = 1000
"""Unexpired locks one principal may hold (an office suite holds one per open file)."""


def create(
    session: Session, record: LockRecord, user_id: UserId | None = None, path: str | None = None
) -> None:
    """Store the lock; with ``user_id`` and ``path``, on the node found there (if any).
    InvalidRequest if its owner is over ``MAX_OWNER`` bytes, LimitReached if its
    principal holds ``MAX_PER_PRINCIPAL`` locks already."""
    if len(record.owner.encode("utf-8")) > MAX_OWNER:
        raise InvalidRequest(f"a lock's owner holds at most {MAX_OWNER} bytes")
    held = session.execute(
        select(func.count())
        .select_from(DavLock)
        .where(DavLock.principal == record.principal, unexpired())
    ).scalar_one()
    if held >= MAX_PER_PRINCIPAL:
        raise LimitReached(f"you hold {held} locks, the most one user may: unlock some first")
    node_id = None
    if user_id is not None and path is not None:
        try:  # a lock announces a write: only who may write the node takes one
            node = access.resolve(session, access.principal(user_id), path, access.Action.WRITE)
            node_id = node.id
        except NotFound:
            node_id = None
    session.add(DavLock(**record.as_dict(), node_id=node_id))
    session.flush()
    _journal(session, [node_id])


def get(session: Session, token: str) -> LockRecord | None:
    row = session.execute(
        select(DavLock).where(DavLock.token == token, unexpired())
    ).scalar_one_or_none()
    return _record(row) if row is not None else None


def refresh(session: Session, token: str, timeout: float) -> LockRecord | None:
    session.execute(
        update(DavLock)
        .where(DavLock.token == token)
        .values(timeout=timeout, expire=time.time() + timeout)
    )
    return get(session, token)


def remove(session: Session, token: str) -> bool:
    gone = session.execute(
        delete(DavLock).where(DavLock.token == token).returning(DavLock.node_id)
    ).all()
    _journal(session, [node_id for (node_id,) in gone])
    return bool(gone)


def at(
    session: Session, root: str, *, include_root: bool, include_children: bool
) -> list[LockRecord]:
    """Live locks whose root is ``root`` and/or below it."""
    wanted = []
    if include_root:
        wanted.append(DavLock.root == root)
    if include_children:
        wanted.append(DavLock.root.startswith(root.rstrip("/") + "/", autoescape=True))
    rows = session.execute(
        select(DavLock).where(or_(*wanted), unexpired()).order_by(DavLock.root)
    ).scalars()
    return [_record(row) for row in rows]


def all_live(session: Session) -> list[LockRecord]:
    rows = session.execute(select(DavLock).where(unexpired()).order_by(DavLock.root)).scalars()
    return [_record(row) for row in rows]


def purge_expired(session: Session) -> int:
    now = time.time()
    gone = session.execute(
        delete(DavLock).where(DavLock.expire >= 0, DavLock.expire < now).returning(DavLock.node_id)
    ).all()
    _journal(session, [node_id for (node_id,) in gone])
    return len(gone)


class LockTable:
    """The lock records, each call its own short transaction; ``mutex`` serialises
    check-then-create across every server process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.mutex = NamedMutex(db, "dav-locks")

    def create(
        self, record: LockRecord, *, user_id: UserId | None = None, path: str | None = None
    ) -> None:
        """Store a lock; ``user_id`` and ``path`` name the locked node in that user's tree."""
        with self.db.write() as session:
            create(session, record, user_id, path)

    def get(self, token: str) -> LockRecord | None:
        with self.db.read() as session:
            return get(session, token)

    def refresh(self, token: str, timeout: float) -> LockRecord | None:
        with self.db.write() as session:
            return refresh(session, token, timeout)

    def remove(self, token: str) -> bool:
        with self.db.write() as session:
            return remove(session, token)

    def at(self, root: str, *, include_root: bool, include_children: bool) -> list[LockRecord]:
        with self.db.read() as session:
            return at(session, root, include_root=include_root, include_children=include_children)

    def all_live(self) -> list[LockRecord]:
        with self.db.read() as session:
            return all_live(session)

    def purge_expired(self) -> int:
        with self.db.write() as session:
            return purge_expired(session)
