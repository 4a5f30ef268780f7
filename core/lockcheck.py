"""Which WebDAV locks cover which nodes, for writes and reads by node id.

The WebDAV face checks its own requests through WsgiDAV's lock manager (by
URL, with the tokens of the If header); the sync API has no URLs, so it asks
here, by the node each lock was taken on (``dav_locks.node_id``).

The rules are WebDAV's (RFC 4918 §7, as WsgiDAV applies them): a lock
covers its node, and with depth infinity everything below it. Writing a
node (its content, its properties) conflicts with a lock on the node and
with a depth-infinity lock above it; adding or removing a member of a folder
is a write to the folder; removing a node with its subtree (move, delete)
also conflicts with any lock inside the subtree. The lock a request names
by token does not conflict. Expired locks cover nothing.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from core import tree
from core.davlocks import unexpired
from core.db.models import DavLock, Node
from core.errors import Locked

INFINITY = "infinity"


@dataclass(frozen=True)
class HeldLock:
    token: str
    node_id: int
    depth: str


def held_locks(session: Session, user_id: int) -> list[HeldLock]:
    """The live locks on the user's nodes (one query)."""
    rows = session.execute(_HELD, {"user": user_id, "now": time.time()}).all()
    return [HeldLock(token, node_id, depth) for token, node_id, depth in rows]


# Built once: every write checks the locks, and building the query cost more than running it.
_HELD = (
    select(DavLock.token, DavLock.node_id, DavLock.depth)
    .join(Node, Node.id == DavLock.node_id)
    .where(Node.owner_id == bindparam("user"), unexpired(bindparam("now")))
)


def locked_among(session: Session, user_id: int, ids: Collection[int]) -> set[int]:
    """Which of ``ids`` a lock covers: one query, two when a folder is locked with
    depth infinity, whatever the number of ids."""
    locks = held_locks(session, user_id)
    if not locks or not ids:
        return set()
    covered = {lock.node_id for lock in locks} & set(ids)
    deep = {lock.node_id for lock in locks if lock.depth == INFINITY}
    if deep:
        up = tree.upward(ids)
        covered.update(
            session.execute(select(up.c.start).where(up.c.node.in_(deep)).distinct()).scalars()
        )
    return covered


class LockGuard:
    """The user's locks, loaded once per transaction, minus the one named by ``token``."""

    def __init__(self, session: Session, user_id: int, token: str | None = None) -> None:
        self.session = session
        self.locks = [lock for lock in held_locks(session, user_id) if lock.token != token]

    def require_unlocked(self, node_id: int, *, subtree: bool = False) -> None:
        """Raise Locked if a write to ``node_id`` (with its subtree, if asked) conflicts."""
        if not self.locks:
            return
        chain = [row.id for row in tree.ancestry(self.session, node_id)]
        above = set(chain[:-1])
        for lock in self.locks:
            if lock.node_id == node_id or (lock.node_id in above and lock.depth == INFINITY):
                raise Locked(f"node {node_id} is locked by a WebDAV client")
        if subtree:
            up = tree.upward([lock.node_id for lock in self.locks])
            inside = self.session.execute(
                select(up.c.start).where(up.c.node == node_id).limit(1)
            ).scalar_one_or_none()
            if inside is not None:
                raise Locked(f"node {inside}, inside node {node_id}, is locked by a WebDAV client")


def require_unlocked(
    session: Session, user_id: int, node_id: int, *, token: str | None = None
) -> None:
    """Raise Locked if writing ``node_id`` conflicts with a lock other than ``token``."""
    LockGuard(session, user_id, token).require_unlocked(node_id)
