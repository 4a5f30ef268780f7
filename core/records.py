"""Plain, immutable records the core hands to its callers (never ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cdc.chunking import ChunkRef
from core.ids import GroupId, NodeId, UserId, VersionId


class ByteSource(Protocol):
    """What a write reads from: anything with ``read(n) -> bytes`` (a file,
    a WSGI input, an HTTP body). An exception from ``read`` is a broken upload."""

    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True)
class UserInfo:
    id: UserId
    name: str
    is_admin: bool
    quota_bytes: int | None
    used_bytes: int
    reserved_bytes: int
    root_id: NodeId


@dataclass(frozen=True)
class Credential:
    """Which credential a login used, so that a remembered login can be checked to
    still stand with one primary-key lookup: the app token's id, or a digest of
    the password hash (it changes with the password)."""

    user_id: UserId
    token_id: int | None
    password_digest: str | None


@dataclass(frozen=True)
class NodeInfo:
    """A live file or folder. ``version_id``/``version_number``/``manifest_id`` are
    None for folders; ``sha256`` is None for folders and when unknown (an API
    commit without the client's sum). ``locked``: a WebDAV lock covers the node
    (filled in where the caller asked for lock state, False elsewhere)."""

    id: NodeId
    parent_id: NodeId | None
    name: str
    is_folder: bool
    size: int
    mtime_ns: int
    created_at: float
    version_id: VersionId | None
    version_number: int | None
    sha256: str | None
    manifest_id: int | None = None
    locked: bool = False

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9


@dataclass(frozen=True)
class VersionInfo:
    id: VersionId
    number: int
    size: int
    sha256: str | None
    created_at: float
    mtime_ns: int
    origin: str
    author: str | None
    is_current: bool
    manifest_id: int = 0


@dataclass(frozen=True)
class TrashEntry:
    """A trashed item (the top of a deleted subtree)."""

    id: NodeId
    name: str
    is_folder: bool
    size: int
    original_path: str
    trashed_at: float


@dataclass(frozen=True)
class ChangeInfo:
    """One row of the change journal; ``seq`` is the cursor after it."""

    seq: int
    kind: str
    node_id: NodeId
    parent_id: NodeId | None
    name: str
    is_folder: bool
    version_id: VersionId | None
    at: float


@dataclass(frozen=True)
class TreePage:
    """One page of a user's live tree, in id order. ``cursor`` is the journal position
    read before the page; ``next_after`` is None on the last page."""

    cursor: int
    nodes: list[NodeInfo]
    next_after: NodeId | None


@dataclass(frozen=True)
class NodeChange:
    """A journal row with its node's current state (None: no longer in the live tree)."""

    seq: int
    kind: str
    node_id: NodeId
    node: NodeInfo | None


@dataclass(frozen=True)
class ChangePage:
    """Changes after a cursor; ``cursor`` is the last one's ``seq`` (or the same
    cursor when there are none); ``more``: another page is waiting."""

    cursor: int
    changes: list[NodeChange]
    more: bool


@dataclass(frozen=True)
class VersionManifest:
    """A version's content: the version and its chunks (offsets, lengths, hashes)."""

    node_id: NodeId
    version: VersionInfo
    chunks: list[ChunkRef]


@dataclass(frozen=True)
class GroupInfo:
    """A group and the names of its members, sorted."""

    id: GroupId
    name: str
    created_at: float
    members: tuple[str, ...]
