"""WebDAV lock records (the WebDAV face decides what a lock means; the core
keeps them in SQL so every server process sees the same locks).

Expired locks are invisible to every read and deleted lazily.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from core.db.engine import Database
from core.db.models import DavLock
from core.db.mutex import NamedMutex


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


def _live() -> object:
    return or_(DavLock.expire < 0, DavLock.expire >= time.time())


def create(session: Session, record: LockRecord) -> None:
    session.add(DavLock(**record.as_dict()))


def get(session: Session, token: str) -> LockRecord | None:
    row = session.execute(
        select(DavLock).where(DavLock.token == token, _live())  # type: ignore[arg-type]
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
    return bool(session.execute(delete(DavLock).where(DavLock.token == token)).rowcount)  # type: ignore[attr-defined]


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
        select(DavLock).where(or_(*wanted), _live()).order_by(DavLock.root)  # type: ignore[arg-type]
    ).scalars()
    return [_record(row) for row in rows]


def all_live(session: Session) -> list[LockRecord]:
    rows = session.execute(select(DavLock).where(_live()).order_by(DavLock.root)).scalars()  # type: ignore[arg-type]
    return [_record(row) for row in rows]


def purge_expired(session: Session) -> int:
    now = time.time()
    result = session.execute(delete(DavLock).where(DavLock.expire >= 0, DavLock.expire < now))
    return int(result.rowcount)  # type: ignore[attr-defined]


class LockTable:
    """The lock records, each call its own short transaction; ``mutex`` serialises
    check-then-create across every server process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.mutex = NamedMutex(db, "dav-locks")

    def create(self, record: LockRecord) -> None:
        with self.db.write() as session:
            create(session, record)

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
