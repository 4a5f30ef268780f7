"""Reading the tree by node id, for sync clients: nodes with their lock flag,
tree pages and changes with each node's current state.

Each call costs a constant number of queries whatever the page size (the
lock flags of a page, the liveness of the nodes a page of changes names, …
are each one batched query). Nodes of other users, and nodes in the trash,
are "not found": an id alone reveals nothing.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import access, journal, lockcheck, tree, versions
from core.access import Action, Principal
from core.db.models import Node, User
from core.errors import InvalidRequest, NotAFile
from core.ids import NodeId, UserId
from core.records import (
    ChangePage,
    NodeChange,
    NodeInfo,
    TreePage,
    VersionManifest,
)
from core.refs import NodeRef, Ref


def with_locks(session: Session, user_id: int, infos: list[NodeInfo]) -> list[NodeInfo]:
    """The nodes with their lock flags (one or two queries for the whole list)."""
    locked = lockcheck.locked_among(session, user_id, [info.id for info in infos])
    return [replace(info, locked=True) if info.id in locked else info for info in infos]


def state(session: Session, user_id: int, node_id: int) -> NodeInfo:
    """The node (the caller checked it may be seen) with its lock flag."""
    return with_locks(session, user_id, [tree.info(session, node_id)])[0]


def position(session: Session, user_id: int) -> int:
    """The user's last journal sequence number (the cursor of "now")."""
    return int(session.execute(select(User.journal_seq).where(User.id == user_id)).scalar_one())


def tree_page(session: Session, user_id: int, after: int, limit: int) -> TreePage:
    """Live nodes with ids above ``after`` (the root excluded), in id order.

    The cursor is read first: whatever changes while the client pages comes
    again in the changes after it, so a client that applies those ends up
    exact. A page may hold fewer than ``limit`` nodes (those among the ids
    it covers that sit in the trash are left out).
    """
    cursor = position(session, user_id)
    candidates = (
        select(Node.id)
        .where(access.visible_to(user_id), Node.id > after, Node.parent_id.is_not(None))
        .order_by(Node.id)
        .limit(limit)
        .subquery()
    )
    last, count = session.execute(select(func.max(candidates.c.id), func.count())).one()
    live = tree.live_among(session, user_id, select(candidates.c.id))
    states = with_locks(session, user_id, tree.infos(session, live))
    return TreePage(cursor, states, NodeId(last) if count == limit else None)


def change_page(session: Session, user_id: int, cursor: int, limit: int) -> ChangePage:
    """Changes after ``cursor`` with each node's current state (None: not live)."""
    now = position(session, user_id)
    if cursor > now:
        raise InvalidRequest(f"cursor {cursor} is ahead of the journal ({now})")
    rows = journal.changes_since(session, UserId(user_id), cursor, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    ids = {row.node_id for row in rows}
    live = tree.live_among(session, user_id, ids) if ids else set()
    states = {s.id: s for s in with_locks(session, user_id, tree.infos(session, live))}
    changes = [NodeChange(row.seq, row.kind, row.node_id, states.get(row.node_id)) for row in rows]
    return ChangePage(rows[-1].seq if rows else cursor, changes, more)


def manifest(session: Session, who: Principal, ref: Ref, number: int | None) -> VersionManifest:
    """The chunks of the file's current (or numbered) version; by id, a trashed file's
    too, so a client holding it open can go on reading after a delete elsewhere."""
    ref = NodeRef.of(ref)
    if ref.node_id is not None:
        node = access.node_by_id(session, who, ref.node_id, Action.READ, trashed_too=True)
        if node.is_folder:
            raise NotAFile(f"node {node.id} is a folder")
    else:
        node = access.resolve_file(session, who, ref, Action.READ)
    chosen = versions.version_by_number(session, node, number)
    (info,) = versions.list_versions(session, node, only=chosen.id)
    refs, _ = versions.manifest_refs(session, chosen.manifest_id)
    return VersionManifest(NodeId(node.id), info, refs)
