"""Node ids handed out before their node exists, so a sync client can create a
file or folder offline and replay it later under the id it already uses.

``reserve`` takes ids no node has and no other reservation holds, and keeps
them in ``reserved_node_ids`` for the user until a create consumes one
(``consume``). How the two backends keep ordinary inserts off reserved ids:

- PostgreSQL: reserved ids come from the sequence behind ``nodes.id``
  (``nextval``), the same one ordinary inserts draw from, so they never meet.
- SQLite: ``nodes.id`` is a plain rowid (max + 1), which would take a reserved
  id, so every node insert names its id itself (``fresh_id``: above both the
  largest node id and the largest reserved id), and reservations are taken
  the same way. Every write transaction starts with ``BEGIN IMMEDIATE``
  (``core.db.engine``), so it holds SQLite's one write lock from its first
  statement: nothing can insert between reading the maximum and using it.

A create that names an id (``check``, then ``consume`` as it inserts) finds
one of: the user's live node with that id (the create already happened: a
replay, ``AlreadyCreated``); the user's node in the trash (``IdUsed``); the
user's reservation (consumed in the create's transaction); anything else,
another user's reservation or node included, is refused
(``InvalidRequest``), revealing nothing.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session

from core import access, tree
from core.db.models import Node, ReservedNodeId
from core.errors import IdUsed, InvalidRequest, LimitReached
from core.ids import NodeId

MAX_RESERVE = 10_000
MAX_HELD = 100_000
"""Reservations one user may hold at once: a client uses its ids as it creates
nodes offline, so many more than a batch or two means a client that leaks them."""
_NEXTVAL = text("SELECT nextval(pg_get_serial_sequence('nodes', 'id')) FROM generate_series(1, :n)")


class AlreadyCreated(Exception):
    """Control flow, not an error: the id names the user's live node already,
    so the create that names it is a replay and must change nothing."""

    def __init__(self, node_id: NodeId) -> None:
        super().__init__(f"node {node_id} exists already")
        self.node_id = node_id


def reserve(session: Session, user_id: int, count: int) -> list[NodeId]:
    """``count`` fresh node ids, ascending, reserved for the user."""
    if not 1 <= count <= MAX_RESERVE:
        raise InvalidRequest(f"count is 1 to {MAX_RESERVE}, not {count}")
    held = session.execute(
        select(func.count()).select_from(ReservedNodeId).where(ReservedNodeId.user_id == user_id)
    ).scalar_one()
    if held + count > MAX_HELD:
        raise LimitReached(
            f"you hold {held} reserved ids; at most {MAX_HELD} at once: use them first"
        )
    if session.get_bind().dialect.name == "sqlite":
        first = _next_sqlite_id(session)
        ids = list(range(first, first + count))
    else:
        drawn = session.execute(_NEXTVAL, {"n": count}).scalars()
        ids = sorted(int(value) for value in drawn)
    now = time.time()
    session.execute(
        insert(ReservedNodeId),
        [{"id": node_id, "user_id": user_id, "reserved_at": now} for node_id in ids],
    )
    return [NodeId(node_id) for node_id in ids]


def fresh_id(session: Session) -> int | None:
    """The id the next node insert must use: on SQLite, above every node and every
    reservation; None elsewhere (the sequence gives it)."""
    if session.get_bind().dialect.name != "sqlite":
        return None
    return _next_sqlite_id(session)


def consume(session: Session, node_id: int) -> None:
    """Drop the reservation of an id ``check`` accepted, in the transaction that
    inserts its node."""
    session.execute(delete(ReservedNodeId).where(ReservedNodeId.id == node_id))


def check(session: Session, user_id: int, node_id: int) -> None:
    """May a create of the user give its node ``node_id``? Returns if the id is
    reserved for the user; raises ``AlreadyCreated`` (a replay), ``IdUsed`` or
    ``InvalidRequest``. Consumes nothing (see ``consume``)."""
    node = session.get(Node, node_id)
    if node is not None and access.Action.READ in access.rights(
        session, access.principal(user_id), node
    ):
        if tree.is_live(session, node_id):
            raise AlreadyCreated(NodeId(node_id))
        raise IdUsed(f"id {node_id} was used by a node that is now in the trash")
    held = session.execute(
        select(ReservedNodeId.user_id).where(ReservedNodeId.id == node_id)
    ).scalar_one_or_none()
    if held != user_id:
        raise InvalidRequest(f"id {node_id} is not reserved for you")


def _next_sqlite_id(session: Session) -> int:
    highest = select(func.max(Node.id)).scalar_subquery()
    reserved = select(func.max(ReservedNodeId.id)).scalar_subquery()
    # SQLite's two-argument max() is the larger of its arguments.
    top = session.execute(
        select(func.max(func.coalesce(highest, 0), func.coalesce(reserved, 0)))
    ).scalar_one()
    return int(top) + 1
