"""Reading the tree inside a transaction: path resolution, ancestry, listings.

Every function takes the caller's SQLAlchemy session, so a mutation can
resolve, check and change the tree in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Select, literal, select
from sqlalchemy.orm import Session

from core.db.models import Manifest, Node, User, Version
from core.errors import NotAFolder, NotFound
from core.ids import NodeId, VersionId
from core.names import join_path, split_path
from core.records import NodeInfo


def user_root(session: Session, user_id: int) -> Node:
    root_id = session.execute(select(User.root_id).where(User.id == user_id)).scalar_one()
    return session.get_one(Node, root_id)


def live_child(session: Session, parent_id: int, name: str) -> Node | None:
    return session.execute(
        select(Node).where(
            Node.parent_id == parent_id, Node.name == name, Node.trashed_at.is_(None)
        )
    ).scalar_one_or_none()


def resolve(session: Session, user_id: int, path: str) -> Node:
    """The live node at ``path`` in the user's drive, or NotFound."""
    node = user_root(session, user_id)
    walked: list[str] = []
    for name in split_path(path):
        if not node.is_folder:
            raise NotFound(
                f"not found: {join_path([*walked, name])} ({join_path(walked)} is a file)"
            )
        child = live_child(session, node.id, name)
        walked.append(name)
        if child is None:
            raise NotFound(f"not found: {join_path(walked)}")
        node = child
    return node


def resolve_parent(session: Session, user_id: int, path: str) -> tuple[Node, str]:
    """The live folder that holds ``path``, and the (normalised) leaf name."""
    names = split_path(path)
    if not names:
        raise NotFound("the root folder has no parent")
    parent = resolve(session, user_id, join_path(names[:-1]))
    if not parent.is_folder:
        raise NotAFolder(f"not a folder: {join_path(names[:-1])}")
    return parent, names[-1]


def ancestry(session: Session, node_id: int) -> Sequence[Row[tuple[int, str, float | None]]]:
    """(id, name, trashed_at) from the root down to ``node_id`` (one recursive query)."""
    up = (
        select(Node.id, Node.parent_id, Node.name, Node.trashed_at, literal(0).label("depth"))
        .where(Node.id == node_id)
        .cte("up", recursive=True)
    )
    up = up.union_all(
        select(Node.id, Node.parent_id, Node.name, Node.trashed_at, up.c.depth + 1).where(
            Node.id == up.c.parent_id
        )
    )
    return session.execute(
        select(up.c.id, up.c.name, up.c.trashed_at).order_by(up.c.depth.desc())
    ).all()


def path_of(session: Session, node_id: int) -> str:
    """The drive path of a node (its place even when it sits inside the trash)."""
    return join_path([row.name for row in ancestry(session, node_id)][1:])


def is_live(session: Session, node_id: int) -> bool:
    """True when neither the node nor any ancestor is in the trash."""
    return all(row.trashed_at is None for row in ancestry(session, node_id))


def subtree_ids(session: Session, node_id: int) -> list[int]:
    """The node and everything below it (one recursive query)."""
    down = select(Node.id).where(Node.id == node_id).cte("down", recursive=True)
    down = down.union_all(select(Node.id).where(Node.parent_id == down.c.id))
    return list(session.execute(select(down.c.id)).scalars())


def _info_query() -> Select[Any]:
    return (
        select(Node, Version.number, Manifest.sha256)
        .outerjoin(Version, Version.id == Node.current_version_id)
        .outerjoin(Manifest, Manifest.id == Version.manifest_id)
    )


def _to_info(node: Node, number: int | None, sha256: str | None) -> NodeInfo:
    return NodeInfo(
        id=NodeId(node.id),
        parent_id=NodeId(node.parent_id) if node.parent_id is not None else None,
        name=node.name,
        is_folder=node.is_folder,
        size=node.size,
        mtime_ns=node.mtime_ns,
        created_at=node.created_at,
        version_id=VersionId(node.current_version_id) if node.current_version_id else None,
        version_number=number,
        sha256=sha256,
    )


def info(session: Session, node_id: int) -> NodeInfo:
    row = session.execute(_info_query().where(Node.id == node_id)).one()
    return _to_info(*row)


def list_children(session: Session, folder: Node) -> list[NodeInfo]:
    """The live children of a folder, by name, in one query."""
    if not folder.is_folder:
        raise NotAFolder(f"not a folder: {folder.name}")
    rows = session.execute(
        _info_query()
        .where(Node.parent_id == folder.id, Node.trashed_at.is_(None))
        .order_by(Node.name)
    ).all()
    return [_to_info(*row) for row in rows]
