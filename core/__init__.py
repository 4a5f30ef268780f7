"""drivegate's core: metadata in SQL, content-addressed chunks, versions.

Layering (one way only): ``core`` imports nothing of ``davserver`` or
``fusemount``; ``davserver`` uses the names exported here; ``fusemount``
talks to the server over HTTP only. Internals live in the modules; what the
faces may rely on is this list.
"""

from cdc.chunking import ChunkRef
from core.access import Action, Principal
from core.commit import WriteTarget
from core.contentreader import ContentReader
from core.davlocks import LockRecord, LockTable
from core.drive import Drive
from core.errors import (
    AuthError,
    ChunkCorrupt,
    ChunkMissing,
    Conflict,
    DriveError,
    FileExists,
    Forbidden,
    HashMismatch,
    IdUsed,
    IncompleteUpload,
    IntegrityError,
    InvalidMove,
    InvalidName,
    InvalidRequest,
    LimitReached,
    Locked,
    MissingChunks,
    MoveIntoItself,
    NameTaken,
    NotAFile,
    NotAFolder,
    NotFound,
    QuotaExceeded,
    StorageFull,
    StorageUnavailable,
    UserNotFound,
    VersionConflict,
)
from core.fsck import FsckReport
from core.gc import GcReport
from core.ids import ChunkHash, GroupId, NodeId, UserId, VersionId
from core.manifestwrite import Splice
from core.names import RESERVED_AT_ROOT, SERVICE_ROOT
from core.nodeids import AlreadyCreated
from core.patch import Patch
from core.records import (
    ByteSource,
    ChangePage,
    Credential,
    GroupInfo,
    NodeChange,
    NodeInfo,
    ShareInfo,
    TrashEntry,
    TreePage,
    UserInfo,
    VersionInfo,
    VersionManifest,
)
from core.refs import NodeRef, Ref
from core.settings import RetentionPolicy, Settings, load_settings

__all__ = [
    "RESERVED_AT_ROOT",
    "SERVICE_ROOT",
    "Action",
    "AlreadyCreated",
    "AuthError",
    "ByteSource",
    "ChangePage",
    "ChunkCorrupt",
    "ChunkHash",
    "ChunkMissing",
    "ChunkRef",
    "Conflict",
    "ContentReader",
    "Credential",
    "Drive",
    "DriveError",
    "FileExists",
    "Forbidden",
    "FsckReport",
    "GcReport",
    "GroupId",
    "GroupInfo",
    "HashMismatch",
    "IdUsed",
    "IncompleteUpload",
    "IntegrityError",
    "InvalidMove",
    "InvalidName",
    "InvalidRequest",
    "LimitReached",
    "LockRecord",
    "LockTable",
    "Locked",
    "MissingChunks",
    "MoveIntoItself",
    "NameTaken",
    "NodeChange",
    "NodeId",
    "NodeInfo",
    "NodeRef",
    "NotAFile",
    "NotAFolder",
    "NotFound",
    "Patch",
    "Principal",
    "QuotaExceeded",
    "Ref",
    "RetentionPolicy",
    "Settings",
    "ShareInfo",
    "Splice",
    "StorageFull",
    "StorageUnavailable",
    "TrashEntry",
    "TreePage",
    "UserId",
    "UserInfo",
    "UserNotFound",
    "VersionConflict",
    "VersionId",
    "VersionInfo",
    "VersionManifest",
    "WriteTarget",
    "load_settings",
]
