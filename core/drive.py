"""``Drive``: the drive service, the one API both faces call.

``Drive.open(settings)`` is the composition root of the core: it opens the
database (migrating a fresh one), the chunk store and the collector lock.
Every method is one or a few short transactions. Tree operations name their
nodes by ``Ref``: a drive path (``/a/b.txt``, inside the principal's own
drive) or a ``NodeRef`` (a node id, or a folder id and a name), and act for
a ``Principal`` (or a plain user id); ``core.access`` resolves and checks
every one, so one user can never reach another's nodes, whatever path or id
they send.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence
from types import TracebackType

from sqlalchemy import select

from core import (
    access,
    chunkaccess,
    groups,
    manifestwrite,
    nodeids,
    nodeops,
    nodes,
    properties,
    shares,
    trash,
    tree,
    users,
    versions,
    writer,
)
from core.access import Action, Principal, Who, principal
from core.backend import Backend
from core.changefeed import ChangeFeed
from core.commit import WriteTarget
from core.contentreader import ContentReader
from core.davlocks import LockTable
from core.db.engine import Database
from core.db.migrate import ensure_schema
from core.db.models import Node, User
from core.db.mutex import NamedMutex
from core.errors import DriveError, NotAFile
from core.fsck import FsckReport, run_fsck
from core.gc import GcReport, run_gc
from core.ids import ChunkHash, GroupId, NodeId, UserId, VersionId
from core.manifestwrite import Splice
from core.patch import Patch, commit_patch
from core.records import (
    ByteSource,
    ChangePage,
    Credential,
    GroupInfo,
    NodeInfo,
    ShareInfo,
    TrashEntry,
    TreePage,
    UserInfo,
    VersionInfo,
    VersionManifest,
)
from core.refs import NodeRef, Ref
from core.settings import Settings
from core.store import open_store

log = logging.getLogger(__name__)


class Drive:
    """The drive service over one database and one chunk store."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.db = backend.db
        self.locks = LockTable(backend.db)
        """WebDAV lock records, shared by every server process."""
        self.feed = ChangeFeed(backend.db)
        """Wakes long-polls when a user's change journal moves on."""

    @classmethod
    def open(cls, settings: Settings) -> Drive:
        db = Database(settings.resolved_db_url, busy_timeout=settings.db_busy_timeout_seconds)
        try:
            ensure_schema(db)
            store = open_store(
                settings.resolved_store_url,
                settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
                settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
            )
        except BaseException:
            db.dispose()
            raise
        return cls(Backend(settings=settings, db=db, store=store, lock=NamedMutex(db, "collector")))

    def close(self) -> None:
        self.feed.close()
        self.backend.close()

    def __enter__(self) -> Drive:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # users and auth -------------------------------------------------------

    def add_user(
        self, name: str, password: str, *, is_admin: bool = False, quota: int | None = None
    ) -> UserInfo:
        with self.db.write() as session:
            return users.add_user(session, name, password, is_admin=is_admin, quota=quota)

    def list_users(self) -> list[UserInfo]:
        with self.db.read() as session:
            return users.list_users(session)

    def user(self, name: str) -> UserInfo:
        with self.db.read() as session:
            return users.user_info(session, users.get_user(session, name).id)

    def user_by_id(self, user_id: UserId) -> UserInfo:
        with self.db.read() as session:
            return users.user_info(session, user_id)

    def check_health(self) -> None:
        """StorageUnavailable unless the database could take a write within a second
        (a health check: another process holding SQLite's write lock makes every
        write wait, while reads go on)."""
        self.db.check_writable(timeout=1.0)

    def has_users(self) -> bool:
        with self.db.read() as session:
            return session.execute(select(User.id).limit(1)).first() is not None

    def set_password(self, name: str, password: str) -> None:
        with self.db.write() as session:
            users.set_password(session, name, password)

    def set_quota(self, name: str, quota: int | None) -> None:
        with self.db.write() as session:
            users.set_quota(session, name, quota)

    def create_token(self, user_name: str, token_name: str) -> str:
        with self.db.write() as session:
            return users.create_token(session, user_name, token_name)

    def authenticate(self, name: str, secret: str) -> UserInfo:
        with self.db.write() as session:
            return users.authenticate(session, name, secret)

    def login(self, name: str, secret: str) -> tuple[UserInfo, Credential]:
        """``authenticate``, with the credential that matched (for ``current_login``).
        A read: the bookkeeping a login leaves (a token's last use, a rehash) is
        written by a worker afterwards, so a login never waits for a write."""
        with self.db.read() as session:
            user, credential, bookkeeping = users.login(session, name, secret)
        if bookkeeping is not None:
            self.backend.workers.submit(self._write_login_bookkeeping, bookkeeping)
        return user, credential

    def _write_login_bookkeeping(self, bookkeeping: users.LoginBookkeeping) -> None:
        try:
            with self.db.write(durable=False) as session:
                bookkeeping(session)
        except DriveError as error:  # only bookkeeping: the login stands
            log.warning("could not record a login: %s", error)

    def current_login(self, credential: Credential) -> UserInfo | None:
        """The user if the credential of an earlier login still stands, else None
        (password changed, app token revoked, user gone): a cheap check."""
        with self.db.read() as session:
            return users.current_login(session, credential)

    def revoke_token(self, user_name: str, token_name: str) -> int:
        """Delete the user's app tokens called ``token_name``; how many there were."""
        with self.db.write() as session:
            return users.revoke_token(session, user_name, token_name)

    # the tree -------------------------------------------------------------
    #
    # Every operation names its nodes by a ``Ref``: a drive path, or a ``NodeRef``
    # (a node id, or a folder id and a name); ``who`` is a user id or a
    # ``Principal``. ``core.access`` resolves and checks each in the operation's
    # transaction. Changes return the node with its lock flag.

    def stat(self, who: Who, ref: Ref, *, locks: bool = False) -> NodeInfo:
        """The live node ``ref`` names (``locks``: with its lock flag)."""
        who = principal(who)
        with self.db.read() as session:
            node, _ = access.reach(session, who, ref)
            if locks:
                return nodes.state(session, who.user_id, node.id)
            return tree.info(session, node.id)

    def find(self, who: Who, path: str) -> NodeInfo | None:
        """Like ``stat`` of a path, but None for a missing path (cheaper when missing
        is normal)."""
        with self.db.read() as session:
            return self._visible(principal(who), tree.find(session, principal(who).user_id, path))

    def find_many(self, who: Who, paths: list[str]) -> list[NodeInfo | None]:
        """``find`` for each of ``paths``, in one read transaction."""
        who = principal(who)
        with self.db.read() as session:
            return [self._visible(who, tree.find(session, who.user_id, path)) for path in paths]

    @staticmethod
    def _visible(who: Principal, info: NodeInfo | None) -> NodeInfo | None:
        # A path walks the principal's own drive: everything it finds is theirs.
        del who
        return info

    def listdir(self, who: Who, ref: Ref, *, locks: bool = False) -> list[NodeInfo]:
        """The live members of the folder ``ref`` names, by name (``locks``: with
        their lock flags)."""
        who = principal(who)
        with self.db.read() as session:
            here, folder = access.reach(session, who, ref)
            children = _as_seen(here, tree.list_children(session, folder, who.user_id))
            return nodes.with_locks(session, who.user_id, children) if locks else children

    def listdir_with_properties(
        self, who: Who, ref: Ref
    ) -> tuple[list[NodeInfo], dict[NodeId, dict[str, bytes]]]:
        """The folder's children and the dead properties of the folder and of each
        child (every one of them a key), in one read transaction and a fixed number
        of queries whatever the folder's size."""
        who = principal(who)
        with self.db.read() as session:
            here, folder = access.reach(session, who, ref)
            children = _as_seen(here, tree.list_children(session, folder, who.user_id))
            found = properties.of_folder(session, folder.id)
        props: dict[NodeId, dict[str, bytes]] = {child.id: {} for child in children}
        props[NodeId(folder.id)] = props[NodeId(here.id)] = {}
        props.update((NodeId(node_id), values) for node_id, values in found.items())
        return children, props

    def mkdir(
        self, who: Who, ref: Ref, *, mtime_ns: int | None = None, new_id: NodeId | None = None
    ) -> NodeInfo:
        """A new folder at ``ref``. ``new_id``: with that reserved id; a replay (the
        user's live node has that id already) changes nothing and raises
        ``AlreadyCreated`` naming it."""
        who = principal(who)
        with self.db.write() as session:
            node = nodeops.mkdir(session, who, ref, mtime_ns=mtime_ns, new_id=new_id)
            return nodes.state(session, who.user_id, node.id)

    def makedirs(self, who: Who, path: str) -> NodeInfo:
        """The folder at ``path``, creating the missing folders (``mkdir -p``)."""
        who = principal(who)
        with self.db.write() as session:
            return tree.info(session, nodeops.makedirs(session, who, path).id)

    def move(self, who: Who, src: Ref, dst: Ref, *, overwrite: bool = False) -> NodeInfo:
        """Move or rename ``src`` to the place ``dst`` names (see ``nodeops.move``)."""
        who = principal(who)
        with self.db.write() as session:
            node = nodeops.move(session, who, src, dst, overwrite=overwrite)
            return nodes.state(session, who.user_id, node.id)

    def copy(
        self, who: Who, src: Ref, dst: Ref, *, overwrite: bool = False, recursive: bool = True
    ) -> NodeInfo:
        """Copy (manifests, not bytes). ``overwrite``: a file over a file becomes a new
        version of the target; anything else in the way goes to the trash."""
        who = principal(who)
        with self.db.write() as session:
            node = nodeops.copy(session, who, src, dst, overwrite=overwrite, recursive=recursive)
            return nodes.state(session, who.user_id, node.id)

    def delete(self, who: Who, ref: Ref, *, base_version_id: VersionId | None = None) -> None:
        """Move to the trash (restorable until purged or expired); with
        ``base_version_id``, only if that is still the file's current version."""
        with self.db.write() as session:
            nodeops.delete(session, principal(who), ref, base_version_id=base_version_id)

    def set_mtime(self, who: Who, ref: Ref, mtime_ns: int) -> NodeInfo:
        who = principal(who)
        with self.db.write() as session:
            node = nodeops.set_mtime(session, who, ref, mtime_ns)
            return nodes.state(session, who.user_id, node.id)

    # dead properties ------------------------------------------------------

    def properties(self, who: Who, node_ids: list[NodeId]) -> dict[NodeId, dict[str, bytes]]:
        """Dead properties of the nodes the principal may read (others come back empty)."""
        with self.db.read() as session:
            found = properties.get_many(session, principal(who).user_id, node_ids)
            return {NodeId(node_id): props for node_id, props in found.items()}

    def set_properties(
        self, who: Who, ref: Ref, changes: dict[str, bytes | None], *, dry_run: bool = False
    ) -> None:
        """Set (bytes) or remove (None) dead properties of the node ``ref`` names;
        ``dry_run`` only checks (WebDAV's PROPPATCH validates every change first)."""
        properties.check(changes)
        who = principal(who)
        if dry_run:
            with self.db.read() as session:
                access.resolve(session, who, ref, Action.WRITE)
            return
        with self.db.write() as session:
            node = access.resolve(session, who, ref, Action.WRITE)
            properties.apply(session, node.owner_id, node.id, changes)

    # content --------------------------------------------------------------

    def write(
        self,
        user: UserId,
        path: str,
        stream: ByteSource,
        *,
        expected_size: int | None = None,
        base_version_id: VersionId | None = None,
        create_only: bool = False,
        mtime_ns: int | None = None,
        origin: str = "api",
    ) -> NodeInfo:
        """Store the stream as the file's new version (all or nothing).

        ``base_version_id`` / ``create_only`` make it a compare-and-set:
        VersionConflict if the file moved on (or exists) by commit time.
        ``expected_size`` turns a short stream into IncompleteUpload.
        """
        target = WriteTarget(
            user_id=user,
            path=path,
            base_version_id=base_version_id,
            create_only=create_only,
            mtime_ns=mtime_ns,
            origin=origin,
        )
        return writer.write_stream(self.backend, target, stream, expected_size)

    def manifest(self, who: Who, ref: Ref, version: int | None = None) -> VersionManifest:
        """The chunks of the file's current (or numbered) version; by node id, a
        trashed file's too (a client holding it open goes on reading)."""
        with self.db.read() as session:
            return nodes.manifest(session, principal(who), ref, version)

    def open_read(self, who: Who, ref: Ref, version: int | None = None) -> ContentReader:
        """A seekable stream of the file's current (or numbered) version."""
        found = self.manifest(who, ref, version)
        size = found.version.size
        label = NodeRef.of(ref).label
        label = label if version is None else f"{label} (version {version})"
        return ContentReader(self.backend.store, found.chunks, size, label, self.backend.workers)

    # versions and trash ---------------------------------------------------

    def versions(self, who: Who, ref: Ref) -> list[VersionInfo]:
        with self.db.read() as session:
            node = access.resolve_file(session, principal(who), ref, Action.READ)
            return versions.list_versions(session, node)

    def restore_version(self, who: Who, ref: Ref, number: int) -> NodeInfo:
        """Make an old version current again as a new version, modified now."""
        who = principal(who)
        with self.db.write() as session:
            node = nodeops.restore_version(session, who, ref, number)
            return nodes.state(session, who.user_id, node.id)

    def copy_version(
        self,
        who: Who,
        ref: Ref,
        number: int,
        dst: Ref,
        *,
        overwrite: bool = False,
        mtime_ns: int | None = None,
    ) -> NodeInfo:
        """Copy an old version to ``dst`` (onto the file itself: a restore, modified now
        unless ``mtime_ns`` says otherwise; elsewhere the version keeps its time)."""
        with self.db.write() as session:
            node = nodeops.copy_version(
                session, principal(who), ref, number, dst, overwrite=overwrite, mtime_ns=mtime_ns
            )
            return tree.info(session, node.id)

    def trash(self, user: UserId) -> list[TrashEntry]:
        with self.db.read() as session:
            return trash.list_trash(session, user)

    def restore_trash(self, who: Who, entry: NodeId) -> str:
        """Restore a trash entry; return the path it now has."""
        with self.db.write() as session:
            return trash.restore(session, principal(who), entry)[1]

    def restore_trash_to(
        self, who: Who, entry: NodeId, names: list[str], dst: Ref, *, overwrite: bool = False
    ) -> NodeInfo:
        """Restore a trash entry (or the node at ``names`` inside a trashed folder) to
        ``dst`` instead of its original place."""
        with self.db.write() as session:
            node = trash.restore_to(session, principal(who), entry, names, dst, overwrite=overwrite)
            return tree.info(session, node.id)

    def trashed_entries(self, user: UserId) -> dict[NodeId, NodeInfo]:
        """The node of every trash entry, by id (one query)."""
        with self.db.read() as session:
            return trash.entry_infos(session, user)

    def stat_trashed(self, who: Who, entry: NodeId, names: list[str]) -> NodeInfo:
        """A trash entry, or the node at ``names`` inside a trashed folder."""
        with self.db.read() as session:
            node = trash.resolve_inside(session, principal(who), entry, names, Action.READ)
            return tree.info(session, node.id)

    def list_trashed(self, who: Who, entry: NodeId, names: list[str]) -> list[NodeInfo]:
        with self.db.read() as session:
            node = trash.resolve_inside(session, principal(who), entry, names, Action.READ)
            return tree.list_children(session, node)

    def open_trashed(self, who: Who, entry: NodeId, names: list[str]) -> ContentReader:
        """A trashed file's content (its current version)."""
        with self.db.read() as session:
            node = trash.resolve_inside(session, principal(who), entry, names, Action.READ)
            if node.is_folder:
                raise NotAFile(f"{node.name} is a folder")
            current = versions.version_by_number(session, node, None)
            refs, size = versions.manifest_refs(session, current.manifest_id)
            label = f"{node.name} (in the trash)"
        return ContentReader(self.backend.store, refs, size, label, self.backend.workers)

    def purge_trash(self, who: Who, entry: NodeId) -> int:
        with self.db.write() as session:
            return trash.purge(session, principal(who), entry)

    # the change journal ---------------------------------------------------

    def cursor(self, user: UserId) -> int:
        with self.db.read() as session:
            seq = session.execute(select(User.journal_seq).where(User.id == user)).scalar_one()
            return int(seq)

    # maintenance ----------------------------------------------------------

    def gc(self, *, dry_run: bool = False) -> GcReport:
        return run_gc(self.backend, dry_run=dry_run)

    def fsck(
        self, *, verify: bool = False, progress: Callable[[int], None] | None = None
    ) -> FsckReport:
        return run_fsck(self.backend, verify=verify, progress=progress)

    # for sync clients ------------------------------------------------------

    def tree_page(self, user: UserId, after: int = 0, limit: int = 1000) -> TreePage:
        """Live nodes above id ``after``, with the journal cursor read before the page."""
        with self.db.read() as session:
            return nodes.tree_page(session, user, after, limit)

    def change_page(self, user: UserId, cursor: int, limit: int = 1000) -> ChangePage:
        """Changes after ``cursor``, each with its node's current state."""
        with self.db.read() as session:
            return nodes.change_page(session, user, cursor, limit)

    def deferred_wakes(self) -> contextlib.AbstractContextManager[None]:
        """Hold the long-poll wake-ups of this thread's commits until the block ends
        (a server wraps each request in it, so that its answer goes out first)."""
        return self.feed.deferred_wakes()

    def wait_for_changes(self, user: UserId, cursor: int, timeout: float) -> int:
        """Block until the user's journal passes ``cursor`` or ``timeout`` runs out;
        return the journal's position."""
        return self.feed.wait(user, cursor, timeout)

    def reserve_ids(self, user: UserId, count: int) -> list[NodeId]:
        """``count`` fresh node ids (ascending) that only this user's creates may use."""
        with self.db.write() as session:
            return nodeids.reserve(session, user, count)

    def commit(
        self,
        target: WriteTarget,
        chunks: list[tuple[str, int]],
        size: int,
        sha256: str | None = None,
        splice: Splice | None = None,
    ) -> tuple[NodeInfo, bool]:
        """Commit a manifest of chunks already on the server (``chunks``: hash, length)
        as the target's new content; return the file and whether it is new (a
        replay of a create with ``target.new_id`` commits nothing: see nodeids).
        ``splice``: the chunks replace that range of the base version's entries."""
        return manifestwrite.commit_manifest(
            self.backend, target, chunks, size, sha256=sha256, splice=splice
        )

    def patch(self, target: WriteTarget, patch: Patch) -> NodeInfo:
        """Commit the base version (``target.base_version_id``, the current one) with
        ``patch``'s bytes written over it and its size, as the file's new version:
        the server re-cuts the chunks around the edits itself (see core.patch)."""
        return commit_patch(self.backend, target, patch)[0]

    def read_chunk(self, user: UserId, key: str, *, verify: bool = True) -> bytes:
        """A chunk's bytes, if the user may use it (see chunkaccess)
        (``verify=False``: not re-hashed, for a client that verifies; see chunkaccess)."""
        return chunkaccess.read(self.backend, user, ChunkHash(key), verify=verify)

    def missing_chunks(self, user: UserId, keys: list[str]) -> list[ChunkHash]:
        """Which of ``keys`` the user must upload: all they may not use yet (see chunkaccess)."""
        return chunkaccess.missing(self.backend, user, keys)

    def put_chunk(self, user: UserId, key: str, data: bytes) -> bool:
        """Store a client's chunk after checking its hash and claim it for the user;
        True if the user could not use it before (whether or not it was stored)."""
        return chunkaccess.put(self.backend, user, key, data)

    # groups ---------------------------------------------------------------
    # (the rules: core.groups; only administrators reach these through the faces)

    def add_group(self, name: str) -> GroupInfo:
        """A new, empty group (InvalidName, NameTaken)."""
        with self.db.write() as session:
            return groups.add_group(session, name)

    def list_groups(self) -> list[GroupInfo]:
        """Every group by name, with its members' names sorted."""
        with self.db.read() as session:
            return groups.list_groups(session)

    def group(self, name: str) -> GroupInfo:
        with self.db.read() as session:
            return groups.group_info(session, name)

    def remove_group(self, name: str) -> None:
        """Remove the group and its memberships."""
        with self.db.write() as session:
            group = groups.group_info(session, name)
            owners = shares.owners_sharing_with_group(session, group.id)
            groups.remove_group(session, name)
            shares.reconcile_members(session, group.members, owners)

    def add_group_members(self, name: str, user_names: Sequence[str]) -> GroupInfo:
        """Add users to the group, all or none (members already stay, unchanged)."""
        with self.db.write() as session:
            group = groups.add_members(session, name, user_names)
            owners = shares.owners_sharing_with_group(session, group.id)
            shares.reconcile_members(session, user_names, owners)
            return group

    def remove_group_members(self, name: str, user_names: Sequence[str]) -> GroupInfo:
        """Take users out of the group, all or none (a non-member is NotFound)."""
        with self.db.write() as session:
            group = groups.remove_members(session, name, user_names)
            owners = shares.owners_sharing_with_group(session, group.id)
            shares.reconcile_members(session, user_names, owners)
            return group

    def group_ids_of(self, user: UserId) -> frozenset[GroupId]:
        """The ids of the user's groups (one query)."""
        with self.db.read() as session:
            return groups.group_ids_of(session, user)

    # shares ---------------------------------------------------------------

    def share(
        self,
        who: Who,
        ref: Ref,
        *,
        user: str | None = None,
        group: str | None = None,
        role: str = "viewer",
        reshare: bool = False,
    ) -> ShareInfo:
        """Grant ``role`` on the node ``ref`` names to ``user`` or ``group`` (see
        ``core.shares`` for the rules)."""
        with self.db.write() as session:
            return shares.add(
                session, principal(who), ref, user=user, group=group, role=role, reshare=reshare
            )

    def update_share(
        self,
        who: Who,
        ref: Ref,
        *,
        user: str | None = None,
        group: str | None = None,
        role: str | None = None,
        reshare: bool | None = None,
    ) -> ShareInfo:
        with self.db.write() as session:
            return shares.update(
                session, principal(who), ref, user=user, group=group, role=role, reshare=reshare
            )

    def unshare(
        self, who: Who, ref: Ref, *, user: str | None = None, group: str | None = None
    ) -> None:
        """Revoke a grant: the grantee loses it at their next request."""
        with self.db.write() as session:
            shares.remove(session, principal(who), ref, user=user, group=group)

    def share_by_id(self, who: Who, share_id: int) -> ShareInfo:
        """The grant with that id, for its granter or its node's owner (NotFound else)."""
        with self.db.read() as session:
            return shares.by_id(session, principal(who), share_id)

    def update_share_by_id(
        self, who: Who, share_id: int, *, role: str | None = None, reshare: bool | None = None
    ) -> ShareInfo:
        """``update_share``, for the grant with that id (NotFound for anyone else's)."""
        with self.db.write() as session:
            return shares.update_by_id(
                session, principal(who), share_id, role=role, reshare=reshare
            )

    def unshare_by_id(self, who: Who, share_id: int) -> None:
        """``unshare``, for the grant with that id (NotFound for anyone else's)."""
        with self.db.write() as session:
            shares.remove_by_id(session, principal(who), share_id)

    def shares_of(self, who: Who, ref: Ref) -> list[ShareInfo]:
        """The grants on the node and above it (who has access, and how)."""
        with self.db.read() as session:
            return shares.of_node(session, principal(who), ref)

    def shares_given(self, user: UserId) -> list[ShareInfo]:
        with self.db.read() as session:
            return shares.given(session, user)

    def shares_received(self, user: UserId) -> list[ShareInfo]:
        with self.db.read() as session:
            return shares.received(session, user)


def _as_seen(here: Node, children: list[NodeInfo]) -> list[NodeInfo]:
    """Members of a share entry's target as its recipient sees them: in the entry."""
    if here.target_id is None:
        return children
    return [dataclasses.replace(child, parent_id=NodeId(here.id)) for child in children]
