"""Typed records of the sync API (docs/sync-api.md) as the mount sees them,
parsed from JSON in one place so a malformed answer fails loudly here.

The mount imports nothing from ``core``: these identifiers mirror the
server's (a node id is the inode number; a chunk is named by the lower-case
hex SHA-256 of its plaintext).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Any, Literal, NewType

from cdc.chunking import ChunkHash
from fusemount.errors import NotADriveServer

NodeId = NewType("NodeId", int)
VersionId = NewType("VersionId", int)
Kind = Literal["file", "folder"]

Json = dict[str, Any]
_HEX64 = re.compile("[0-9a-f]{64}")


def chunk_hash_of(value: Any) -> ChunkHash:
    """A chunk name the server sent (64 lower-case hex digits), else NotADriveServer."""
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise NotADriveServer(f"malformed answer: {str(value)[:80]!r} is not a chunk name")
    return ChunkHash(value)


@dataclass(frozen=True, slots=True)
class CommitTarget:
    """Where a commit goes: an existing file at a base version, or a new file
    (``parent_id`` + ``name``, only if the name is free)."""

    node_id: NodeId | None = None
    base_version_id: VersionId | None = None
    parent_id: NodeId | None = None
    name: str | None = None
    new_id: NodeId | None = None  # for a new file: an id the server reserved for us

    def json(self) -> Json:
        if self.node_id is not None:
            return {"node_id": self.node_id, "base_version_id": self.base_version_id}
        made: Json = {"parent_id": self.parent_id, "name": self.name, "create_only": True}
        if self.new_id is not None:
            made["id"] = self.new_id
        return made


def _int(obj: Json, key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise NotADriveServer(f"malformed answer: {key!r} is not an integer")
    return value


def _opt_int(obj: Json, key: str) -> int | None:
    return None if obj.get(key) is None else _int(obj, key)


def _str(obj: Json, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise NotADriveServer(f"malformed answer: {key!r} is not a string")
    return value


def _obj(value: Any, what: str) -> Json:
    if not isinstance(value, dict):
        raise NotADriveServer(f"malformed answer: {what} is not an object")
    return value


def _list(obj: Json, key: str) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise NotADriveServer(f"malformed answer: {key!r} is not a list")
    return value


@dataclass(frozen=True, slots=True)
class VersionRef:
    """Which version of a file a node currently shows."""

    id: VersionId
    number: int
    sha256: str | None

    @classmethod
    def from_json(cls, obj: Json) -> VersionRef:
        sha = obj.get("sha256")
        return cls(VersionId(_int(obj, "id")), _int(obj, "number"),
                   sha if isinstance(sha, str) else None)  # fmt: skip

    def to_json(self) -> Json:
        """The API's form (``from_json`` reads it back)."""
        return {"id": self.id, "number": self.number, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class Node:
    """A file or folder as the server last described it. ``locked``: read-only here,
    because a WebDAV lock covers it or because it is a share this user views."""

    id: NodeId
    parent_id: NodeId | None
    name: str
    kind: Kind
    size: int
    mtime_ns: int
    version: VersionRef | None
    locked: bool = False

    @property
    def is_folder(self) -> bool:
        return self.kind == "folder"

    @classmethod
    def from_json(cls, value: Any) -> Node:
        obj = _obj(value, "node")
        kind = _str(obj, "kind")
        if kind not in ("file", "folder"):
            raise NotADriveServer(f"malformed answer: node kind {kind!r}")
        parent = _opt_int(obj, "parent_id")
        version = obj.get("version")
        return cls(
            id=NodeId(_int(obj, "id")),
            parent_id=None if parent is None else NodeId(parent),
            name=_str(obj, "name"),
            kind="file" if kind == "file" else "folder",
            size=_int(obj, "size"),
            mtime_ns=_int(obj, "mtime_ns"),
            version=None if version is None else VersionRef.from_json(_obj(version, "version")),
            # A share this user views is read-only here exactly as a locked node is.
            locked=bool(obj.get("locked", False)) or bool(obj.get("read_only", False)),
        )


@dataclass(frozen=True, slots=True)
class ChunkSpan:
    """One chunk of a version: where it sits in the file and its name."""

    offset: int
    length: int
    hash: ChunkHash

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True, slots=True)
class Manifest:
    """A version's chunk list (immutable on the server, so cacheable forever)."""

    node_id: NodeId
    version: VersionRef
    size: int
    chunks: tuple[ChunkSpan, ...]

    @classmethod
    def from_json(cls, value: Any) -> Manifest:
        obj = _obj(value, "manifest")
        version = _obj(obj.get("version"), "version")
        chunks = tuple(
            ChunkSpan(_int(c, "offset"), _int(c, "length"), ChunkHash(_str(c, "hash")))
            for c in (_obj(item, "chunk") for item in _list(obj, "chunks"))
        )
        manifest = cls(NodeId(_int(obj, "node_id")), VersionRef.from_json(version),
                       _int(version, "size"), chunks)  # fmt: skip
        manifest.check()
        return manifest

    def to_json(self) -> Json:
        """The API's form (``from_json`` reads it back)."""
        return {
            "node_id": self.node_id,
            "version": {**self.version.to_json(), "size": self.size},
            "chunks": [{"offset": s.offset, "length": s.length, "hash": s.hash}
                       for s in self.chunks],
        }  # fmt: skip

    def check(self) -> None:
        """Chunks must tile the file exactly, in order; anything else is refused."""
        position = 0
        for span in self.chunks:
            if span.offset != position or span.length <= 0:
                raise NotADriveServer(f"malformed manifest for node {self.node_id}")
            position = span.end
        if position != self.size:
            raise NotADriveServer(f"manifest of node {self.node_id} does not add up to its size")

    def covering(self, offset: int, size: int) -> list[ChunkSpan]:
        """The chunks holding bytes ``[offset, offset + size)`` (bisect on the offsets)."""
        end = min(offset + size, self.size)
        if offset >= end:
            return []
        first = bisect.bisect_right(self.chunks, offset, key=lambda span: span.offset) - 1
        spans = []
        for span in self.chunks[max(first, 0) :]:
            if span.offset >= end:
                break
            spans.append(span)
        return spans

    def after(self, offset: int, count: int) -> list[ChunkSpan]:
        """Up to ``count`` chunks that start at or after ``offset`` (read-ahead)."""
        first = bisect.bisect_left(self.chunks, offset, key=lambda span: span.offset)
        return list(self.chunks[first : first + count])


@dataclass(frozen=True, slots=True)
class Me:
    """``GET me``: who we are, where the tree starts, the quota, the reserved names."""

    user: str
    root_id: NodeId
    cursor: int
    quota: int | None
    used: int
    reserved_names: frozenset[str]
    """Names the server refuses at the top of the drive (its URLs); empty from a
    server too old to say, which then refuses them itself."""

    @classmethod
    def from_json(cls, value: Any) -> Me:
        obj = _obj(value, "answer")
        if obj.get("server") != "drivegate" or obj.get("api_version") != 1:
            raise NotADriveServer("the answer does not come from a drivegate server (API v1)")
        reserved = obj.get("reserved_names", [])
        if not isinstance(reserved, list) or not all(isinstance(n, str) for n in reserved):
            raise NotADriveServer("malformed answer: reserved_names is not a list of names")
        return cls(_str(obj, "user"), NodeId(_int(obj, "root_id")), _int(obj, "cursor"),
                   _opt_int(obj, "quota"), _int(obj, "used"), frozenset(reserved))  # fmt: skip


@dataclass(frozen=True, slots=True)
class TreePage:
    cursor: int
    nodes: list[Node]
    next_after: NodeId | None

    @classmethod
    def from_json(cls, value: Any) -> TreePage:
        obj = _obj(value, "tree page")
        after = _opt_int(obj, "next_after")
        return cls(_int(obj, "cursor"), [Node.from_json(n) for n in _list(obj, "nodes")],
                   None if after is None else NodeId(after))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Change:
    """One journal entry: ``node`` is the node's current state, None if it left the tree."""

    seq: int
    kind: str
    node_id: NodeId
    node: Node | None

    @classmethod
    def from_json(cls, value: Any) -> Change:
        obj = _obj(value, "change")
        node = obj.get("node")
        return cls(_int(obj, "seq"), _str(obj, "kind"), NodeId(_int(obj, "node_id")),
                   None if node is None else Node.from_json(node))  # fmt: skip


@dataclass(frozen=True, slots=True)
class ChangePage:
    cursor: int
    changes: list[Change]
    more: bool

    @classmethod
    def from_json(cls, value: Any) -> ChangePage:
        obj = _obj(value, "changes page")
        return cls(_int(obj, "cursor"), [Change.from_json(c) for c in _list(obj, "changes")],
                   bool(obj.get("more", False)))  # fmt: skip
