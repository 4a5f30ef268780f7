"""The metadata schema (SQLAlchemy 2). Invariants are written next to each table.

Times are seconds since the epoch (float) except file mtimes, which are
integer nanoseconds so a FUSE client can round-trip them exactly.

How the later features slot in without a rewrite: shares are rows
(``Share``: node → grantee user or group, role) and public links are rows
(node, token hash, role, expiry, password hash) that grant access to a
subtree of ``nodes``;
WebDAV dead properties are keyed by node id (so they follow a node through
moves), and so are WebDAV locks (``dav_locks.node_id``). Each arrives with its own
migration.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only makes INTEGER PRIMARY KEY an auto-increment rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """A person with a drive. ``used_bytes`` is the sum of the current sizes of
    their files (live and in the trash); ``reserved_bytes`` is held by uploads
    in flight. Invariant: used + reserved <= quota whenever quota is set, kept
    by conditional UPDATEs (never check-then-write). ``journal_seq`` is the
    last change-journal number handed out; bumping it row-locks the user, which
    serialises that user's tree changes in commit order."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    journal_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    root_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("nodes.id", use_alter=True, ondelete="SET NULL"), unique=True
    )
    created_at: Mapped[float] = mapped_column(Double)


class AppToken(Base):
    """An app password. Only the SHA-256 of the token is stored (tokens are
    32 random bytes, so a fast hash is enough); the token is shown once."""

    __tablename__ = "app_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Double)
    last_used_at: Mapped[float | None] = mapped_column(Double)


class Node(Base):
    """A file or folder. A user's root has no parent and an empty name.

    Invariants: a live name (``trashed_at IS NULL``) is unique in its folder
    (partial unique index); a folder never has a version; a file's ``size``
    and ``current_version_id`` describe its current version. Trash marks only
    the top node deleted (its subtree rides along) and detaches it from its
    parent (``parent_id`` NULL), remembering where it was; so a node is the
    root exactly when it has no parent and is not trashed.
    """

    __tablename__ = "nodes"
    __table_args__ = (
        Index(
            "uq_nodes_live_name",
            "parent_id",
            "name",
            unique=True,
            sqlite_where=text("trashed_at IS NULL"),
            postgresql_where=text("trashed_at IS NULL"),
        ),
        Index("ix_nodes_owner_trashed", "owner_id", "trashed_at"),
        Index("ix_nodes_owner_id", "owner_id", "id"),  # a user's nodes in id order (tree pages)
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(1024))
    is_folder: Mapped[bool] = mapped_column(Boolean)
    current_version_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("versions.id", use_alter=True, ondelete="SET NULL")
    )
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Double)
    trashed_at: Mapped[float | None] = mapped_column(Double)
    trashed_from_id: Mapped[int | None] = mapped_column(BigId)
    trashed_path: Mapped[str | None] = mapped_column(Text)
    target_id: Mapped[int | None] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), index=True
    )
    """Set on a share *entry*: the node of another user's drive this node stands for
    in its owner's (the recipient's) tree (``core.shares``). An entry has no
    version and no members of its own: its place and name are the recipient's,
    everything else is the target's."""


class ReservedNodeId(Base):
    """A node id handed to a sync client before its node exists (``core.nodeids``).

    Invariants: no node has a reserved id, and no id is reserved twice; a row
    lives until the user creates a node with that id (deleted in the create's
    transaction). PostgreSQL draws these ids from the sequence of ``nodes.id``;
    on SQLite every node insert picks its id above every reserved one.
    """

    __tablename__ = "reserved_node_ids"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    reserved_at: Mapped[float] = mapped_column(Double)


class Manifest(Base):
    """The content of a file: an ordered list of chunks, held as a list of
    segments (``ManifestSegment``). Immutable once committed and shared by
    every version (and copy) with that content."""

    __tablename__ = "manifests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    # The whole content's SHA-256, None when unknown: an API commit stores the
    # client's sum if it sent one and never reads the chunks back to compute it.
    sha256: Mapped[str | None] = mapped_column(String(64))
    chunk_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Double)


class Segment(Base):
    """A run of consecutive manifest entries, shared by every manifest that
    holds that run at some place (``ManifestSegment``). An edit of a big file
    writes only the segments around the change: the new manifest names the
    others. Immutable once committed; deleted when no manifest names it."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chunk_count: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)


class SegmentChunk(Base):
    """One entry of a segment; ``offset`` is from the segment's start. The
    foreign key to ``chunks`` makes the database refuse a segment that names an
    unknown chunk, and refuse to delete a chunk row a segment still names
    (invariant 1)."""

    __tablename__ = "segment_chunks"

    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger)
    length: Mapped[int] = mapped_column(Integer)
    chunk_hash: Mapped[str] = mapped_column(
        ForeignKey("chunks.hash", ondelete="RESTRICT"), index=True
    )


class ManifestSegment(Base):
    """The ``idx``-th segment of a manifest, starting at byte ``offset`` of the
    file and at its ``first_chunk``-th entry."""

    __tablename__ = "manifest_segments"

    manifest_id: Mapped[int] = mapped_column(
        ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="RESTRICT"), index=True
    )
    first_chunk: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)


class Version(Base):
    """A committed write of a file; numbered 1, 2, … per node."""

    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("node_id", "number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    manifest_id: Mapped[int] = mapped_column(ForeignKey("manifests.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    origin: Mapped[str] = mapped_column(String(32))
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Double)


class Chunk(Base):
    """A stored chunk. A row exists only after its blob is durably in the
    store; ``last_seen`` is bumped whenever a writer relies on the chunk, and
    gc only collects rows no manifest names and not seen within the grace."""

    __tablename__ = "chunks"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    length: Mapped[int] = mapped_column(Integer)
    stored_length: Mapped[int] = mapped_column(Integer)
    last_seen: Mapped[float] = mapped_column(Double)


class ChunkClaim(Base):
    """A user's proof of possession of a chunk: they uploaded its bytes (hash
    checked). A sync client may name a chunk in a commit only if it can read it
    through one of its nodes or holds a claim (``core.chunkaccess``); knowing a
    hash proves nothing. Claims only bridge an upload and its commit: gc drops
    those older than its cutoff, and a chunk's claims go with its row."""

    __tablename__ = "chunk_claims"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    chunk_hash: Mapped[str] = mapped_column(
        ForeignKey("chunks.hash", ondelete="CASCADE"), primary_key=True, index=True
    )
    claimed_at: Mapped[float] = mapped_column(Double, index=True)


class Change(Base):
    """The change journal: one row per tree change, written in the same
    transaction as the change. ``(owner_id, seq)`` is gap-free and in commit
    order per user, so ``seq`` is a safe sync cursor."""

    __tablename__ = "changes"

    owner_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    node_id: Mapped[int] = mapped_column(BigId)
    parent_id: Mapped[int | None] = mapped_column(BigId)
    name: Mapped[str] = mapped_column(String(1024))
    is_folder: Mapped[bool] = mapped_column(Boolean)
    version_id: Mapped[int | None] = mapped_column(BigId)
    at: Mapped[float] = mapped_column(Double)


class UploadSession(Base):
    """An upload in flight. Holds the user's quota reservation and protects
    the chunks it relies on from gc (gc's cutoff is never later than the
    oldest live session's start). A session whose heartbeat is older than
    ``upload_timeout_seconds`` is dead: gc releases its reservation and
    deletes it, and its commit fails."""

    __tablename__ = "upload_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    reserved_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[float] = mapped_column(Double)
    heartbeat_at: Mapped[float] = mapped_column(Double)


class DeadProperty(Base):
    """A WebDAV dead property of a node: name in Clark notation, value the
    property element serialised as XML. Keyed by node, so it follows the node
    through moves and renames; copied with the node; gone with a purge."""

    __tablename__ = "dead_properties"

    node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(512), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


class DavLock(Base):
    """A WebDAV lock. ``root`` is the locked resource's key as the WebDAV face
    builds it (it starts with the owner, so users never collide); ``expire``
    is absolute. Shared by every server process and kept across restarts.

    ``node_id`` is the locked node as it was resolved when the lock was taken
    (NULL when the face gave no node): the sync API reads it to show files as
    locked and to refuse writes. Locks never travel with a moved node (the
    WebDAV face drops them on MOVE and DELETE) and vanish with a purge."""

    __tablename__ = "dav_locks"

    token: Mapped[str] = mapped_column(String(100), primary_key=True)
    root: Mapped[str] = mapped_column(String(4096), index=True)
    principal: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))
    depth: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(Text)
    timeout: Mapped[float] = mapped_column(Double)
    expire: Mapped[float] = mapped_column(Double)
    node_id: Mapped[int | None] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), index=True
    )


class Group(Base):
    """A named set of users, so that one grant reaches many (``core.groups``).
    Names follow the rule of user names; a group goes with its memberships."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Double)


class GroupMember(Base):
    """A user in a group: at most one row per pair; it goes with the group or
    the user. Indexed by user, since every access check asks for a user's groups."""

    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[float] = mapped_column(Double)


class Share(Base):
    """A grant: ``node_id`` (and everything below it) shared by ``granted_by`` with
    one user or one group, as a viewer or an editor, with or without the right
    to share onward (``core.shares``).

    Invariants: exactly one of ``user_id`` and ``group_id`` is set; a node has at
    most one grant per user and one per group (partial unique indexes); the
    grantee is never the node's owner. A grant never gives more than its
    granter holds: that is checked when it is made and bounded again at every
    access check (``core.access``), so a reshare shrinks with its source.
    """

    __tablename__ = "shares"
    __table_args__ = (
        Index(
            "uq_shares_node_user",
            "node_id",
            "user_id",
            unique=True,
            sqlite_where=text("user_id IS NOT NULL"),
            postgresql_where=text("user_id IS NOT NULL"),
        ),
        Index(
            "uq_shares_node_group",
            "node_id",
            "group_id",
            unique=True,
            sqlite_where=text("group_id IS NOT NULL"),
            postgresql_where=text("group_id IS NOT NULL"),
        ),
        CheckConstraint("(user_id IS NULL) <> (group_id IS NULL)", name="one_grantee"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    granted_by: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    reshare: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Double)
