"""Changing the tree by node id (the sync API): the operations of ``treeops`` and
``versions``, addressed by id, each refused (Locked) where a WebDAV lock
covers what it changes (see ``core.lockcheck``; the WebDAV face checks its
own requests against the same locks by URL).

Every function row-locks the user first, like the path-based operations, so
its checks cannot race another change of the same drive.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core import journal, nodeids, tree, treeops, versions
from core.db.models import Node
from core.errors import InvalidMove, NotAFile, VersionConflict
from core.ids import VersionId
from core.lockcheck import LockGuard


def mkdir(
    session: Session,
    user_id: int,
    parent_id: int,
    name: str,
    *,
    mtime_ns: int | None,
    new_id: int | None = None,
) -> Node:
    """A new folder; ``new_id``: with that reserved id (``nodeids.AlreadyCreated``
    when the user's live node has it already: a replay, nothing changed)."""
    journal.lock_user(session, user_id)
    if new_id is not None:
        nodeids.check(session, user_id, new_id)
    parent = tree.owned_live(session, user_id, parent_id)
    name = tree.child_name(parent, name)
    LockGuard(session, user_id).require_unlocked(parent.id)
    if new_id is not None:
        nodeids.consume(session, new_id)  # rolled back with the rest if the name is taken
    return treeops.make_folder(session, parent, name, mtime_ns=mtime_ns, node_id=new_id)


def move(
    session: Session, user_id: int, node_id: int, parent_id: int, name: str, *, overwrite: bool
) -> Node:
    """Move or rename; with ``overwrite`` as ``treeops.move`` (a file over a file
    becomes its new version, anything else in the way goes to the trash)."""
    journal.lock_user(session, user_id)
    node = _not_root(tree.owned_live(session, user_id, node_id), "moved")
    parent = tree.owned_live(session, user_id, parent_id)
    name = tree.child_name(parent, name)
    guard = LockGuard(session, user_id)
    guard.require_unlocked(node.parent_id or node.id)
    guard.require_unlocked(node.id, subtree=True)
    guard.require_unlocked(parent.id)
    existing = tree.live_child(session, parent.id, name)
    if overwrite and existing is not None and existing.id != node.id:
        guard.require_unlocked(existing.id, subtree=True)
    return treeops.move_node(session, node, parent, name, overwrite=overwrite)


def trash(
    session: Session, user_id: int, node_id: int, *, base_version_id: VersionId | None
) -> None:
    """Move the node (and its subtree) to the trash; with ``base_version_id``, only
    if that is still the file's current version."""
    journal.lock_user(session, user_id)
    node = _not_root(tree.owned_live(session, user_id, node_id), "deleted")
    if base_version_id is not None and node.current_version_id != base_version_id:
        raise VersionConflict(
            f"node {node_id} changed: base version {base_version_id}, "
            f"current {node.current_version_id}",
            node.current_version_id,
            node.id,
        )
    guard = LockGuard(session, user_id)
    guard.require_unlocked(node.parent_id or node.id)
    guard.require_unlocked(node.id, subtree=True)
    treeops.trash(session, node, tree.path_of(session, node.id))


def set_mtime(session: Session, user_id: int, node_id: int, mtime_ns: int) -> Node:
    journal.lock_user(session, user_id)
    node = tree.owned_live(session, user_id, node_id)
    LockGuard(session, user_id).require_unlocked(node.id)
    node.mtime_ns = mtime_ns
    session.flush()
    journal.append(session, node, journal.META)
    return node


def restore_version(session: Session, user_id: int, node_id: int, number: int) -> Node:
    journal.lock_user(session, user_id)
    node = tree.owned_live(session, user_id, node_id)
    if node.is_folder:
        raise NotAFile(f"node {node_id} is a folder")
    LockGuard(session, user_id).require_unlocked(node.id)
    return versions.restore_node_version(session, node, number)


def _not_root(node: Node, verb: str) -> Node:
    if node.parent_id is None:
        raise InvalidMove(f"the root folder cannot be {verb}")
    return node
