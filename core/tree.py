"""Reading the tree inside a transaction: path resolution, ancestry, listings.

Every function takes the caller's SQLAlchemy session, so a mutation can
resolve, check and change the tree in one transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Row, Select, bindparam, literal, select
from sqlalchemy.orm import Session, aliased

from core import pathwalk
from core.db.models import Manifest, Node, User, Version
from core.errors import InvalidName, NotAFolder, NotFound
from core.names import RESERVED_AT_ROOT, join_path, normalize_name, split_path
from core.records import NodeInfo


def root_id(session: Session, user_id: int) -> int:
    root = session.execute(select(User.root_id).where(User.id == user_id)).scalar_one_or_none()
    if root is None:
        raise NotFound(f"no user with id {user_id}")
    return int(root)


def user_root(session: Session, user_id: int) -> Node:
    return session.get_one(Node, root_id(session, user_id))


def live_child(session: Session, parent_id: int, name: str) -> Node | None:
    return session.execute(
        select(Node).where(
            Node.parent_id == parent_id, Node.name == name, Node.trashed_at.is_(None)
        )
    ).scalar_one_or_none()


@functools.cache  # two statements: from a user's root, or from a node
def _walk_query(*, from_root: bool) -> Select[tuple[Node]]:
    """SELECT the live node reached along :names from :start, or from the root of :user
    (``core.pathwalk``). Built once: building it costs more than running it."""
    return select(Node).where(Node.id == pathwalk.target(from_root=from_root))


def walk(session: Session, start: int, names: list[str]) -> Node | None:
    """The live node at ``names`` below ``start``, in one query."""
    query = _walk_query(from_root=False)
    return session.execute(query, pathwalk.params(names, start=start)).scalar_one_or_none()


def resolve(session: Session, user_id: int, path: str) -> Node:
    """The live node at ``path`` in the user's drive, or NotFound (one query when found)."""
    names = split_path(path)
    query = _walk_query(from_root=True)
    node = session.execute(query, pathwalk.params(names, user=user_id)).scalar_one_or_none()
    if node is not None:
        return node
    raise _not_found(session, user_id, names, path)


@functools.cache  # one statement
def _stat_query() -> Select[Any]:
    """Like ``_walk_query`` from a user's root, but SELECTing a ``NodeInfo``'s columns."""
    return info_query().where(Node.id == pathwalk.target(from_root=True))


def find(session: Session, user_id: int, path: str) -> NodeInfo | None:
    """The ``NodeInfo`` of the live node at ``path``, or None, in one query."""
    params = pathwalk.params(split_path(path), user=user_id)
    row = session.execute(_stat_query(), params).one_or_none()
    return to_info(row) if row is not None else None


def stat(session: Session, user_id: int, path: str) -> NodeInfo:
    """The ``NodeInfo`` of the live node at ``path``, or NotFound saying what is missing."""
    found = find(session, user_id, path)
    if found is None:
        raise _not_found(session, user_id, split_path(path), path)
    return found


def _not_found(session: Session, user_id: int, names: list[str], path: str) -> NotFound:
    """Say which part of the path is missing: the longest prefix that exists is found
    by bisection (a query per step), then what stops the walk below it."""
    found, below = 0, user_root(session, user_id)
    missing = len(names)  # names[:missing] is known not to exist as a live path
    while missing - found > 1:
        middle = (found + missing) // 2
        node = walk(session, below.id, names[found:middle])
        if node is None:
            missing = middle
        else:
            found, below = middle, node
    walked = names[:found]
    if found == len(names):
        return NotFound(f"not found: {path}")
    reason = "" if below.is_folder else f" ({join_path(walked)} is a file)"
    return NotFound(f"not found: {join_path([*walked, names[found]])}{reason}")


def resolve_parent(session: Session, user_id: int, path: str) -> tuple[Node, str]:
    """The live folder that holds ``path``, and the (normalised) leaf name."""
    names = split_path(path)
    if not names:
        raise NotFound("the root folder has no parent")
    parent = resolve(session, user_id, join_path(names[:-1]))
    if not parent.is_folder:
        raise NotAFolder(f"not a folder: {join_path(names[:-1])}")
    return parent, child_name(parent, names[-1])


@functools.cache  # one statement
def _parent_and_child_query() -> Select[Any]:
    """The node reached along :names from the root of :user, with its live child named
    :leaf (or None) beside it, in one query."""
    parent = aliased(Node, _walk_query(from_root=True).subquery())
    child = aliased(Node)
    return select(parent, child).outerjoin(
        child,
        (child.parent_id == parent.id)
        & (child.name == bindparam("leaf"))
        & child.trashed_at.is_(None),
    )


def resolve_parent_and_child(
    session: Session, user_id: int, path: str
) -> tuple[Node, str, Node | None]:
    """``resolve_parent`` and the live node at ``path`` (None if there is none), in one
    query when the folder exists; the same errors, in the same order."""
    names = split_path(path)
    try:
        leaf = normalize_name(names[-1]) if names else None
    except InvalidName:
        leaf = None
    if leaf is None:  # let the step-by-step path say what is wrong
        parent, name = resolve_parent(session, user_id, path)
        return parent, name, live_child(session, parent.id, name)
    params = {**pathwalk.params(names[:-1], user=user_id), "leaf": leaf}
    row = session.execute(_parent_and_child_query(), params).one_or_none()
    if row is None:
        parent_path = join_path(names[:-1])
        raise _not_found(session, user_id, names[:-1], parent_path)
    parent, child = row
    if not parent.is_folder:
        raise NotAFolder(f"not a folder: {join_path(names[:-1])}")
    return parent, child_name(parent, names[-1]), child


def child_name(parent: Node, name: str) -> str:
    """``name`` checked and normalised for a member of ``parent`` (NotAFolder if a file)."""
    if not parent.is_folder:
        raise NotAFolder(f"{parent.name!r} is not a folder")
    name = normalize_name(name)
    if parent.parent_id is None and parent.trashed_at is None and name in RESERVED_AT_ROOT:
        raise InvalidName(f"{name!r} is reserved at the top of a drive")
    return name


def ancestry(session: Session, node_id: int) -> Sequence[Row[tuple[int, str, float | None]]]:
    """(id, name, trashed_at) from the root down to ``node_id`` (one recursive query)."""
    return session.execute(_ANCESTRY, {"node_id": node_id}).all()


def _ancestry_query() -> Select[tuple[int, str, float | None]]:
    up = (
        select(Node.id, Node.parent_id, Node.name, Node.trashed_at, literal(0).label("depth"))
        .where(Node.id == bindparam("node_id"))
        .cte("up", recursive=True)
    )
    up = up.union_all(
        select(Node.id, Node.parent_id, Node.name, Node.trashed_at, up.c.depth + 1).where(
            Node.id == up.c.parent_id
        )
    )
    return select(up.c.id, up.c.name, up.c.trashed_at).order_by(up.c.depth.desc())


# Built once, as _INFO_BY_ID below: most writes and lookups by id walk up once.
_ANCESTRY = _ancestry_query()


def path_of(session: Session, node_id: int) -> str:
    """The drive path of a node (its place even when it sits inside the trash)."""
    return join_path([row.name for row in ancestry(session, node_id)][1:])


def is_live(session: Session, node_id: int) -> bool:
    """True when neither the node nor any ancestor is in the trash."""
    return all(row.trashed_at is None for row in ancestry(session, node_id))


def upward(starts: Select[Any] | Collection[int]) -> Any:
    """A recursive CTE of (start, node) for every node in ``starts`` (a SELECT of ids)
    and each of its ancestors, itself included; walks stop at a node with no parent."""
    wanted = starts if isinstance(starts, Select) else list(starts)
    up = (
        select(Node.id.label("start"), Node.id.label("node"), Node.parent_id.label("parent"))
        .where(Node.id.in_(wanted))
        .cte("upward", recursive=True)
    )
    return up.union_all(select(up.c.start, Node.id, Node.parent_id).where(Node.id == up.c.parent))


def live_among(session: Session, user_id: int, ids: Select[Any] | Collection[int]) -> set[int]:
    """Which nodes of ``ids`` (ids, or a SELECT of them) are in the user's live tree:
    their walk up reaches the root (a trashed subtree hangs from a detached node)."""
    up = upward(ids)
    rows = session.execute(
        select(up.c.start).where(up.c.node == root_id(session, user_id)).distinct()
    ).scalars()
    return set(rows)


def subtree_ids(session: Session, node_id: int) -> list[int]:
    """The node and everything below it (one recursive query)."""
    down = select(Node.id).where(Node.id == node_id).cte("down", recursive=True)
    down = down.union_all(select(Node.id).where(Node.parent_id == down.c.id))
    return list(session.execute(select(down.c.id)).scalars())


def info_query() -> Select[Any]:
    """SELECT the columns of a ``NodeInfo`` (plain rows: building ORM objects for a
    listing of 10,000 members would cost more than the query)."""
    return (
        select(
            Node.id,
            Node.parent_id,
            Node.name,
            Node.is_folder,
            Node.size,
            Node.mtime_ns,
            Node.created_at,
            Node.current_version_id,
            Version.number,
            Manifest.sha256,
            Version.manifest_id,
        )
        .outerjoin(Version, Version.id == Node.current_version_id)
        .outerjoin(Manifest, Manifest.id == Version.manifest_id)
    )


def to_info(row: Row[Any]) -> NodeInfo:
    """A row of ``info_query`` as a ``NodeInfo``."""
    (
        node_id,
        parent_id,
        name,
        is_folder,
        size,
        mtime_ns,
        created_at,
        version_id,
        number,
        sha,
        mid,
    ) = row
    return NodeInfo(
        id=node_id,
        parent_id=parent_id,
        name=name,
        is_folder=is_folder,
        size=size,
        mtime_ns=mtime_ns,
        created_at=created_at,
        version_id=version_id or None,
        version_number=number,
        sha256=sha,
        manifest_id=mid,
    )


def info(session: Session, node_id: int) -> NodeInfo:
    row = session.execute(_INFO_BY_ID, {"node_id": node_id}).one()
    return to_info(row)


# Built once: every write ends with this query, and building it (and its cache
# key) each time cost more than running it.
_INFO_BY_ID = info_query().where(Node.id == bindparam("node_id"))


def infos(session: Session, ids: Select[Any] | Collection[int]) -> list[NodeInfo]:
    """The nodes with these ids (ids, or a SELECT of them), in id order, in one query."""
    wanted = ids if isinstance(ids, Select) else list(ids)
    rows = session.execute(info_query().where(Node.id.in_(wanted)).order_by(Node.id)).all()
    return [to_info(row) for row in rows]


def list_children(session: Session, folder: Node) -> list[NodeInfo]:
    """The live children of a folder, by name, in one query."""
    if not folder.is_folder:
        raise NotAFolder(f"not a folder: {folder.name}")
    # On the connection, not the session: the ORM's row loading would take twice
    # as long as the query for a large folder, for plain column rows.
    rows = session.connection().execute(
        info_query()
        .where(Node.parent_id == folder.id, Node.trashed_at.is_(None))
        .order_by(Node.name)
    )
    return [to_info(row) for row in rows]
