"""A file's history: listing, reading, restoring and pruning versions.

Restoring makes a new version that points at the old version's manifest:
no byte is copied and the history only grows. The restored file changed now,
so its new version's modification time is now (as on other drives), while
the old version keeps its own time in the list; a copy of an old version
elsewhere keeps that version's time, as copies do.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cdc.chunking import ChunkRef
from core import journal, quota, segments, tree
from core.commit import add_version, new_node
from core.db.models import Manifest, Node, User, Version
from core.errors import NameTaken, NotFound
from core.ids import VersionId
from core.records import VersionInfo
from core.retention import versions_to_drop
from core.settings import RetentionPolicy
from core.treeops import delete_unused_manifests, trash

MAX_VERSION_NUMBER = 2**31 - 1  # versions.number is an INTEGER column


def list_versions(session: Session, node: Node, only: int | None = None) -> list[VersionInfo]:
    """The file's versions by number (``only``: just the version with that id)."""
    query = (
        select(Version, Manifest.size, Manifest.sha256, User.name)
        .join(Manifest, Manifest.id == Version.manifest_id)
        .outerjoin(User, User.id == Version.author_id)
        .where(Version.node_id == node.id)
        .order_by(Version.number)
    )
    if only is not None:
        query = query.where(Version.id == only)
    rows = session.execute(query).all()
    return [
        VersionInfo(
            id=VersionId(version.id),
            number=version.number,
            size=size,
            sha256=sha256,
            created_at=version.created_at,
            mtime_ns=version.mtime_ns,
            origin=version.origin,
            author=author,
            is_current=version.id == node.current_version_id,
            manifest_id=version.manifest_id,
        )
        for version, size, sha256, author in rows
    ]


def version_by_number(session: Session, node: Node, number: int | None) -> Version:
    """The numbered version of ``node``, or its current one for None."""
    if number is None:
        if node.current_version_id is None:
            raise NotFound(f"{node.name} has no content")
        return session.get_one(Version, node.current_version_id)
    if not 1 <= number <= MAX_VERSION_NUMBER:  # no such version, and PostgreSQL would overflow
        raise NotFound(f"{node.name} has no version {number}")
    version = session.execute(
        select(Version).where(Version.node_id == node.id, Version.number == number)
    ).scalar_one_or_none()
    if version is None:
        raise NotFound(f"{node.name} has no version {number}")
    return version


def manifest_refs(session: Session, manifest_id: int) -> tuple[list[ChunkRef], int]:
    """The chunk list and size of a manifest."""
    size = session.execute(select(Manifest.size).where(Manifest.id == manifest_id)).scalar_one()
    return segments.entries(session, manifest_id), size


def restore_node_version(session: Session, node: Node, number: int) -> Node:
    """Make version ``number`` of a file the caller found (and row-locked its owner
    for) current again, as a new version sharing its manifest."""
    old = version_by_number(session, node, number)
    return _version_into(session, node, old, node, origin="restore", mtime_ns=None)


def copy_version_to(
    session: Session,
    node: Node,
    number: int,
    parent: Node,
    name: str,
    *,
    overwrite: bool,
    mtime_ns: int | None = None,
) -> Node:
    """Copy version ``number`` of the file ``node`` into ``parent`` as ``name``, sharing
    its manifest (no bytes copied); the caller resolved and checked both.

    Onto the file itself it is a restore; over another file (with ``overwrite``)
    a new version of that file; a folder in the way goes to the trash; anywhere
    else a new file. WebDAV's COPY out of ``/.versions`` lands here.
    ``mtime_ns``: the new version's modification time; by default now for a
    restore and the old version's own for a copy elsewhere.
    """
    old = version_by_number(session, node, number)
    target = tree.live_child(session, parent.id, name)
    if target is not None and target.id != node.id:
        if not overwrite:
            raise NameTaken(f"{tree.path_of(session, target.id)} already exists")
        if target.is_folder:
            trash(session, target, tree.path_of(session, target.id))
            target = None
    restoring = target is not None and target.id == node.id
    if mtime_ns is None and not restoring:
        mtime_ns = old.mtime_ns
    if target is None:
        target = new_node(session, parent, name, is_folder=False, mtime_ns=mtime_ns)
        return _version_into(
            session, node, old, target, origin="copy", mtime_ns=mtime_ns, created=True
        )
    origin = "restore" if restoring else "copy"
    return _version_into(session, node, old, target, origin=origin, mtime_ns=mtime_ns)


def _version_into(
    session: Session,
    node: Node,
    old: Version,
    target: Node,
    *,
    origin: str,
    mtime_ns: int | None,
    created: bool = False,
) -> Node:
    """Make ``old`` (a version of ``node``) the new current version of ``target``,
    modified at ``mtime_ns`` (None: now)."""
    size = session.execute(select(Manifest.size).where(Manifest.id == old.manifest_id)).scalar_one()
    quota.charge(session, target.owner_id, size - target.size)
    add_version(
        session,
        target,
        old.manifest_id,
        size,
        author_id=node.owner_id,
        origin=origin,
        mtime_ns=mtime_ns,
    )
    journal.append(session, target, journal.CREATE if created else journal.UPDATE)
    return target


def prune(
    session: Session, policy: RetentionPolicy, *, dry_run: bool, now: float | None = None
) -> int:
    """Apply the retention policy to every file; return how many versions go (or would)."""
    now = time.time() if now is None else now
    candidates = session.execute(
        select(Version.node_id, Version.id, Version.created_at, Node.current_version_id)
        .join(Node, Node.id == Version.node_id)
        .order_by(Version.node_id)
    ).all()
    per_node: dict[int, list[tuple[int, float]]] = {}
    current: dict[int, int | None] = {}
    for node_id, version_id, created_at, current_id in candidates:
        per_node.setdefault(node_id, []).append((version_id, created_at))
        current[node_id] = current_id
    doomed: list[int] = []
    for node_id, versions in per_node.items():
        doomed.extend(versions_to_drop(versions, current[node_id], now, policy))
    if not dry_run:
        for start in range(0, len(doomed), 500):
            part = doomed[start : start + 500]
            manifests = set(
                session.execute(select(Version.manifest_id).where(Version.id.in_(part))).scalars()
            )
            session.execute(delete(Version).where(Version.id.in_(part)))
            delete_unused_manifests(session, manifests)
    return len(doomed)
