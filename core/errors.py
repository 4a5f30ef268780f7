"""The one exception tree of drivegate.

Everything the core raises on purpose derives from :class:`DriveError`; the
faces translate these into HTTP statuses (davserver) or errnos (fusemount) at
exactly one seam each. SQL and storage driver errors are translated into this
tree inside the core.

::

    DriveError
    ├── NotFound
    │   └── UserNotFound
    ├── InvalidName
    ├── InvalidRequest
    │   └── HashMismatch
    ├── Conflict
    │   ├── NameTaken
    │   ├── NotAFolder
    │   ├── NotAFile
    │   ├── InvalidMove
    │   │   └── MoveIntoItself
    │   ├── MissingChunks
    │   ├── IdUsed
    │   └── VersionConflict
    │       └── FileExists
    ├── QuotaExceeded
    ├── LimitReached
    ├── Locked
    ├── Forbidden
    ├── AuthError
    ├── IncompleteUpload
    ├── IntegrityError
    │   ├── ChunkCorrupt
    │   └── ChunkMissing
    ├── StorageFull
    └── StorageUnavailable
"""

from __future__ import annotations


class DriveError(Exception):
    """Base of every error the core raises on purpose."""


class NotFound(DriveError):
    """A path, node, version or trash entry does not exist (for this user)."""


class UserNotFound(NotFound):
    """No user has that name or id."""


class InvalidName(DriveError):
    """A file or folder name breaks the naming rules (see ``core.names``)."""


class InvalidRequest(DriveError):
    """A request that is malformed in some other way (bad size, bad version number...)."""


class LimitReached(DriveError):
    """A per-user bound on server resources that are not file bytes (reserved ids,
    dead properties, locks) would be exceeded: the request changes nothing."""


class HashMismatch(InvalidRequest):
    """Uploaded bytes do not hash to the name (or whole-file hash) they were sent with."""


class Conflict(DriveError):
    """The request cannot be applied to the tree as it is now."""


class NameTaken(Conflict):
    """A live node with that name already exists in the target folder."""


class NotAFolder(Conflict):
    """A folder was expected (as a parent, or for listing)."""


class NotAFile(Conflict):
    """A file was expected (for reading, writing or versions)."""


class InvalidMove(Conflict):
    """A move that can never work: the root folder, or a folder into its own subtree."""


class MoveIntoItself(InvalidMove):
    """A folder cannot be moved or copied into its own subtree."""


class MissingChunks(Conflict):
    """A manifest names chunks the server does not have (``missing`` lists them)."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


class IdUsed(Conflict):
    """A create named a reserved id that an earlier create used for a node now in
    the trash: the id can never be used again."""


class VersionConflict(Conflict):
    """A compare-and-set write named a base version that is no longer current.

    ``node_id`` is the file it is about, when there is one.
    """

    def __init__(
        self, message: str, current_version: int | None, node_id: int | None = None
    ) -> None:
        super().__init__(message)
        self.current_version = current_version
        self.node_id = node_id


class FileExists(VersionConflict):
    """A create-only write found a file already there."""


class QuotaExceeded(DriveError):
    """The user's quota cannot hold the bytes of this request."""


class Locked(DriveError):
    """A lock held by someone else forbids the change."""


class Forbidden(DriveError):
    """The principal may see the node but not do this to it (a read-only share)."""


class AuthError(DriveError):
    """Wrong password or token. Deliberately does not say which part was wrong."""


class IncompleteUpload(DriveError):
    """The stream ended or broke before the announced size was read; nothing was committed."""


class IntegrityError(DriveError):
    """Stored data does not match what the metadata says it must be."""


class ChunkCorrupt(IntegrityError):
    """A chunk's bytes do not hash to its name; never returned to a reader."""


class ChunkMissing(IntegrityError):
    """A chunk the metadata references is absent from the chunk store."""


class StorageFull(DriveError):
    """The chunk store or the database has no space left (a full disk): nothing was
    committed, and retrying helps only once space is freed."""


class StorageUnavailable(DriveError):
    """The chunk store or database could not be reached; the request may be retried."""
