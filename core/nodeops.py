"""The tree operations, one set for every face: mkdir, move, copy, delete, set the
time, restore a version. Each names its nodes by ``NodeRef`` (a path, a node id,
or a folder id and a name), resolves them with the access check of
``core.access`` and changes the tree with ``core.treeops``, in the caller's
transaction.

Every operation row-locks the user first, so its checks cannot race another
change of the same drive. Where the core decides WebDAV locks for the
principal (``Principal.lock_tokens`` not None: the sync API), each operation
is refused (Locked) where a lock it does not name covers what it changes
(see ``core.lockcheck``); the WebDAV face checks its own requests today.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core import access, journal, nodeids, tree, treeops, versions
from core.access import Action, Principal
from core.db.models import Node
from core.errors import InvalidMove, NameTaken, VersionConflict
from core.ids import VersionId
from core.lockcheck import LockGuard
from core.refs import NodeRef, Ref


class _Locks:
    """The lock checks of one operation: none when the face decides locks itself."""

    def __init__(self, session: Session, who: Principal) -> None:
        self.guard: LockGuard | None = None
        if who.lock_tokens is not None:
            token = next(iter(who.lock_tokens), None) if len(who.lock_tokens) == 1 else None
            self.guard = LockGuard(session, who.user_id, token)

    def require_unlocked(self, node_id: int, *, subtree: bool = False) -> None:
        if self.guard is not None:
            self.guard.require_unlocked(node_id, subtree=subtree)


def mkdir(
    session: Session,
    who: Principal,
    ref: Ref,
    *,
    mtime_ns: int | None = None,
    new_id: int | None = None,
) -> Node:
    """A new folder at ``ref`` (NameTaken if the name is in use); ``new_id``: with
    that reserved id (``nodeids.AlreadyCreated`` when the user's live node has it
    already: a replay, nothing changed)."""
    journal.lock_user(session, who.user_id)
    if new_id is not None:
        nodeids.check(session, who.user_id, new_id)
    parent, name = access.place(session, who, ref)
    _Locks(session, who).require_unlocked(parent.id)
    if new_id is not None:
        nodeids.consume(session, new_id)  # rolled back with the rest if the name is taken
    return treeops.make_folder(session, parent, name, mtime_ns=mtime_ns, node_id=new_id)


def makedirs(session: Session, who: Principal, path: str) -> Node:
    """The folder at ``path``, creating the folders that are missing (``mkdir -p``)."""
    journal.lock_user(session, who.user_id)
    return access.require(session, who, treeops.makedirs(session, who.user_id, path), Action.WRITE)


def move(session: Session, who: Principal, src: Ref, dst: Ref, *, overwrite: bool) -> Node:
    """Move or rename ``src`` to the place ``dst`` names.

    With ``overwrite`` an existing ``dst`` gives way: a file moved over a file
    becomes a new version of the target (the target keeps its history and
    identity, as office apps' temp-file saves expect) and the source node is
    removed; anything else is moved to the trash first.
    """
    journal.lock_user(session, who.user_id)
    node = _not_root(access.resolve(session, who, src, Action.READ), "moved")
    _folder_of(session, who, node)
    parent, name = access.place(session, who, dst)
    locks = _Locks(session, who)
    locks.require_unlocked(node.parent_id or node.id)
    locks.require_unlocked(node.id, subtree=True)
    locks.require_unlocked(parent.id)
    existing = tree.live_child(session, parent.id, name)
    if overwrite and existing is not None and existing.id != node.id:
        locks.require_unlocked(existing.id, subtree=True)
    return treeops.place(session, node, parent, name, overwrite=overwrite, kind=journal.MOVE)


def copy(
    session: Session,
    who: Principal,
    src: Ref,
    dst: Ref,
    *,
    overwrite: bool = False,
    recursive: bool = True,
) -> Node:
    """Copy a file or a folder tree to the place ``dst`` names (manifests, not bytes).

    With ``overwrite`` an existing ``dst`` gives way: a file copied over a file
    becomes a new version of it; anything else is moved to the trash first.
    ``recursive`` False copies a folder without its members (WebDAV ``Depth: 0``).
    """
    journal.lock_user(session, who.user_id)
    node = access.resolve(session, who, src, Action.READ)
    parent, name = access.place(session, who, dst)
    treeops.check_not_into_itself(session, node, parent)
    locks = _Locks(session, who)
    locks.require_unlocked(parent.id)
    existing = tree.live_child(session, parent.id, name)
    if existing is not None:
        if not overwrite or existing.id == node.id:
            raise NameTaken(f"{NodeRef.of(dst).label} already exists")
        locks.require_unlocked(existing.id, subtree=True)
    return treeops.copy_node(
        session, node, parent, name, existing, recursive=recursive, author_id=who.user_id
    )


def delete(
    session: Session, who: Principal, ref: Ref, *, base_version_id: VersionId | None = None
) -> Node:
    """Move the node (and its subtree) to the trash; with ``base_version_id``, only
    if that is still the file's current version."""
    journal.lock_user(session, who.user_id)
    node = _not_root(access.resolve(session, who, ref, Action.READ), "deleted")
    _folder_of(session, who, node)
    if base_version_id is not None and node.current_version_id != base_version_id:
        raise VersionConflict(
            f"{NodeRef.of(ref).label} changed: base version {base_version_id}, "
            f"current {node.current_version_id}",
            node.current_version_id,
            node.id,
        )
    locks = _Locks(session, who)
    locks.require_unlocked(node.parent_id or node.id)
    locks.require_unlocked(node.id, subtree=True)
    treeops.trash(session, node, tree.path_of(session, node.id))
    return node


def set_mtime(session: Session, who: Principal, ref: Ref, mtime_ns: int) -> Node:
    journal.lock_user(session, who.user_id)
    node = access.resolve(session, who, ref, Action.WRITE)
    _Locks(session, who).require_unlocked(node.id)
    node.mtime_ns = mtime_ns
    session.flush()
    journal.append(session, node, journal.META)
    return node


def restore_version(session: Session, who: Principal, ref: Ref, number: int) -> Node:
    """Make version ``number`` current again, as a new version sharing its manifest."""
    journal.lock_user(session, who.user_id)
    node = access.resolve_file(session, who, ref, Action.WRITE)
    _Locks(session, who).require_unlocked(node.id)
    return versions.restore_node_version(session, node, number)


def copy_version(
    session: Session,
    who: Principal,
    ref: Ref,
    number: int,
    dst: Ref,
    *,
    overwrite: bool,
    mtime_ns: int | None = None,
) -> Node:
    """Copy version ``number`` of a file to the place ``dst`` names (see
    ``versions.copy_version_to``)."""
    journal.lock_user(session, who.user_id)
    node = access.resolve_file(session, who, ref, Action.READ)
    parent, name = access.place(session, who, dst)
    return versions.copy_version_to(
        session, node, number, parent, name, overwrite=overwrite, mtime_ns=mtime_ns
    )


def _folder_of(session: Session, who: Principal, node: Node) -> Node:
    """The folder holding ``node``, checked for writing (renaming or removing a
    node changes its folder)."""
    assert node.parent_id is not None
    return access.require(session, who, session.get_one(Node, node.parent_id), Action.WRITE)


def _not_root(node: Node, verb: str) -> Node:
    if node.parent_id is None:
        raise InvalidMove(f"the root folder cannot be {verb}")
    return node
