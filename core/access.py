"""Who may do what to which node: the one access check of the core.

Every request acts for a :class:`Principal`: a user, and the WebDAV lock
tokens the request offers. It asks for an :class:`Action` on a node, named
by a ``NodeRef`` (``core.refs``); every tree operation of every face and of
the CLI resolves its nodes here, in its own transaction, and nothing else in
the core compares a node's owner with a user.

A user has every right on the nodes of their own drive. On anyone else's
node, their rights are the union of the grants (``Share`` rows) on the
node's path, to them or to one of their groups, each bounded by what its
granter holds at the time of the check: a reshare shrinks or vanishes as
soon as the grant it derives from does, with nothing to cascade. A node the
principal may not read is "not found", exactly as if it did not exist, so
an id or a path reveals nothing; a node they may read but not change is
Forbidden.

A share *entry* (a node with ``target_id``) stands in its owner's tree for
the shared node: its place and name are the entry's, everything else (its
members, content, versions, properties, rights) the target's. ``resolve``
sees through entries; ``resolve_here`` does not (moving or removing the
entry itself).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, select
from sqlalchemy.orm import Session

from core import entries, tree
from core.db.models import GroupMember, Node, Share
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
    SHARE = "share"
    """Grant others rights on it, up to one's own."""


EVERYTHING = frozenset(Action)
NOTHING: frozenset[Action] = frozenset()
ROLES: dict[str, frozenset[Action]] = {
    "viewer": frozenset({Action.READ}),
    "editor": frozenset({Action.READ, Action.WRITE}),
}
"""What each role of a grant gives (``reshare`` adds SHARE)."""


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
    """What the principal may do to ``node``: everything for its owner, else what
    the grants on its path give them (one query)."""
    if node.owner_id == who.user_id:
        return EVERYTHING
    if not tree.is_live(session, node.id):  # a trash is its owner's alone
        return NOTHING
    return effective_rights(node.owner_id, path_grants(session, node.id)).get(who.user_id, NOTHING)


@dataclass(frozen=True)
class PathGrant:
    """A grant on a node's path, with the users it reaches (a group's members)."""

    granted_by: int
    reaches: frozenset[int]
    gives: frozenset[Action]


def path_grants(session: Session, node_id: int) -> list[PathGrant]:
    """The grants on the node and on each of its ancestors (one query)."""
    up = tree.upward([node_id])
    rows = session.execute(
        select(
            Share.id, Share.node_id, Share.granted_by, Share.user_id, GroupMember.user_id,
            Share.role, Share.reshare,
        )
        .outerjoin(GroupMember, GroupMember.group_id == Share.group_id)
        .where(Share.node_id.in_(select(up.c.node)))
    ).tuples()  # fmt: skip
    return [grant for _, grant in _collect(rows)]


def read_only_among(session: Session, user_id: int, ids: Collection[int]) -> set[int]:
    """Which of ``ids`` the user may read but not change: nodes of others' drives
    (or entries standing for them) their grants give no write on. One query when
    all are the user's own, three otherwise, whatever their number."""
    foreign = list(
        session.execute(
            select(Node).where(
                Node.id.in_(list(ids)), (Node.owner_id != user_id) | Node.target_id.is_not(None)
            )
        ).scalars()
    )
    if not foreign:
        return set()
    wanted = [node.target_id for node in foreign if node.target_id is not None]
    targets = {t.id: t for t in session.execute(select(Node).where(Node.id.in_(wanted))).scalars()}
    shown = {
        node.id: targets.get(node.target_id, node) if node.target_id is not None else node
        for node in foreign
    }
    others = {seen: node for seen, node in shown.items() if node.owner_id != user_id}
    grants = grants_above(session, [node.id for node in others.values()])
    return {
        seen
        for seen, node in others.items()
        if Action.WRITE
        not in effective_rights(node.owner_id, grants.get(node.id, [])).get(user_id, NOTHING)
    }


def grants_above(session: Session, node_ids: list[int]) -> dict[int, list[PathGrant]]:
    """The grants on each node's path (the node and its ancestors), by node, in one
    query for all of them."""
    up = tree.upward(node_ids)
    rows = session.execute(
        select(
            up.c.start, Share.id, Share.granted_by, Share.user_id, GroupMember.user_id,
            Share.role, Share.reshare,
        )
        .join(Share, Share.node_id == up.c.node)
        .outerjoin(GroupMember, GroupMember.group_id == Share.group_id)
    ).tuples()  # fmt: skip
    by_node: dict[int, list[tuple[Any, ...]]] = {}
    for start, *grant in rows:
        by_node.setdefault(start, []).append((grant[0], start, *grant[1:]))
    return {node: [grant for _, grant in _collect(found)] for node, found in by_node.items()}


def _collect(rows: Iterable[tuple[Any, ...]]) -> list[tuple[int, PathGrant]]:
    """Grant rows (share id, node id, granter, user, member, role, reshare), one per
    user reached, folded into one ``PathGrant`` per share."""
    found: dict[int, tuple[int, int, set[int], frozenset[Action]]] = {}
    for share_id, node_id, granted_by, user_id, member_id, role, reshare in rows:
        gives = ROLES.get(role, NOTHING) | ({Action.SHARE} if reshare else NOTHING)
        _, _, reaches, _ = found.setdefault(share_id, (node_id, granted_by, set(), gives))
        reaches.update(user for user in (user_id, member_id) if user is not None)
    return [
        (node_id, PathGrant(by, frozenset(reaches), gives))
        for node_id, by, reaches, gives in found.values()
    ]


def effective_rights(owner_id: int, grants: list[PathGrant]) -> dict[int, frozenset[Action]]:
    """Each user's rights from ``grants`` (on one path of ``owner_id``'s drive): the
    owner holds everything; a grant gives its role, bounded by what its granter
    holds, and only if the granter may share. Computed to a fixed point, so a
    chain of reshares holds exactly as long as each link does."""
    held: dict[int, frozenset[Action]] = {owner_id: EVERYTHING}
    changed = True
    while changed:
        changed = False
        for grant in grants:
            granter = held.get(grant.granted_by, NOTHING)
            if Action.SHARE not in granter:
                continue
            given = grant.gives & granter
            for user in grant.reaches:
                now = held.get(user, NOTHING) | given
                if now != held.get(user):
                    held[user] = now
                    changed = True
    return held


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
    principal may do ``action`` to it; NotFound otherwise. A share entry is
    returned as itself (``through`` gives its target)."""
    node = session.get(Node, node_id)
    if node is None or Action.READ not in rights(session, who, node):
        raise NotFound(f"no node {node_id}")
    if not trashed_too and not tree.is_live(session, node.id):
        raise NotFound(f"no node {node_id}")
    return require(session, who, node, action)


def through(session: Session, who: Principal, node: Node) -> Node:
    """``node``, or for a share entry the shared node it stands for (NotFound once
    the principal may no longer read it, or it is in a trash)."""
    if node.target_id is None:
        return node
    target = session.get(Node, node.target_id)
    if target is None or Action.READ not in rights(session, who, target):
        raise NotFound(f"the share {node.name!r} is no longer shared with you")
    return target


def reach(session: Session, who: Principal, ref: Ref) -> tuple[Node, Node]:
    """The live node ``ref`` names in the principal's drive, and the node it stands
    for (itself, or a share entry's target), both seen by the principal."""
    ref = NodeRef.of(ref)
    if ref.path is not None:
        node = tree.resolve(session, who.user_id, ref.path)
        if Action.READ not in rights(session, who, node):
            raise NotFound(f"not found: {ref.path}")
    elif ref.node_id is not None:
        node = node_by_id(session, who, ref.node_id, Action.READ)
    else:
        assert ref.parent_id is not None and ref.name is not None
        parent = through(session, who, node_by_id(session, who, ref.parent_id, Action.READ))
        child = tree.live_child(session, parent.id, tree.child_name(parent, ref.name))
        if child is None or Action.READ not in rights(session, who, child):
            raise NotFound(f"not found: {ref.name!r} in node {ref.parent_id}")
        node = child
    return node, through(session, who, node)


def resolve(session: Session, who: Principal, ref: Ref, action: Action) -> Node:
    """The node ``ref`` stands for (seen through a share entry), checked for ``action``."""
    return require(session, who, reach(session, who, ref)[1], action)


def resolve_here(session: Session, who: Principal, ref: Ref, action: Action) -> Node:
    """The node ``ref`` names itself, a share entry included (to move or remove the
    entry, not what it stands for), checked for ``action``."""
    return require(session, who, reach(session, who, ref)[0], action)


def resolve_file(session: Session, who: Principal, ref: Ref, action: Action) -> Node:
    """``resolve``, for a file only (NotAFile for a folder)."""
    node = resolve(session, who, ref, action)
    if node.is_folder:
        raise NotAFile(f"{NodeRef.of(ref).label} is a folder")
    return node


def place(session: Session, who: Principal, ref: Ref) -> tuple[Node, str]:
    """The live folder ``ref`` names a member of (seen through a share entry),
    checked for writing, and the member's checked name (a place to create, move
    or copy to; not the root)."""
    ref = NodeRef.of(ref)
    if ref.path is not None:
        parent, leaf = tree.resolve_parent(session, who.user_id, ref.path)
        if Action.READ not in rights(session, who, parent):
            raise NotFound(f"not found: {ref.path}")
    elif ref.parent_id is not None and ref.name is not None:
        parent, leaf = node_by_id(session, who, ref.parent_id, Action.READ), ref.name
    else:
        raise InvalidRequest("a place is named by a path, or a folder id and a name")
    folder = through(session, who, parent)
    return require(session, who, folder, Action.WRITE), tree.child_name(folder, leaf)


def place_and_node(session: Session, who: Principal, ref: Ref) -> tuple[Node, str, Node | None]:
    """The folder ``ref``'s file sits in, its name, and the live node there now
    (None if none; a share entry seen through), checked for writing: the file if
    there is one, else the folder. Where a write lands. A node id names an
    existing file (NotAFile for a folder)."""
    ref = NodeRef.of(ref)
    if ref.path is not None:
        parent, name, existing = tree.resolve_parent_and_child(session, who.user_id, ref.path)
        if Action.READ not in rights(session, who, parent):
            raise NotFound(f"not found: {ref.path}")
        parent = through(session, who, parent)
    elif ref.node_id is not None:
        existing = node_by_id(session, who, ref.node_id, Action.READ)
        if existing.is_folder or existing.parent_id is None:
            raise NotAFile(f"node {existing.id} is a folder")
        parent, name = session.get_one(Node, existing.parent_id), existing.name
    else:
        parent, name = place(session, who, ref)
        existing = tree.live_child(session, parent.id, name)
    if existing is not None:  # writing a file needs WRITE on it, not on its folder
        existing = require(session, who, through(session, who, existing), Action.WRITE)
        if existing.parent_id is not None and existing.parent_id != parent.id:
            parent = session.get_one(Node, existing.parent_id)  # a file entry's target
        return parent, name, existing
    return require(session, who, parent, Action.WRITE), name, existing


def trash_entry(session: Session, who: Principal, entry_id: int, action: Action) -> Node:
    """A trash entry (the top of a trashed subtree) the principal may see and, for
    WRITE, restore: one of their own, or one deleted from a folder of another's
    drive they may write (an editor of a share sees what was deleted in it)."""
    node = session.get(Node, entry_id)
    if node is None or node.trashed_at is None or not may_restore(session, who, node):
        raise NotFound(f"no trash entry {entry_id}")
    return node


def may_restore(session: Session, who: Principal, entry: Node) -> bool:
    """Whether the principal may see and restore a trash entry (see ``trash_entry``)."""
    if entry.owner_id == who.user_id:
        return True
    folder = session.get(Node, entry.trashed_from_id) if entry.trashed_from_id else None
    return folder is not None and Action.WRITE in rights(session, who, folder)


def visible_to(user_id: int | BindParameter[int]) -> ColumnElement[bool]:
    """The SQL condition on ``Node`` of the nodes the user may read (for queries
    over many nodes: chunk authorisation, properties, tree pages): their own, and
    those they see through their share entries (which exist exactly while a
    grant lets them read: ``core.shares.reconcile``)."""
    return (Node.owner_id == user_id) | Node.id.in_(select(entries.seen_through(user_id).c.id))


def visible_among(session: Session, user_id: int, ids: Collection[int]) -> list[int]:
    """Which of ``ids`` the user may read (see ``visible_to``), in one query whose
    cost follows the ids, not everything the user sees."""
    if not ids:
        return []
    up = tree.upward(ids)
    owned = select(Node.id).where(Node.id.in_(list(ids)), Node.owner_id == user_id)
    shared = select(up.c.start).where(up.c.node.in_(entries.targets_of(user_id)))
    return list(session.execute(owned.union(shared)).scalars())


def in_trash_of(user_id: int) -> ColumnElement[bool]:
    """The SQL condition on ``Node`` of the trash entries the user may see, or nearly:
    the tops of the subtrees trashed from their drive, and from folders they see
    through their share entries (``may_restore`` says which of those they may:
    write access to the folder)."""
    seen = select(entries.seen_through(user_id).c.id)
    return Node.trashed_at.is_not(None) & (
        (Node.owner_id == user_id) | Node.trashed_from_id.in_(seen)
    )
