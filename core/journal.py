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

from core import entries
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
    """Record ``kind`` for ``node`` in its owner's journal, and in the journal of each
    user who sees it through a share entry (as they see it: inside the entry);
    return the owner's new sequence number."""
    seq = _row(session, node.owner_id, kind, node, (node.id, node.parent_id, node.name))
    for view in entries.above(session, node):
        if view.target_id == node.id:  # the shared node itself: the entry stands for it
            seen_kind = META if kind == MOVE else TRASH if kind == PURGE else kind
            seen = (view.entry_id, view.entry_parent_id, view.entry_name)
            _row(session, view.user_id, seen_kind, node, seen)
        else:
            parent = view.entry_id if node.parent_id == view.target_id else node.parent_id
            _row(session, view.user_id, kind, node, (node.id, parent, node.name))
    return seq


def gone(session: Session, user_id: int, node: Node) -> None:
    """Tell a user that ``node`` left what they see of another's drive (a move out of
    the folder shared with them): a ``trash`` row, as a sync client drops it."""
    _row(session, user_id, TRASH, node, (node.id, node.parent_id, node.name))


def arrived(session: Session, user_id: int, node: Node, entry_id: int | None = None) -> None:
    """Tell a user about everything below ``node``, which just came into what they see
    of another's drive (the node's own row is appended already); ``entry_id``: the
    user's new entry that stands for ``node`` (its members show inside it)."""
    for member in _members(session, node):
        parent = entry_id if entry_id is not None and member.parent_id == node.id else None
        _row(session, user_id, CREATE, member, (member.id, parent or member.parent_id, member.name))


def _members(session: Session, node: Node) -> list[Node]:
    down = select(Node.id).where(Node.parent_id == node.id).cte("members", recursive=True)
    down = down.union_all(select(Node.id).where(Node.parent_id == down.c.id))
    return list(
        session.execute(
            select(Node).where(Node.id.in_(select(down.c.id))).order_by(Node.id)
        ).scalars()
    )


def _row(
    session: Session, user_id: int, kind: str, node: Node, seen: tuple[int, int | None, str]
) -> int:
    """Append one row to ``user_id``'s journal: ``node`` as the user sees it, ``seen``
    being its (node id, parent id, name) there; return the new sequence number."""
    node_id, parent_id, name = seen
    seq = session.execute(_NEXT_SEQ, {"user_id": user_id}).scalar_one()
    session.add(
        Change(
            owner_id=user_id, seq=seq, kind=kind, node_id=node_id, parent_id=parent_id,
            name=name, is_folder=node.is_folder, version_id=node.current_version_id,
            at=time.time(),
        )
    )  # fmt: skip
    session.info.setdefault(APPENDED, {})[user_id] = int(seq)
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
