"""The trash: listing, restoring (to the original place, or "keep both") and purging."""

from __future__ import annotations

import time
from pathlib import PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import access, journal, tree
from core.access import Action, Principal
from core.db.models import Node
from core.errors import NotFound
from core.ids import NodeId
from core.names import split_path
from core.records import NodeInfo, TrashEntry
from core.refs import Ref
from core.treeops import makedirs, place, purge_nodes


def list_trash(session: Session, user_id: int) -> list[TrashEntry]:
    rows = session.execute(
        select(Node).where(access.in_trash_of(user_id)).order_by(Node.trashed_at.desc())
    ).scalars()
    return [
        TrashEntry(
            id=NodeId(node.id),
            name=node.name,
            is_folder=node.is_folder,
            size=node.size,
            original_path=node.trashed_path or "/" + node.name,
            trashed_at=node.trashed_at or 0.0,
        )
        for node in rows
    ]


def entry_infos(session: Session, user_id: int) -> dict[NodeId, NodeInfo]:
    """The node of every trash entry of the user, in one query."""
    rows = session.execute(tree.info_query().where(access.in_trash_of(user_id))).all()
    return {info.id: info for info in (tree.to_info(row) for row in rows)}


def free_name(session: Session, parent_id: int, name: str) -> str:
    """``name`` if free in the folder, else ``stem (2).ext``, ``stem (3).ext``, …"""
    if tree.live_child(session, parent_id, name) is None:
        return name
    path = PurePosixPath(name)
    stem, suffix = (path.stem, path.suffix) if path.stem else (name, "")
    n = 2
    while True:
        candidate = f"{stem} ({n}){suffix}"
        if tree.live_child(session, parent_id, candidate) is None:
            return candidate
        n += 1


def restore(session: Session, who: Principal, entry_id: int) -> tuple[Node, str]:
    """Put a trashed item back where it was; return it and its new path.

    If the original folder is gone it is recreated; if the name is taken the
    restored item keeps both by taking a free ``name (N)`` name.
    """
    journal.lock_user(session, who.user_id)
    node = access.trash_entry(session, who, entry_id, Action.WRITE)
    original = node.trashed_path or "/" + node.name
    names = split_path(original)
    parent = None
    if node.trashed_from_id is not None and tree.is_live(session, node.trashed_from_id):
        parent = session.get(Node, node.trashed_from_id)
    if parent is None:
        parent = makedirs(session, node.owner_id, "/".join(names[:-1]))
    node.name = free_name(session, parent.id, names[-1] if names else node.name)
    node.parent_id = parent.id
    node.trashed_at = node.trashed_from_id = node.trashed_path = None
    session.flush()
    journal.append(session, node, journal.RESTORE)
    _journal_members(session, node)
    return node, tree.path_of(session, node.id)


def restore_to(
    session: Session, who: Principal, entry_id: int, names: list[str], dst: Ref, *, overwrite: bool
) -> Node:
    """Restore a trashed item, or the node at ``names`` inside a trashed folder, to
    ``dst`` (WebDAV: MOVE out of ``/.trash``).

    A file restored over a file becomes a new version of it, as a move would.
    """
    journal.lock_user(session, who.user_id)
    node = resolve_inside(session, who, entry_id, names, Action.WRITE)
    parent, name = access.place(session, who, dst)
    placed = place(session, node, parent, name, overwrite=overwrite, kind=journal.RESTORE)
    if placed.is_folder:
        _journal_members(session, placed)
    return placed


def resolve_inside(
    session: Session, who: Principal, entry_id: int, names: list[str], action: Action
) -> Node:
    """The node at ``names`` below a trash entry (the entry itself for no names)."""
    entry = access.trash_entry(session, who, entry_id, action)
    node = tree.walk(session, entry.id, names) if entry.is_folder or not names else None
    if node is None:
        raise NotFound(f"not found in the trash: {entry.name}/{'/'.join(names)}")
    return node


def _journal_members(session: Session, folder: Node) -> None:
    """A ``restore`` row for everything below a restored folder: a sync client
    dropped the whole subtree when the folder went to the trash."""
    below = tree.subtree_ids(session, folder.id)[1:]
    for start in range(0, len(below), 500):
        part = below[start : start + 500]
        members = session.execute(select(Node).where(Node.id.in_(part)).order_by(Node.id))
        for member in members.scalars():
            journal.append(session, member, journal.RESTORE)


def purge(session: Session, who: Principal, entry_id: int) -> int:
    """Delete one trash entry for good; return the bytes freed."""
    journal.lock_user(session, who.user_id)
    return purge_nodes(session, access.trash_entry(session, who, entry_id, Action.WRITE))


def expired_entries(session: Session, older_than_days: float) -> list[tuple[int, int]]:
    """(user id, entry id) of every trash entry older than the limit, for gc."""
    cutoff = time.time() - older_than_days * 86400
    return [
        (row.owner_id, row.id)
        for row in session.execute(
            select(Node.owner_id, Node.id).where(
                Node.trashed_at.is_not(None), Node.trashed_at < cutoff
            )
        )
    ]
