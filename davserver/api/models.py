"""The sync API's JSON shapes as pydantic models: request bodies and query
strings (validated strictly: unknown fields are refused, types are not
coerced), responses, and the conversions from the core's records.

The same models produce the OpenAPI document's schemas (``spec.py``), so
the document and the wire format cannot drift apart.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from core import GroupInfo, NodeChange, NodeInfo, UserInfo, VersionInfo, VersionManifest

MAX_INT = 2**63 - 1
MAX_PAGE = 10_000
MAX_HASHES = 10_000
MAX_IDS = 10_000
MAX_WAIT = 60
MAX_BATCH = 1000
MAX_CHUNK = 4 * 1024 * 1024  # cdc.chunking.MAX_CHUNK: the core refuses longer chunks
MAX_MEMBERS = 1000  # core.groups.MAX_NAMES: user names one request may add

Id = Annotated[int, Field(ge=1, le=MAX_INT)]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]
Nanoseconds = Annotated[int, Field(ge=0, le=MAX_INT, description="Nanoseconds since the epoch.")]
Hash = Annotated[str, Field(pattern="^[0-9a-f]{64}$", description="SHA-256, lower-case hex.")]
# The rule of user and group names (core.users, core.groups).
_NAME = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
UserName = Annotated[str, Field(pattern=_NAME, description="A user's name.")]
GroupName = Annotated[
    str,
    Field(pattern=_NAME, description="1-64 letters, digits, '.', '_', '@' or '-', "
          "starting with a letter or digit."),
]  # fmt: skip

# The path parameters of the route templates (routes.py), by name: the document
# describes each with its type's schema (the server checks the same bounds).
PATH_PARAMETERS: dict[str, Any] = {
    "node_id": Id, "number": Id, "hash": Hash, "group": GroupName, "user": UserName,
}  # fmt: skip
Kind = Literal["create", "update", "move", "trash", "restore", "purge", "meta", "lock"]


class Body(BaseModel):
    """A request body: JSON types as sent, no unknown fields. JSON has one number
    type, so an integer may be written ``7.0`` (as JSON Schema's ``integer``
    allows); ``7.5`` and ``"7"`` stay wrong."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _integral_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {
            name: int(value) if isinstance(value, float) and value.is_integer() else value
            for name, value in data.items()
        }


class Query(BaseModel):
    """A query string: values arrive as text and are converted, no unknown names."""

    model_config = ConfigDict(extra="forbid")


# responses -------------------------------------------------------------------


class VersionRef(BaseModel):
    id: Id
    number: Id
    sha256: Hash | None = Field(
        description="The whole content's SHA-256; null when unknown (an API commit without one)."
    )


class NodeOut(BaseModel):
    """A file or folder; ``version`` is null for folders, ``locked`` true while a
    WebDAV lock covers the node, ``read_only`` true when the user may read it but
    not change it (a share they view); ``shared_from`` set on the entry that shows
    a share the user received (the shared node's id)."""

    id: Id
    parent_id: Id | None
    name: str
    kind: Literal["file", "folder"]
    size: Count
    mtime_ns: int
    version: VersionRef | None
    locked: bool
    read_only: bool = False
    shared_from: Id | None = None


class NodesOut(BaseModel):
    nodes: list[NodeOut]


class MeOut(BaseModel):
    user: str
    root_id: Id
    cursor: Count
    quota: Count | None
    used: Count
    server: Literal["drivegate"]
    api_version: Literal[1]
    reserved_names: list[str] = Field(
        description="Names no node may take at the top of a drive (their URLs are the "
        "server's); clients refuse them locally from this list, never from a copy."
    )


class TreeOut(BaseModel):
    cursor: Count = Field(description="The journal position read before this page.")
    nodes: list[NodeOut]
    next_after: Id | None = Field(description="Pass as `after` for the next page; null: done.")


class ChangeOut(BaseModel):
    seq: Id
    kind: Kind
    node_id: Id
    node: NodeOut | None = Field(description="Current state; null: no longer in the live tree.")


class ChangesOut(BaseModel):
    cursor: Count
    changes: list[ChangeOut]
    more: bool


class ManifestVersion(BaseModel):
    id: Id
    number: Id
    size: Count
    sha256: Hash | None = Field(
        description="The whole content's SHA-256; null when unknown (an API commit without one)."
    )


class ChunkOut(BaseModel):
    offset: Count
    length: int = Field(ge=1, le=MAX_CHUNK)
    hash: Hash


class ManifestOut(BaseModel):
    node_id: Id
    version: ManifestVersion
    chunks: list[ChunkOut]


class VersionOut(BaseModel):
    id: Id
    number: Id
    size: Count
    sha256: Hash | None = Field(
        description="The whole content's SHA-256; null when unknown (an API commit without one)."
    )
    created_at: float = Field(description="Seconds since the epoch.")
    mtime_ns: int
    origin: str
    author: str | None
    is_current: bool


class VersionsOut(BaseModel):
    versions: list[VersionOut]


class MissingOut(BaseModel):
    missing: list[Hash]


class IdsOut(BaseModel):
    ids: list[Id] = Field(
        description="Fresh node ids, ascending, reserved for the caller until a mkdir or "
        "commit uses them as its `id`."
    )


# Answers name users and groups as stored, without the input rule's pattern: a
# name an older rule let in must not turn a listing into a 500.


class UserOut(BaseModel):
    name: str
    is_admin: bool
    quota: Count | None = Field(description="Bytes; null: no quota.")
    used: Count = Field(description="Bytes the user's files (and the trash) take.")


class UsersOut(BaseModel):
    users: list[UserOut] = Field(description="Every user, by name.")


class GroupOut(BaseModel):
    name: str
    members: list[str] = Field(description="The members' names, sorted.")
    created_at: float = Field(description="Seconds since the epoch.")


class GroupsOut(BaseModel):
    groups: list[GroupOut] = Field(description="Every group, by name.")


class ErrorDetail(BaseModel):
    code: str
    message: str
    current: NodeOut | None = Field(
        default=None, description="version_conflict: the node as it is now."
    )
    missing: list[Hash] | None = Field(
        default=None, description="missing_chunks: the hashes the server lacks."
    )


class ErrorOut(BaseModel):
    error: ErrorDetail


# requests --------------------------------------------------------------------


class TreeQuery(Query):
    after: Count = 0
    limit: int = Field(default=1000, ge=1, le=MAX_PAGE)


class ChangesQuery(Query):
    cursor: Count
    wait: float = Field(default=0, ge=0, le=MAX_WAIT, description="Seconds to hold the request.")
    limit: int = Field(default=1000, ge=1, le=MAX_PAGE)


class ManifestQuery(Query):
    version: Id | None = Field(default=None, description="A version number; default: current.")


class PatchQuery(Query):
    base_version_id: Id = Field(description="The version the patch edits: the current one.")
    size: Count = Field(description="The new size of the file.")
    ranges: str = Field(
        default="",
        max_length=32 * 1024,
        pattern=r"^(\d{1,19}:\d{1,19}(,\d{1,19}:\d{1,19})*)?$",
        description="Where the body's bytes go: offset:length pairs, comma-separated, "
        "in order and not overlapping; the body is their bytes back to back.",
    )
    mtime_ns: Nanoseconds | None = None
    lock_token: str | None = None


class DeleteQuery(Query):
    base_version_id: Id | None = Field(
        default=None, description="Delete only if this is still the current version."
    )


class PatchIn(Body):
    mtime_ns: Nanoseconds


class IdsIn(Body):
    count: int = Field(ge=1, le=MAX_IDS, description="How many ids to reserve.")


class MkdirIn(Body):
    parent_id: Id
    name: str
    mtime_ns: Nanoseconds | None = None
    id: Id | None = Field(
        default=None,
        description="Create the node with this id, reserved beforehand (POST /ids). If the "
        "caller's live node has it already, the request is a replay: 200 with that node, "
        "nothing changes; 409 id_used if that node is in the trash.",
    )


class MoveIn(Body):
    node_id: Id
    parent_id: Id
    name: str
    overwrite: bool = False


class GroupIn(Body):
    name: GroupName


class MembersIn(Body):
    users: list[UserName] = Field(
        min_length=1,
        max_length=MAX_MEMBERS,
        description="Users to add (members already stay); one unknown user adds nobody.",
    )


class MissingIn(Body):
    hashes: list[Hash] = Field(max_length=MAX_HASHES)


class ChunkIn(Body):
    hash: Hash
    length: int = Field(ge=1, le=MAX_CHUNK)


class SpliceIn(Body):
    start: Count
    end: Count


# A commit names its file one way or the other (``api/commit.py: commit_target``
# refuses anything else); the document says so, so that clients and the fuzzer
# know it too.
_NULL = {"type": "null"}
COMMIT_TARGETS: dict[str, Any] = {
    "oneOf": [
        {
            "title": "An existing file by node_id, at base_version_id",
            "required": ["node_id", "base_version_id"],
            "properties": {
                "node_id": {"type": "integer"},
                "base_version_id": {"type": "integer"},
                "id": _NULL,
                "parent_id": _NULL,
                "name": _NULL,
                "create_only": {"const": False},
            },
        },
        {
            "title": "A name in a folder (a new file, or the file there)",
            "required": ["parent_id", "name"],
            "properties": {
                "parent_id": {"type": "integer"},
                "name": {"type": "string"},
                "node_id": _NULL,
                "splice": _NULL,
            },
        },
    ]
}


class CommitIn(Body):
    """A manifest for a file named by ``node_id`` (with ``base_version_id``) or by
    ``parent_id`` and ``name``: exactly one of the two (``COMMIT_TARGETS``)."""

    model_config = ConfigDict(json_schema_extra=COMMIT_TARGETS)

    id: Id | None = Field(
        default=None,
        description="With parent_id and name: create the file with this id, reserved "
        "beforehand (POST /ids); implies create_only. If the caller's live node has it "
        "already, the request is a replay: 200 with that node, nothing is committed; "
        "409 id_used if that node is in the trash.",
    )
    node_id: Id | None = None
    parent_id: Id | None = None
    name: str | None = None
    base_version_id: Id | None = None
    create_only: bool = False
    mtime_ns: Nanoseconds | None = None
    size: Count
    chunks: list[ChunkIn]
    splice: SpliceIn | None = Field(
        default=None,
        description="With node_id and base_version_id: chunks replace the base version's "
        "entries start to end (exclusive) and the others stay; size is the whole new size. "
        "A small edit of a big file then sends, and costs the server, what changed.",
    )
    lock_token: str | None = None
    sha256: Hash | None = Field(
        default=None,
        description="The whole content's SHA-256 if the client knows it: stored as the "
        "version's sum, not checked (the server reads nothing back); null: unknown.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> CommitIn:
        """Exactly one of the shapes of ``COMMIT_TARGETS`` (so a batch holding a
        commit of neither shape is malformed, refused whole)."""
        if self.node_id is not None:
            if self.id is not None:
                raise _shape("id names a new file: give it with parent_id and name, not node_id")
            if self.parent_id is not None or self.name is not None:
                raise _shape("give node_id, or parent_id and name, not both")
            if self.base_version_id is None:
                raise _shape("a commit to node_id needs its base_version_id")
            if self.create_only:
                raise _shape("create_only needs parent_id and name, not node_id")
        elif self.parent_id is None or self.name is None:
            raise _shape("give node_id, or parent_id and name")
        elif self.splice is not None:
            raise _shape("a splice edits a version: give node_id and base_version_id")
        return self


def _shape(message: str) -> PydanticCustomError:
    return PydanticCustomError("commit_target", message)


class MkdirOp(MkdirIn):
    op: Literal["mkdir"]


class CommitOp(CommitIn):
    op: Literal["commit"]


class MoveOp(MoveIn):
    op: Literal["move"]


class DeleteOp(DeleteQuery, Body):
    op: Literal["delete"]
    node_id: Id


class PatchOp(PatchIn):
    op: Literal["patch"]
    node_id: Id


BatchOp = Annotated[MkdirOp | CommitOp | MoveOp | DeleteOp | PatchOp, Field(discriminator="op")]


class BatchIn(Body):
    ops: list[BatchOp] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="Done in order, each as its own request would be, until one is refused.",
    )


class BatchResult(BaseModel):
    status: int = Field(description="What the operation's own request would answer.")
    node: NodeOut | None = Field(description="Its node; null for a delete.")


class BatchError(ErrorDetail):
    status: int = Field(description="The status the operation's own request would answer.")


class BatchOut(BaseModel):
    results: list[BatchResult] = Field(description="One per operation done, in order.")
    error: BatchError | None = Field(
        default=None,
        description="Why the operation after the last result was refused; the ones after "
        "it were not tried. Null: all were done.",
    )


# from core records -----------------------------------------------------------


def node_out(info: NodeInfo) -> NodeOut:
    version = None
    if info.version_id is not None and info.version_number is not None:
        version = VersionRef(id=info.version_id, number=info.version_number, sha256=info.sha256)
    return NodeOut(
        id=info.id,
        parent_id=info.parent_id,
        name=info.name,
        kind="folder" if info.is_folder else "file",
        size=info.size,
        mtime_ns=info.mtime_ns,
        version=version,
        locked=info.locked,
        read_only=info.read_only,
        shared_from=info.shared_from,
    )


def user_out(info: UserInfo) -> UserOut:
    return UserOut(
        name=info.name, is_admin=info.is_admin, quota=info.quota_bytes, used=info.used_bytes
    )


def group_out(info: GroupInfo) -> GroupOut:
    return GroupOut(name=info.name, members=list(info.members), created_at=info.created_at)


def change_out(change: NodeChange) -> ChangeOut:
    return ChangeOut(
        seq=change.seq,
        kind=change.kind,  # type: ignore[arg-type]  # the journal writes only these kinds
        node_id=change.node_id,
        node=node_out(change.node) if change.node is not None else None,
    )


def version_out(info: VersionInfo) -> VersionOut:
    return VersionOut(
        id=info.id,
        number=info.number,
        size=info.size,
        sha256=info.sha256,
        created_at=info.created_at,
        mtime_ns=info.mtime_ns,
        origin=info.origin,
        author=info.author,
        is_current=info.is_current,
    )


def manifest_json(manifest: VersionManifest) -> bytes:
    """The ``ManifestOut`` body of a manifest, written without building a model per
    entry: for a 1 GiB file's ~850 entries that took most of the request's time
    (the core's records are well-formed; a test checks the body against the model)."""
    version = manifest.version
    return json.dumps(
        {
            "node_id": manifest.node_id,
            "version": {
                "id": version.id,
                "number": version.number,
                "size": version.size,
                "sha256": version.sha256,
            },
            "chunks": [
                {"offset": r.offset, "length": r.length, "hash": r.hash} for r in manifest.chunks
            ],
        },
        separators=(",", ":"),
    ).encode()


# The share routes' path parameter (davserver/api/shares.py).
PATH_PARAMETERS["share_id"] = Id
