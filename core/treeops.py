"""Changing the tree, on nodes the caller resolved and checked (``core.nodeops``):
new folders, placing a node (move, rename, restore), copying, trashing and
purging. Every change appends to the change journal in the caller's
transaction.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core import journal, properties, quota, segments, tree
from core.commit import add_version, new_node
from core.db.models import Manifest, Node, Version
from core.errors import InvalidMove, MoveIntoItself, NameTaken


def make_folder(
    session: Session, parent: Node, name: str, *, mtime_ns: int | None, node_id: int | None = None
) -> Node:
    """A new folder ``name`` (already checked) in ``parent``; NameTaken if in use;
    ``node_id``: an id the caller checked and consumed (``core.nodeids``)."""
    if tree.live_child(session, parent.id, name) is not None:
        raise NameTaken(f"{name!r} already exists in that folder")
    node = new_node(session, parent, name, is_folder=True, mtime_ns=mtime_ns, node_id=node_id)
    journal.append(session, node, journal.CREATE)
    return node


def makedirs(session: Session, user_id: int, path: str) -> Node:
    """Resolve ``path``, creating the folders that are missing (``mkdir -p``)."""
    node = tree.user_root(session, user_id)
    for name in [part for part in path.split("/") if part]:
        child = tree.live_child(session, node.id, name)
        if child is None:
            child = new_node(session, node, name, is_folder=True, mtime_ns=None)
            journal.append(session, child, journal.CREATE)
        elif not child.is_folder:
            raise NameTaken(f"a file named {name!r} is in the way")
        node = child
    return node


def check_not_into_itself(session: Session, node: Node, target_parent: Node) -> None:
    if node.is_folder and any(
        row.id == node.id for row in tree.ancestry(session, target_parent.id)
    ):
        raise MoveIntoItself("a folder cannot be moved or copied into itself")


def place(
    session: Session, node: Node, parent: Node, name: str, *, overwrite: bool, kind: str
) -> Node:
    """Put ``node`` into ``parent`` as ``name`` (a move, or a restore from the trash).

    An existing ``name`` gives way only with ``overwrite``: a file over a file
    becomes a new version of the target (which keeps its history and identity);
    anything else in the way goes to the trash. Returns the node now at the place.
    """
    if node.parent_id is None and node.trashed_at is None:
        raise InvalidMove("the root folder cannot be moved")
    check_not_into_itself(session, node, parent)
    existing = tree.live_child(session, parent.id, name)
    if existing is not None and existing.id == node.id:
        return node  # moving onto itself changes nothing
    if existing is not None:
        if not overwrite:
            raise NameTaken(f"{tree.path_of(session, existing.id)} already exists")
        if not node.is_folder and not existing.is_folder:
            return _replace_content(session, node, existing)
        trash(session, existing, tree.path_of(session, existing.id))
    node.parent_id, node.name = parent.id, name
    node.trashed_at = node.trashed_from_id = node.trashed_path = None
    session.flush()
    journal.append(session, node, kind)
    return node


def _copy_content(session: Session, source: Node, target: Node, origin: str = "copy") -> Node:
    """Make the source file's content a new version of the target; keep the source."""
    manifest_id = session.execute(
        select(Version.manifest_id).where(Version.id == source.current_version_id)
    ).scalar_one()
    quota.charge(session, target.owner_id, source.size - target.size)
    add_version(
        session, target, manifest_id, source.size,
        author_id=source.owner_id, origin=origin, mtime_ns=source.mtime_ns,
    )  # fmt: skip
    journal.append(session, target, journal.UPDATE)
    return target


def _replace_content(session: Session, source: Node, target: Node) -> Node:
    """Make the source file's content a new version of the target, then drop the source."""
    _copy_content(session, source, target, origin="move")
    purge_nodes(session, source)
    return target


def copy_node(
    session: Session,
    node: Node,
    parent: Node,
    name: str,
    existing: Node | None,
    *,
    recursive: bool,
    author_id: int,
) -> Node:
    """Copy ``node`` (a file or a folder tree) into ``parent`` as ``name``, where
    ``existing`` (the caller checked it may give way) is now; content is shared by
    manifest, not copied.

    A file copied over a file becomes a new version of it (history kept, as for
    a restore); anything else in the way is moved to the trash first.
    ``recursive`` False copies a folder without its members (WebDAV ``Depth: 0``).
    """
    check_not_into_itself(session, node, parent)
    if existing is not None:
        if not node.is_folder and not existing.is_folder:
            return _copy_content(session, node, existing)
        trash(session, existing, tree.path_of(session, existing.id))
    copied_bytes = 0
    pending: list[tuple[Node, Node, str]] = [(node, parent, name)]
    top: Node | None = None
    while pending:
        source, into, as_name = pending.pop()
        clone = new_node(
            session, into, as_name, is_folder=source.is_folder, mtime_ns=source.mtime_ns
        )
        if source.is_folder:
            if recursive:
                children = session.execute(
                    select(Node).where(Node.parent_id == source.id, Node.trashed_at.is_(None))
                ).scalars()
                pending.extend((child, clone, child.name) for child in children)
        else:
            manifest_id = session.execute(
                select(Version.manifest_id).where(Version.id == source.current_version_id)
            ).scalar_one()
            add_version(
                session,
                clone,
                manifest_id,
                source.size,
                author_id=author_id,
                origin="copy",
                mtime_ns=source.mtime_ns,
            )
            copied_bytes += source.size
        session.flush()
        copied_bytes += properties.copy(session, source.id, clone.id)
        journal.append(session, clone, journal.CREATE)
        top = top or clone
    quota.charge(session, parent.owner_id, copied_bytes)
    assert top is not None
    return top


def trash(session: Session, node: Node, path: str) -> None:
    """Move ``node`` (and its subtree) to the trash, remembering where it was.

    The node is detached from its parent, so each trash entry stands alone:
    purging a trashed folder never takes along an item that was trashed
    from inside it earlier.
    """
    if node.parent_id is None:
        raise InvalidMove("the root folder cannot be deleted")
    node.trashed_at = time.time()
    node.trashed_from_id = node.parent_id
    node.trashed_path = path
    journal.append(session, node, journal.TRASH)
    node.parent_id = None
    session.flush()


def purge_nodes(session: Session, node: Node) -> int:
    """Delete ``node`` and its subtree for good; return the quota bytes freed (file
    content and dead properties).

    Versions go with their nodes (FK cascade); manifests no version uses any
    more are deleted too, and their chunks become garbage for gc.
    """
    ids = tree.subtree_ids(session, node.id)
    freed = 0
    manifest_ids: set[int] = set()
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        freed += sum(
            session.execute(
                select(Node.size).where(Node.id.in_(part), Node.is_folder.is_(False))
            ).scalars()
        )
        freed += properties.bytes_of(session, part)
        manifest_ids.update(
            session.execute(select(Version.manifest_id).where(Version.node_id.in_(part))).scalars()
        )
    journal.append(session, node, journal.PURGE)
    session.execute(delete(Node).where(Node.id == node.id))
    delete_unused_manifests(session, manifest_ids)
    quota.charge(session, node.owner_id, -freed)
    session.expunge(node)
    return freed


def delete_unused_manifests(session: Session, manifest_ids: set[int]) -> None:
    """Delete those of the manifests no version names, and the segments only they listed."""
    wanted = list(manifest_ids)
    listed = segments.of_manifests(session, wanted)
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        used = select(Version.id).where(Version.manifest_id == Manifest.id).exists()
        session.execute(delete(Manifest).where(Manifest.id.in_(part), ~used))
    segments.delete_unused(session, listed)
