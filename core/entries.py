"""Share entries seen from both sides: which recipients see a node through an
entry (for the change journal's fan-out), which nodes a user sees through
their entries (as SQL, for tree pages, chunk and property authorisation), and
how a shared node looks from inside an entry (its parent is the entry).

An entry (``nodes.target_id``) is a node of its recipient's own tree that
stands for a shared node; ``core.shares.reconcile`` creates and removes them.
Only live entries count (one the recipient put in their trash shows nothing).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, aliased

from core import tree
from core.db.models import Node, Share
from core.ids import NodeId
from core.records import NodeInfo

_SHARING = "drivegate.sharing_owners"


@dataclass(frozen=True)
class EntryView:
    """A recipient's live entry for ``target_id`` (the node or one of its ancestors)."""

    user_id: int
    entry_id: int
    entry_parent_id: int | None
    entry_name: str
    target_id: int


def shares_anything(session: Session, owner_id: int) -> bool:
    """Whether any node of the owner's drive is shared (one indexed probe, kept for
    the transaction: a drive that shares nothing pays nothing more)."""
    known: dict[int, bool] = session.info.setdefault(_SHARING, {})
    if owner_id not in known:
        found = session.execute(select(Share.id).where(Share.owner_id == owner_id).limit(1))
        known[owner_id] = found.first() is not None
    return known[owner_id]


def forget_sharing(session: Session) -> None:
    """A grant changed in this transaction: ask ``shares_anything`` again."""
    session.info.pop(_SHARING, None)


def above(session: Session, node: Node) -> list[EntryView]:
    """The live entries of other users whose target is ``node`` or an ancestor of it."""
    if node.target_id is not None or not shares_anything(session, node.owner_id):
        return []
    up = tree.upward([node.id])
    rows = session.execute(
        select(Node.owner_id, Node.id, Node.parent_id, Node.name, Node.target_id).where(
            Node.target_id.in_(select(up.c.node)), Node.trashed_at.is_(None)
        )
    ).tuples()
    return [
        EntryView(user, entry, parent, name, target or 0)
        for user, entry, parent, name, target in rows
    ]


def targets_of(user_id: Any) -> Select[tuple[int | None]]:
    """SELECT the targets of the user's live entries (``user_id``: a value or a bind
    parameter)."""
    entry = aliased(Node)  # never correlated with a ``nodes`` of the enclosing query
    return select(entry.target_id).where(
        entry.owner_id == user_id, entry.target_id.is_not(None), entry.trashed_at.is_(None)
    )


def seen_through(user_id: Any) -> Any:
    """A recursive CTE (column ``id``) of every live node the user sees through their
    entries: each target and everything live below it."""
    top = aliased(Node)
    down = select(top.id).where(top.id.in_(targets_of(user_id))).cte("seen", recursive=True)
    below = aliased(Node)
    return down.union_all(
        select(below.id).where(below.parent_id == down.c.id, below.trashed_at.is_(None))
    )


def as_seen(session: Session, user_id: int, infos: list[NodeInfo]) -> list[NodeInfo]:
    """``infos`` as the user sees them: a member of a shared folder they reach through
    an entry has the entry as its parent (one query, for the whole list)."""
    parents = {info.parent_id for info in infos if info.parent_id is not None}
    if not parents:
        return infos
    rows = session.execute(
        select(Node.target_id, Node.id).where(
            Node.owner_id == user_id,
            Node.target_id.in_(parents),
            Node.trashed_at.is_(None),
        )
    ).tuples()
    entry_of = {target: entry for target, entry in rows if target is not None}
    if not entry_of:
        return infos
    return [
        dataclasses.replace(info, parent_id=NodeId(entry_of[info.parent_id]))
        if info.parent_id in entry_of
        else info
        for info in infos
    ]
