"""drivegate's core: metadata in SQL, content-addressed chunks, versions.

Layering (one way only): ``core`` imports nothing of ``davserver`` or
``fusemount``; ``davserver`` uses the names exported here; ``fusemount``
talks to the server over HTTP only. Internals live in the modules; what the
faces may rely on is this list.
"""

from core.davlocks import LockRecord, LockTable
from core.drive import Drive
from core.errors import (
    AuthError,
    ChunkCorrupt,
    ChunkMissing,
    Conflict,
    DriveError,
    IncompleteUpload,
    IntegrityError,
    InvalidName,
    InvalidRequest,
    Locked,
    MoveIntoItself,
    NameTaken,
    NotAFile,
    NotAFolder,
    NotFound,
    QuotaExceeded,
    StorageUnavailable,
    UserNotFound,
    VersionConflict,
)
from core.fsck import FsckReport
from core.gc import GcReport
from core.ids import ChunkHash, NodeId, UserId, VersionId
from core.reader import ContentReader
from core.records import (
    ByteSource,
    ChangeInfo,
    ChunkRef,
    NodeInfo,
    TrashEntry,
    UserInfo,
    VersionInfo,
)
from core.settings import RetentionPolicy, Settings, load_settings

__all__ = [
    "AuthError",
    "ByteSource",
    "ChangeInfo",
    "ChunkCorrupt",
    "ChunkHash",
    "ChunkMissing",
    "ChunkRef",
    "Conflict",
    "ContentReader",
    "Drive",
    "DriveError",
    "FsckReport",
    "GcReport",
    "IncompleteUpload",
    "IntegrityError",
    "InvalidName",
    "InvalidRequest",
    "LockRecord",
    "LockTable",
    "Locked",
    "MoveIntoItself",
    "NameTaken",
    "NodeId",
    "NodeInfo",
    "NotAFile",
    "NotAFolder",
    "NotFound",
    "QuotaExceeded",
    "RetentionPolicy",
    "Settings",
    "StorageUnavailable",
    "TrashEntry",
    "UserId",
    "UserInfo",
    "UserNotFound",
    "VersionConflict",
    "VersionId",
    "VersionInfo",
    "load_settings",
]
