"""The mount's one exception tree.

Everything the mount raises on purpose derives from :class:`MountError`.
HTTP answers and transport failures become these classes in exactly one
place (``client._raise_for``); these become errnos in exactly one place
(``errnos.errno_for``); the CLI prints them as one-line messages.

::

    MountError
    ├── ApiError                 the server answered with a contract error code
    │   ├── Unauthorized         401: wrong password or token
    │   ├── Throttled            429: too many failed logins
    │   ├── NotFound             404: no such node, version or chunk (for this user)
    │   ├── BadRequest           400: bad_request, name_invalid, hash_mismatch
    │   ├── Conflict             409: name_taken, version_conflict, missing_chunks …
    │   ├── Locked               423: a WebDAV lock held by someone else
    │   ├── Forbidden            403: a node this user may read but not change
    │   ├── QuotaExceeded        507
    │   └── ServerError          5xx or an unknown code
    ├── NotADriveServer          the URL answers, but not as a drivegate server
    ├── ServerUnreachable        connection refused, DNS, timeout, reset: offline
    ├── ChunkCorrupt             chunk bytes that do not hash to their name
    ├── CacheFull                pinned data leaves no room for a chunk; the cache disk is full
    ├── UploadFailed             queued content the server refused (the reason is kept)
    ├── FileChanged              a working copy shrank while its upload read it
    ├── XattrError               an attribute the mount does not offer or take (has its errno)
    └── SetupError               bad mountpoint, cache dir of another drive, …
"""

from __future__ import annotations


class MountError(Exception):
    """Base of every error the mount raises on purpose."""


class ApiError(MountError):
    """The server answered with an error from the sync-API contract."""

    def __init__(self, message: str, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class Unauthorized(ApiError):
    """Wrong user name, password or token (or a revoked token)."""


class Throttled(ApiError):
    """The server refuses logins for a while after too many failures."""


class NotFound(ApiError):
    """No such node, version or chunk for this user."""


class BadRequest(ApiError):
    """The server found the request malformed (a bug on our side, or a bad name)."""


class Conflict(ApiError):
    """The request does not fit the tree as it is now."""


class Locked(ApiError):
    """A WebDAV lock held by another client forbids the write."""


class Forbidden(ApiError):
    """The node is read-only for this user (a share they may only view)."""


class QuotaExceeded(ApiError):
    """The write would exceed the user's quota."""


class ServerError(ApiError):
    """The server failed (5xx) or answered with a code this client does not know."""


class NotADriveServer(MountError):
    """The URL answers HTTP, but not the drivegate sync API."""


class ServerUnreachable(MountError):
    """The server cannot be reached (refused, unresolvable, timed out, reset)."""


class ChunkCorrupt(MountError):
    """A chunk's bytes do not match its SHA-256 name (or its manifest length)."""


class CacheFull(MountError):
    """The chunk cannot be cached: everything left in the cache is pinned."""


class UploadFailed(MountError):
    """Queued local content the server refused for good (conflict, quota, deleted)."""


class FileChanged(MountError):
    """A working copy changed (shrank) while its upload was reading it: that upload is
    void and is abandoned quietly; the file's state at its next close goes instead."""


class XattrError(MountError):
    """A ``user.drivegate.*`` request the mount refuses; ``errno`` says how."""

    def __init__(self, message: str, errno: int) -> None:
        super().__init__(message)
        self.errno = errno


class SetupError(MountError):
    """The mount cannot start as asked (mountpoint, cache dir, options)."""
