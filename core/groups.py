"""Groups of users and their members, in a session (``Drive`` opens it).

A group is a name and a set of users; a grant to a group reaches each member
(the access check asks ``group_ids_of``). The rules:

- A group's name follows the rule of user names: 1 to 64 letters, digits,
  ``.``, ``_``, ``@`` or ``-``, starting with a letter or a digit (so no
  control characters, spaces or slashes, and it fits a URL path segment as
  it is). A bad one is ``InvalidName``; a name in use is ``NameTaken``.
- An unknown group is ``NotFound``, an unknown user ``UserNotFound`` (a
  ``NotFound``), naming the first few unknown names.
- Adding and removing members is all or nothing: when any named user is
  unknown (or, on removal, not a member) nothing changes.
- Adding a member twice is no change (the user is a member, as asked).
  Removing a user who is not a member is ``NotFound``: it is almost always
  a mistyped name, and the caller had better hear of it (an HTTP DELETE of
  something not there is a 404 too).
- Removing a group removes its memberships with it; removing a user (the
  database's cascade) removes theirs.
- At most ``MAX_NAMES`` user names per call (``InvalidRequest`` beyond), so
  every statement stays small whatever a caller sends.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Session

from core.db.models import Group, GroupMember, User
from core.errors import InvalidName, InvalidRequest, NameTaken, NotFound, UserNotFound
from core.ids import GroupId, UserId
from core.records import GroupInfo

GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
"""What a group name must match as a whole (``fullmatch``): the rule of user names."""
MAX_NAMES = 1000
"""User names one call may add or remove."""
_SHOWN = 5  # unknown names an error lists


def _shown(name: str) -> str:
    """A name as an error message quotes it: escaped, and cut if long (names come
    from clients, and a message must stay a line)."""
    return repr(name if len(name) <= 70 else name[:64] + "…")


def check_name(name: str) -> None:
    """InvalidName unless ``name`` may name a group."""
    if not GROUP_NAME.fullmatch(name):
        raise InvalidName(
            f"invalid group name {_shown(name)}: 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )


def add_group(session: Session, name: str) -> GroupInfo:
    """A new, empty group called ``name``."""
    check_name(name)
    group = Group(name=name, created_at=time.time())
    session.add(group)
    try:
        with session.begin_nested():
            session.flush()
    except SQLIntegrityError:
        raise NameTaken(f"group {name!r} already exists") from None
    return GroupInfo(id=GroupId(group.id), name=name, created_at=group.created_at, members=())


def group_info(session: Session, name: str) -> GroupInfo:
    """The group called ``name`` with its members."""
    group = _group(session, name)
    return _info(group, _member_names(session, [group.id]).get(group.id, ()))


def list_groups(session: Session) -> list[GroupInfo]:
    """Every group by name, each with its members' names sorted (two queries)."""
    groups = list(session.execute(select(Group).order_by(Group.name)).scalars())
    members = _member_names(session, None)
    return [_info(group, members.get(group.id, ())) for group in groups]


def remove_group(session: Session, name: str) -> None:
    """Remove the group called ``name``; its memberships go with it."""
    group = _group(session, name, for_update=True)
    session.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
    session.execute(delete(Group).where(Group.id == group.id))


def add_members(session: Session, name: str, user_names: Sequence[str]) -> GroupInfo:
    """Make each of ``user_names`` a member of the group (those who are stay);
    nothing changes when any of them is unknown. The group as it is now."""
    group = _group(session, name, for_update=True)
    ids = _user_ids(session, user_names)
    if ids:
        now = time.time()
        rows = [{"group_id": group.id, "user_id": user, "added_at": now} for user in ids.values()]
        postgres = session.get_bind().dialect.name == "postgresql"
        insert = postgresql.insert if postgres else sqlite.insert
        session.execute(insert(GroupMember).on_conflict_do_nothing(), rows)
    return group_info(session, name)


def remove_members(session: Session, name: str, user_names: Sequence[str]) -> GroupInfo:
    """Take each of ``user_names`` out of the group; nothing changes when any of them
    is unknown or not a member (NotFound). The group as it is now."""
    group = _group(session, name, for_update=True)
    ids = _user_ids(session, user_names)
    members = set(
        session.execute(
            select(GroupMember.user_id).where(
                GroupMember.group_id == group.id, GroupMember.user_id.in_(ids.values())
            )
        ).scalars()
    )
    outside = [user for user, user_id in ids.items() if user_id not in members]
    if outside:
        raise NotFound(f"not in group {name!r}: {_listed(outside)}")
    if ids:
        session.execute(
            delete(GroupMember).where(
                GroupMember.group_id == group.id, GroupMember.user_id.in_(ids.values())
            )
        )
    return group_info(session, name)


def group_ids_of(session: Session, user_id: UserId) -> frozenset[GroupId]:
    """The ids of the groups ``user_id`` is a member of (one indexed query)."""
    found = session.execute(select(GroupMember.group_id).where(GroupMember.user_id == user_id))
    return frozenset(GroupId(group_id) for group_id in found.scalars())


def _group(session: Session, name: str, *, for_update: bool = False) -> Group:
    """The group called ``name`` (row-locked on PostgreSQL with ``for_update``, so
    that a concurrent removal waits for a change of its members), or NotFound."""
    if not GROUP_NAME.fullmatch(name):  # no such group can exist: no query
        raise NotFound(f"no group named {_shown(name)}")
    query = select(Group).where(Group.name == name)
    if for_update:
        query = query.with_for_update()
    group = session.execute(query).scalar_one_or_none()
    if group is None:
        raise NotFound(f"no group named {name!r}")
    return group


def _user_ids(session: Session, user_names: Sequence[str]) -> dict[str, int]:
    """The id of each named user, by name (repeats ignored); UserNotFound naming the
    unknown ones, InvalidRequest for more than ``MAX_NAMES``."""
    wanted = list(dict.fromkeys(user_names))
    if len(wanted) > MAX_NAMES:
        raise InvalidRequest(f"at most {MAX_NAMES} users at once, not {len(wanted)}")
    found: dict[str, int] = {}
    if wanted:
        rows = session.execute(select(User.name, User.id).where(User.name.in_(wanted)))
        found = {user_name: user_id for user_name, user_id in rows.tuples()}
    unknown = [user for user in wanted if user not in found]
    if unknown:
        raise UserNotFound(f"no such user: {_listed(unknown)}")
    return found


def _listed(names: list[str]) -> str:
    shown = ", ".join(_shown(name) for name in names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _member_names(session: Session, group_ids: list[int] | None) -> dict[int, tuple[str, ...]]:
    """Member names by group id, each sorted (of every group when ``group_ids`` is None)."""
    query = select(GroupMember.group_id, User.name).join(User, User.id == GroupMember.user_id)
    if group_ids is not None:
        query = query.where(GroupMember.group_id.in_(group_ids))
    members: dict[int, list[str]] = {}
    for group_id, user_name in session.execute(query.order_by(User.name)).tuples():
        members.setdefault(group_id, []).append(user_name)
    return {group_id: tuple(names) for group_id, names in members.items()}


def _info(group: Group, members: tuple[str, ...]) -> GroupInfo:
    return GroupInfo(
        id=GroupId(group.id), name=group.name, created_at=group.created_at, members=members
    )
