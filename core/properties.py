"""Dead properties (WebDAV's client-defined metadata), stored per node.

Values are opaque bytes to the core (the face stores serialised XML). Sizes
are capped per property and per node, and a property's bytes (its name's
length plus its value's) count toward its owner's quota like file content,
so a client cannot turn metadata into storage outside the quota: set and
removed here, copied with their node (``copy``), freed when it is purged
(``bytes_of``), checked by ``fsck``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, delete, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from core import access, quota
from core.db.models import DeadProperty, Node
from core.errors import InvalidRequest

MAX_NAME = 512
MAX_VALUE = 64 * 1024
MAX_PER_NODE = 256


def get_many(
    session: Session, user_id: int, node_ids: Iterable[int]
) -> dict[int, dict[str, bytes]]:
    """The dead properties of the nodes among ``node_ids`` the user may read, in one
    query per 500."""
    wanted = list(set(node_ids))
    found: dict[int, dict[str, bytes]] = {node_id: {} for node_id in wanted}
    for start in range(0, len(wanted), 500):
        rows = session.execute(
            select(DeadProperty.node_id, DeadProperty.name, DeadProperty.value)
            .join(Node, Node.id == DeadProperty.node_id)
            .where(
                DeadProperty.node_id.in_(wanted[start : start + 500]), access.visible_to(user_id)
            )
        )
        for node_id, name, value in rows:
            found[node_id][name] = value
    return found


def of_folder(session: Session, user_id: int, folder_id: int) -> dict[int, dict[str, bytes]]:
    """The dead properties of a folder and of its children the user may read, in one
    query whatever their number (nodes without any are left out)."""
    rows = session.connection().execute(
        select(DeadProperty.node_id, DeadProperty.name, DeadProperty.value)
        .join(Node, Node.id == DeadProperty.node_id)
        .where(or_(Node.parent_id == folder_id, Node.id == folder_id), access.visible_to(user_id))
    )
    found: dict[int, dict[str, bytes]] = {}
    for node_id, name, value in rows:
        found.setdefault(node_id, {})[name] = value
    return found


def check(changes: dict[str, bytes | None]) -> None:
    for name, value in changes.items():
        if not name or len(name.encode()) > MAX_NAME:
            raise InvalidRequest(f"property name too long (max {MAX_NAME} bytes)")
        if value is not None and len(value) > MAX_VALUE:
            raise InvalidRequest(f"property {name} too large (max {MAX_VALUE} bytes)")


def _size() -> ColumnElement[int]:
    """What one property counts toward the quota, in SQL."""
    return func.coalesce(
        func.sum(func.length(DeadProperty.name) + func.length(DeadProperty.value)), 0
    )


def bytes_of(session: Session, node_ids: list[int]) -> int:
    """The quota bytes the properties of these nodes hold."""
    return int(
        session.execute(select(_size()).where(DeadProperty.node_id.in_(node_ids))).scalar_one()
    )


def bytes_by_owner(session: Session) -> dict[int, int]:
    """The quota bytes properties hold, by their nodes' owner (for ``fsck``)."""
    rows = session.execute(
        select(Node.owner_id, _size())
        .join(Node, Node.id == DeadProperty.node_id)
        .group_by(Node.owner_id)
    )
    return {int(owner): int(total) for owner, total in rows}


def apply(session: Session, owner_id: int, node_id: int, changes: dict[str, bytes | None]) -> None:
    """Set (bytes) or remove (None) properties of one node of ``owner_id``, charging
    the difference to their quota (QuotaExceeded if it does not fit)."""
    check(changes)
    names = list(changes)
    before = int(session.execute(
        select(_size()).where(DeadProperty.node_id == node_id, DeadProperty.name.in_(names))
    ).scalar_one())  # fmt: skip
    after = sum(len(name) + len(value) for name, value in changes.items() if value is not None)
    quota.charge(session, owner_id, after - before)
    session.execute(
        delete(DeadProperty).where(DeadProperty.node_id == node_id, DeadProperty.name.in_(names))
    )
    rows = [
        {"node_id": node_id, "name": k, "value": v} for k, v in changes.items() if v is not None
    ]
    if rows:
        session.execute(insert(DeadProperty), rows)
    count = len(
        session.execute(select(DeadProperty.name).where(DeadProperty.node_id == node_id)).all()
    )
    if count > MAX_PER_NODE:
        raise InvalidRequest(f"too many properties on one resource (max {MAX_PER_NODE})")


def copy(session: Session, source_id: int, target_id: int) -> int:
    """Give the target node the source's properties; return their quota bytes (the
    caller charges them, with the copy's content)."""
    copied = bytes_of(session, [source_id])
    if not copied:
        return 0
    session.execute(
        insert(DeadProperty).from_select(
            ["node_id", "name", "value"],
            select(literal(target_id), DeadProperty.name, DeadProperty.value).where(
                DeadProperty.node_id == source_id
            ),
        )
    )
    return copied
