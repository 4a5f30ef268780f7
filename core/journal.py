"""The change journal: one row per tree change, in the transaction of the change.

Per user, ``seq`` comes from bumping ``users.journal_seq``; that UPDATE
row-locks the user until commit, so sequence numbers are gap-free and in
commit order, which makes ``seq`` a cursor a sync client can trust.

Each append also notes the user's new position in ``session.info``, so the
change feed (``core.changefeed``) can wake long-polls when the transaction
commits.
"""

from __future__ import annotations

import time
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from core.db.models import Change, Node, User
from core.ids import NodeId, UserId
from core.records import ChangeInfo

CREATE = "create"
UPDATE = "update"
MOVE = "move"
TRASH = "trash"
RESTORE = "restore"
PURGE = "purge"
META = "meta"
LOCK = "lock"
"""A WebDAV lock on the node was taken, released or expired."""
APPENDED = "drivegate.journal_appended"


def lock_user(session: Session, user_id: int) -> None:
    """Row-lock the user for the rest of the transaction. Nothing to do on SQLite,
    where the write transaction already holds the database's write lock."""
    if session.get_bind().dialect.name == "sqlite":
        return
    session.execute(select(User.id).where(User.id == user_id).with_for_update()).scalar_one()


_USERS = cast(Table, User.__table__)
_NEXT_SEQ = (  # Core, built once (an ORM update built per call is costly)
    update(_USERS)
    .where(_USERS.c.id == bindparam("user_id"))
    .values(journal_seq=_USERS.c.journal_seq + 1)
    .returning(_USERS.c.journal_seq)
)


def append(session: Session, node: Node, kind: str) -> int:
    """Record ``kind`` for ``node`` and return the new sequence number."""
    seq = session.execute(_NEXT_SEQ, {"user_id": node.owner_id}).scalar_one()
    session.add(
        Change(
            owner_id=node.owner_id,
            seq=seq,
            kind=kind,
            node_id=node.id,
            parent_id=node.parent_id,
            name=node.name,
            is_folder=node.is_folder,
            version_id=node.current_version_id,
            at=time.time(),
        )
    )
    session.info.setdefault(APPENDED, {})[node.owner_id] = int(seq)
    return int(seq)


def appended(session: Session) -> dict[int, int]:
    """{user id: last sequence number} of the rows this transaction appended."""
    noted: dict[int, int] = session.info.get(APPENDED, {})
    return noted


def changes_since(session: Session, user_id: UserId, cursor: int, limit: int) -> list[ChangeInfo]:
    rows = session.execute(
        select(Change)
        .where(Change.owner_id == user_id, Change.seq > cursor)
        .order_by(Change.seq)
        .limit(limit)
    ).scalars()
    return [
        ChangeInfo(
            seq=row.seq,
            kind=row.kind,
            node_id=NodeId(row.node_id),
            parent_id=NodeId(row.parent_id) if row.parent_id is not None else None,
            name=row.name,
            is_folder=row.is_folder,
            version_id=row.version_id,  # type: ignore[arg-type]
            at=row.at,
        )
        for row in rows
    ]
