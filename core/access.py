"""Who may do what to which node: the one access check of the core.

Every request acts for a :class:`Principal`: a user, and the WebDAV lock
tokens the request offers. It asks for an :class:`Action` on a node, named
by a ``NodeRef`` (``core.refs``); every tree operation of every face and of
the CLI resolves its nodes here, in its own transaction, and nothing else in
the core compares a node's owner with a user.

Today a user has every right on the nodes of their own drive and none on
anyone else's; grants (shares) add rights here and nowhere else. A node the
principal may not read is "not found", exactly as if it did not exist, so
an id or a path reveals nothing; a node they may read but not change is
Forbidden.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import BindParameter, ColumnElement
from sqlalchemy.orm import Session

from core import tree
from core.db.models import Node
from core.errors import Forbidden, InvalidRequest, NotAFile, NotFound
from core.ids import UserId
from core.refs import NodeRef, Ref


class Action(enum.Enum):
    """What a principal may do to a node."""

    READ = "read"
    """See it, list it, read its content, versions and properties."""
    WRITE = "write"
    """Change its content, properties or time; add, rename or remove members of a
    folder; restore its versions (renaming or removing a node writes its folder)."""


EVERYTHING = frozenset(Action)
NOTHING: frozenset[Action] = frozenset()


@dataclass(frozen=True)
class Principal:
    """Who a request acts for.

    ``lock_tokens``: the WebDAV lock tokens the request offers, with which the
    core checks its writes against WebDAV locks; None while the face decides
    locks itself (the WebDAV face, through WsgiDAV's lock manager)."""

    user_id: UserId
    lock_tokens: frozenset[str] | None = None


Who = Principal | int
"""What operations accept: a principal, or a user id (that user, no lock tokens)."""


def principal(who: Who) -> Principal:
    return who if isinstance(who, Principal) else Principal(UserId(who))


def rights(session: Session, who: Principal, node: Node) -> frozenset[Action]:
    """What the principal may do to ``node`` (the owner may do everything)."""
    del session  # grants on the node's path will be read here
    return EVERYTHING if node.owner_id == who.user_id else NOTHING


def require(session: Session, who: Principal, node: Node, action: Action) -> Node:
    """``node`` if the principal may do ``action`` to it: NotFound if they may not
    even read it (as if it did not exist), Forbidden if they may read it only."""
    allowed = rights(session, who, node)
    if Action.READ not in allowed:
        raise NotFound(f"no node {node.id}")
    if action not in allowed:
        raise Forbidden(f"{node.name!r} is read-only for you")
    return node


def node_by_id(
    session: Session, who: Principal, node_id: int, action: Action, *, trashed_too: bool = False
) -> Node:
    """The node with that id, live (or, with ``trashed_too``, in a trash), if the
    principal may do ``action`` to it; NotFound otherwise."""
    node = session.get(Node, node_id)
    if node is None or Action.READ not in rights(session, who, node):
        raise NotFound(f"no node {node_id}")
    if not trashed_too and not tree.is_live(session, node.id):
        raise NotFound(f"no node {node_id}")
    return require(session, who, node, action)


def resolve(session: Session, who: Principal, ref: Ref, action: Action) -> Node:
    """The live node ``ref`` names in the principal's drive, checked for ``action``."""
    ref = NodeRef.of(ref)
    if ref.path is not None:
        return require(session, who, tree.resolve(session, who.user_id, ref.path), action)
    if ref.node_id is not None:
        return node_by_id(session, who, ref.node_id, action)
    assert ref.parent_id is not None and ref.name is not None
    parent = node_by_id(session, who, ref.parent_id, Action.READ)
    child = tree.live_child(session, parent.id, tree.child_name(parent, ref.name))
    if child is None:
        raise NotFound(f"not found: {ref.name!r} in node {ref.parent_id}")
    return require(session, who, child, action)


def resolve_file(session: Session, who: Principal, ref: Ref, action: Action) -> Node:
    """``resolve``, for a file only (NotAFile for a folder)."""
    node = resolve(session, who, ref, action)
    if node.is_folder:
        raise NotAFile(f"{NodeRef.of(ref).label} is a folder")
    return node


def place(session: Session, who: Principal, ref: Ref) -> tuple[Node, str]:
    """The live folder ``ref`` names a member of, checked for writing, and the
    member's checked name (a place to create, move or copy to; not the root)."""
    ref = NodeRef.of(ref)
    if ref.path is not None:
        parent, name = tree.resolve_parent(session, who.user_id, ref.path)
    elif ref.parent_id is not None and ref.name is not None:
        parent = node_by_id(session, who, ref.parent_id, Action.READ)
        name = tree.child_name(parent, ref.name)
    else:
        raise InvalidRequest("a place is named by a path, or a folder id and a name")
    return require(session, who, parent, Action.WRITE), name


def place_and_node(session: Session, who: Principal, ref: Ref) -> tuple[Node, str, Node | None]:
    """The folder ``ref``'s file sits in (checked for writing), its name, and the
    live node there now (None if none): where a write lands. A node id names an
    existing file (NotAFile for a folder)."""
    ref = NodeRef.of(ref)
    if ref.path is not None:
        parent, name, existing = tree.resolve_parent_and_child(session, who.user_id, ref.path)
    elif ref.node_id is not None:
        existing = node_by_id(session, who, ref.node_id, Action.WRITE)
        if existing.is_folder or existing.parent_id is None:
            raise NotAFile(f"node {existing.id} is a folder")
        parent, name = session.get_one(Node, existing.parent_id), existing.name
    else:
        parent, name = place(session, who, ref)
        return parent, name, tree.live_child(session, parent.id, name)
    if existing is not None:
        require(session, who, existing, Action.WRITE)
    return require(session, who, parent, Action.WRITE), name, existing


def trash_entry(session: Session, who: Principal, entry_id: int, action: Action) -> Node:
    """A trash entry (the top of a trashed subtree) the principal may see."""
    node = session.get(Node, entry_id)
    if node is None or node.trashed_at is None or Action.READ not in rights(session, who, node):
        raise NotFound(f"no trash entry {entry_id}")
    return require(session, who, node, action)


def visible_to(user_id: int | BindParameter[int]) -> ColumnElement[bool]:
    """The SQL condition on ``Node`` of the nodes the user may read (for queries
    over many nodes: chunk authorisation, properties, trash listings)."""
    return Node.owner_id == user_id


def in_trash_of(user_id: int) -> ColumnElement[bool]:
    """The SQL condition on ``Node`` of the entries of the user's trash (the tops of
    the subtrees trashed from their drive)."""
    return (Node.owner_id == user_id) & Node.trashed_at.is_not(None)
