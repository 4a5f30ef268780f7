"""Shares: grants of a node (and everything below it) to a user or a group, and
the entries that show each received share in its recipient's tree.

The rules (``core.access`` applies the grants at every check):

- Whoever may share a node (its owner, or a recipient whose grant allows
  resharing) grants a role on it, ``viewer`` or ``editor``, to one user or
  one group, never beyond what they hold themselves (Forbidden). A node has
  at most one grant per user and one per group (a second is a Conflict:
  update it instead); the grantee is never the node's owner nor the granter.
- A grant is updated or removed by its granter or by the node's owner; an
  update makes the updater its granter, checked against their rights. By its
  id (the sync API), a grant exists only for those two: for anyone else it
  is NotFound, as an id no grant has.
- Not shareable: a drive's root, a node in the trash (NotFound), a share
  entry itself (the shared node is shared, through the entry).
- Entries: every user who may read a shared node and cannot already reach
  it through another share has one entry for it in their own tree, at the
  top, named after the node (`` (2)`` on a clash). ``reconcile`` keeps that
  true for one user and one owner's drive after anything that changes who
  reaches what, so a node appears at one place in a user's tree.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, aliased

from core import access, entries, journal, tree, treeops
from core.access import ROLES, Action, Principal
from core.commit import new_node
from core.db.models import Group, GroupMember, Node, Share, User
from core.errors import Conflict, Forbidden, InvalidRequest, NotFound, UserNotFound
from core.ids import NodeId
from core.records import ShareInfo
from core.refs import Ref
from core.trash import free_name


def add(
    session: Session,
    who: Principal,
    ref: Ref,
    *,
    user: str | None = None,
    group: str | None = None,
    role: str = "viewer",
    reshare: bool = False,
) -> ShareInfo:
    """Grant ``role`` on the node ``ref`` names to ``user`` or ``group``."""
    journal.lock_user(session, who.user_id)
    node = _shareable(session, who, ref)
    user_id, group_id = _grantee(session, who, node, user, group)
    _check_role(session, who, node, role)
    if _grant(session, node.id, user_id, group_id) is not None:
        raise Conflict(f"{_label(user, group)} has a share of this already: update it instead")
    share = Share(
        node_id=node.id, owner_id=node.owner_id, granted_by=who.user_id, user_id=user_id,
        group_id=group_id, role=role, reshare=reshare, created_at=time.time(),
    )  # fmt: skip
    session.add(share)
    session.flush()
    entries.forget_sharing(session)
    reconcile_owner(session, node.owner_id)
    return _info(session, share)


def update(
    session: Session,
    who: Principal,
    ref: Ref,
    *,
    user: str | None = None,
    group: str | None = None,
    role: str | None = None,
    reshare: bool | None = None,
) -> ShareInfo:
    """Change the role or the reshare right of a grant (its granter or the owner)."""
    journal.lock_user(session, who.user_id)
    node = _shareable(session, who, ref, action=Action.READ)
    share = _own_grant(session, who, node, user, group)
    return _change(session, who, node, share, role=role, reshare=reshare)


def update_by_id(
    session: Session,
    who: Principal,
    share_id: int,
    *,
    role: str | None = None,
    reshare: bool | None = None,
) -> ShareInfo:
    """``update``, for the grant with that id (NotFound unless the principal made
    it or owns its node). The grant stays visible by its id whatever becomes of
    its node, so a node in the trash is a Conflict and one the principal may no
    longer read Forbidden (they know of it: they made the grant)."""
    journal.lock_user(session, who.user_id)
    share = _made_by(session, who, share_id)
    node = session.get_one(Node, share.node_id)
    if not tree.is_live(session, node.id):
        raise Conflict(f"node {node.id} is in the trash: restore it first, or remove the share")
    if Action.READ not in access.rights(session, who, node):
        raise Forbidden(f"you may no longer read node {node.id}: remove the share instead")
    return _change(session, who, node, share, role=role, reshare=reshare)


def _change(
    session: Session,
    who: Principal,
    node: Node,
    share: Share,
    *,
    role: str | None,
    reshare: bool | None,
) -> ShareInfo:
    role = share.role if role is None else role
    reshare = share.reshare if reshare is None else reshare
    _check_role(session, who, node, role)
    share.role, share.reshare, share.granted_by = role, reshare, who.user_id
    session.flush()
    reconcile_owner(session, node.owner_id)
    return _info(session, share)


def remove(
    session: Session, who: Principal, ref: Ref, *, user: str | None = None, group: str | None = None
) -> None:
    """Revoke a grant (its granter or the owner); it takes effect at the next check."""
    journal.lock_user(session, who.user_id)
    node = _shareable(session, who, ref, action=Action.READ)
    _drop(session, _own_grant(session, who, node, user, group))


def remove_by_id(session: Session, who: Principal, share_id: int) -> None:
    """``remove``, for the grant with that id (NotFound unless the principal made it
    or owns its node; a granter who lost the node may still drop their grant)."""
    journal.lock_user(session, who.user_id)
    _drop(session, _made_by(session, who, share_id))


def _drop(session: Session, share: Share) -> None:
    session.execute(delete(Share).where(Share.id == share.id))
    entries.forget_sharing(session)
    reconcile_owner(session, share.owner_id)


def by_id(session: Session, who: Principal, share_id: int) -> ShareInfo:
    """The grant with that id, if the principal made it or owns its node (NotFound
    otherwise, exactly as for an id no grant has: an id reveals nothing)."""
    return _info(session, _made_by(session, who, share_id))


def _made_by(session: Session, who: Principal, share_id: int) -> Share:
    share = session.get(Share, share_id)
    if share is None or who.user_id not in (share.granted_by, share.owner_id):
        raise NotFound(f"no share {share_id} that you made")
    return share


def of_node(session: Session, who: Principal, ref: Ref) -> list[ShareInfo]:
    """Who has access to the node ``ref`` names, by the grants on it and above it
    (what the principal may see: they must be able to read it)."""
    node = access.resolve(session, who, ref, Action.READ)
    up = tree.upward([node.id])
    shares = session.execute(
        select(Share).where(Share.node_id.in_(select(up.c.node))).order_by(Share.id)
    ).scalars()
    return [_info(session, share) for share in shares]


def given(session: Session, user_id: int) -> list[ShareInfo]:
    """The grants the user made, or that others made on the user's nodes."""
    shares = session.execute(
        select(Share)
        .where((Share.granted_by == user_id) | (Share.owner_id == user_id))
        .order_by(Share.id)
    ).scalars()
    return [_info(session, share) for share in shares]


def received(session: Session, user_id: int) -> list[ShareInfo]:
    """The grants that reach the user, to them or to one of their groups."""
    groups = select(GroupMember.group_id).where(GroupMember.user_id == user_id)
    shares = session.execute(
        select(Share)
        .where((Share.user_id == user_id) | Share.group_id.in_(groups))
        .order_by(Share.id)
    ).scalars()
    return [_info(session, share) for share in shares]


def reconcile(session: Session, user_id: int, owner_id: int) -> None:
    """Make the user's entries for ``owner_id``'s drive what the grants say: one at
    the top of their tree for each shared node they may read and cannot reach
    through another of the owner's nodes they may read; none for anything else."""
    if user_id == owner_id:
        return
    who = access.principal(user_id)
    groups = select(GroupMember.group_id).where(GroupMember.user_id == user_id)
    roots = session.execute(
        select(Node)
        .join(Share, Share.node_id == Node.id)
        .where(Share.owner_id == owner_id)
        .where((Share.user_id == user_id) | Share.group_id.in_(groups))
        .distinct()
    ).scalars()
    wanted: dict[int, Node] = {}
    for node in roots:
        if node.trashed_at is not None or not tree.is_live(session, node.id):
            continue
        if Action.READ not in access.rights(session, who, node):
            continue
        parent = session.get(Node, node.parent_id) if node.parent_id is not None else None
        if parent is not None and Action.READ in access.rights(session, who, parent):
            continue  # reached through the share of a folder above it
        wanted[node.id] = node
    entries = session.execute(
        select(Node).where(Node.owner_id == user_id, Node.target_id.is_not(None))
    ).scalars()
    have: dict[int, Node] = {}
    for entry in entries:
        assert entry.target_id is not None
        target = session.get(Node, entry.target_id)
        if target is not None and target.owner_id == owner_id:
            have[entry.target_id] = entry
    for target_id, entry in have.items():
        if target_id not in wanted:
            treeops.purge_nodes(session, entry)
    if wanted.keys() - have.keys():
        root = tree.user_root(session, user_id)
        for target_id in sorted(wanted.keys() - have.keys()):
            _add_entry(session, root, wanted[target_id])


def _add_entry(session: Session, root: Node, target: Node) -> Node:
    name = free_name(session, root.id, target.name)
    entry = new_node(session, root, name, is_folder=target.is_folder, mtime_ns=None)
    entry.target_id = target.id
    session.flush()
    journal.append(session, entry, journal.CREATE)
    journal.arrived(session, root.owner_id, target, entry.id)
    return entry


def reconcile_owner(session: Session, owner_id: int) -> None:
    """``reconcile`` every user a grant in ``owner_id``'s drive reaches, and every user
    with an entry for it: a change of one grant can change what the reshares
    derived from it give (so far costs grow with the owner's grants, not the drive)."""
    members_of_groups = select(GroupMember.user_id).where(
        GroupMember.group_id.in_(select(Share.group_id).where(Share.owner_id == owner_id))
    )
    direct = select(Share.user_id).where(Share.owner_id == owner_id, Share.user_id.is_not(None))
    target = aliased(Node)
    with_entries = (
        select(Node.owner_id)
        .join(target, target.id == Node.target_id)
        .where(target.owner_id == owner_id)
    )
    found = session.execute(direct.union(members_of_groups, with_entries)).scalars()
    for user in sorted(user for user in found if user is not None):
        journal.lock_user(session, user)
        reconcile(session, user, owner_id)


def reconcile_members(
    session: Session, user_names: Iterable[str], owner_ids: Iterable[int]
) -> None:
    """``reconcile`` the named users' entries for each of ``owner_ids``' drives
    (after a change of group membership)."""
    owners = sorted(set(owner_ids))
    if not owners:
        return
    users = session.execute(select(User.id).where(User.name.in_(list(user_names)))).scalars()
    for user in sorted(users):
        journal.lock_user(session, user)
        for owner in owners:
            reconcile(session, user, owner)


def owners_sharing_with_group(session: Session, group_id: int) -> list[int]:
    """The owners whose nodes are shared with the group (to reconcile its members)."""
    rows = session.execute(
        select(Share.owner_id).where(Share.group_id == group_id).distinct()
    ).scalars()
    return sorted(rows)


def _shareable(
    session: Session, who: Principal, ref: Ref, *, action: Action = Action.SHARE
) -> Node:
    node = access.resolve(session, who, ref, Action.READ)
    if node.parent_id is None:
        raise InvalidRequest("a drive's root cannot be shared: share a folder in it")
    if action is Action.SHARE and Action.SHARE not in access.rights(session, who, node):
        raise Forbidden(f"you may not share {node.name!r}: it was shared with you without reshare")
    return access.require(session, who, node, action)


def _grantee(
    session: Session, who: Principal, node: Node, user: str | None, group: str | None
) -> tuple[int | None, int | None]:
    """(user id, group id) of the grantee named, exactly one of them."""
    if (user is None) == (group is None):
        raise InvalidRequest("share with one user or one group")
    if group is not None:
        found = session.execute(select(Group.id).where(Group.name == group)).scalar_one_or_none()
        if found is None:
            raise NotFound(f"no group named {group!r}")
        return None, int(found)
    assert user is not None
    user_id = session.execute(select(User.id).where(User.name == user)).scalar_one_or_none()
    if user_id is None:
        raise UserNotFound(f"no user named {user!r}")
    if user_id == who.user_id:
        raise InvalidRequest("you cannot share with yourself")
    if user_id == node.owner_id:
        raise InvalidRequest(f"{user} owns it already")
    return int(user_id), None


def _check_role(session: Session, who: Principal, node: Node, role: str) -> None:
    """Raise unless the principal may grant ``role`` on ``node`` (sharing onward
    needs no more than sharing: a granter holds SHARE)."""
    gives = ROLES.get(role)
    if gives is None:
        raise InvalidRequest(f"role is one of {', '.join(ROLES)}, not {role[:40]!r}")
    held = access.rights(session, who, node)
    if Action.SHARE not in held:
        raise Forbidden("you may not share this")
    if not gives <= held:
        raise Forbidden(f"you cannot grant {role}: it is more than you hold")


def _grant(
    session: Session, node_id: int, user_id: int | None, group_id: int | None
) -> Share | None:
    query = select(Share).where(Share.node_id == node_id)
    if user_id is not None:
        query = query.where(Share.user_id == user_id)
    else:
        query = query.where(Share.group_id == group_id)
    return session.execute(query).scalar_one_or_none()


def _own_grant(
    session: Session, who: Principal, node: Node, user: str | None, group: str | None
) -> Share:
    """The grant on ``node`` to the grantee named, if the principal made it or owns
    the node; NotFound otherwise (as if there were none)."""
    if (user is None) == (group is None):
        raise InvalidRequest("name one user or one group")
    user_id = group_id = None
    if user is not None:
        user_id = session.execute(select(User.id).where(User.name == user)).scalar_one_or_none()
    else:
        group_id = session.execute(select(Group.id).where(Group.name == group)).scalar_one_or_none()
    share = None
    if user_id is not None or group_id is not None:
        share = _grant(session, node.id, user_id, group_id)
    if share is None or who.user_id not in (share.granted_by, share.owner_id):
        raise NotFound(f"no share of this with {_label(user, group)} that you made")
    return share


def _label(user: str | None, group: str | None) -> str:
    return f"user {user!r}" if user is not None else f"group {group!r}"


def _info(session: Session, share: Share) -> ShareInfo:
    wanted = [share.owner_id, share.granted_by, share.user_id or 0]
    rows = session.execute(select(User.id, User.name).where(User.id.in_(wanted))).tuples()
    names = {user_id: name for user_id, name in rows}
    group = None
    if share.group_id is not None:
        group = session.execute(select(Group.name).where(Group.id == share.group_id)).scalar_one()
    return ShareInfo(
        id=share.id,
        node_id=NodeId(share.node_id),
        path=tree.path_of(session, share.node_id),
        owner=names.get(share.owner_id, "?"),
        granted_by=names.get(share.granted_by, "?"),
        user=names.get(share.user_id) if share.user_id is not None else None,
        group=group,
        role=share.role,
        reshare=share.reshare,
        created_at=share.created_at,
    )
