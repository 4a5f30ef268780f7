"""The one seam where the sync API's failures become HTTP: ``DriveError``s and
Falcon's own errors (unknown route, wrong method, bad header) all leave as
``{"error": {"code", "message", …}}`` with the status of docs/sync-api.md."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import falcon

from core import (
    AuthError,
    Conflict,
    Drive,
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
    NameTaken,
    NodeRef,
    NotAFile,
    NotAFolder,
    NotFound,
    QuotaExceeded,
    StorageFull,
    StorageUnavailable,
    UserId,
    VersionConflict,
)
from davserver.api.models import ErrorDetail, ErrorOut, node_out
from davserver.framing import MalformedBody

log = logging.getLogger(__name__)
RETRY_SECONDS = 5

# Most specific first: the first matching class decides.
_CODES: list[tuple[type[DriveError], int, str]] = [
    (NotFound, 404, "not_found"),
    (InvalidName, 400, "name_invalid"),
    (HashMismatch, 400, "hash_mismatch"),
    (InvalidRequest, 400, "bad_request"),
    (IncompleteUpload, 400, "bad_request"),
    (FileExists, 409, "name_taken"),
    (VersionConflict, 409, "version_conflict"),
    (MissingChunks, 409, "missing_chunks"),
    (IdUsed, 409, "id_used"),
    (NameTaken, 409, "name_taken"),
    (InvalidMove, 409, "invalid_move"),
    (NotAFolder, 409, "not_a_folder"),
    (NotAFile, 409, "not_a_file"),
    (Conflict, 409, "conflict"),
    (QuotaExceeded, 507, "quota_exceeded"),
    (LimitReached, 409, "limit_reached"),  # a policy bound, not the disk: not a 5xx
    (StorageFull, 507, "storage_full"),
    (Locked, 423, "locked"),
    (Forbidden, 403, "forbidden"),
    (AuthError, 401, "unauthorized"),
    (StorageUnavailable, 503, "unavailable"),
    (IntegrityError, 500, "internal"),
]

# Falcon's own errors, by status.
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    411: "bad_request",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal",
    503: "unavailable",
}


class ApiError(falcon.HTTPError):
    """An error with the API's code; ``extra`` joins ``code`` and ``message`` in the body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status, title=code, description=message, headers=headers)
        self.code_name = code
        self.message = message
        self.extra = extra


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def too_large(message: str) -> ApiError:
    return ApiError(413, "too_large", message)


def serialize(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Every error body: ``{"error": {"code", "message", …}}`` as JSON."""
    if isinstance(error, ApiError):
        detail = error_detail(error)
    else:
        status = int(str(error.status).split(" ", 1)[0])
        code = _STATUS_CODES.get(status, f"http_{status}")
        detail = ErrorDetail(code=code, message=error.description or error.title or code)
    resp.content_type = falcon.MEDIA_JSON
    resp.data = ErrorOut(error=detail).model_dump_json(exclude_unset=True).encode()


def drive_error_handler(drive: Drive) -> Callable[..., None]:
    """The Falcon error handler for ``DriveError``: re-raise as the matching ApiError."""

    def handle(req: falcon.Request, resp: falcon.Response, error: DriveError, params: Any) -> None:
        api_error = as_api_error(drive, req.context.user.id, error)
        if api_error.status_code >= 500:
            log.error("%s %s: %s", req.method, req.path, error)
        raise api_error from error

    return handle


def as_api_error(drive: Drive, user_id: UserId, error: DriveError) -> ApiError:
    """The ApiError a DriveError leaves as (the status and code of the table above)."""
    status, code = next(
        ((status, code) for kind, status, code in _CODES if isinstance(error, kind)),
        (500, "internal"),
    )
    extra: dict[str, Any] = {}
    headers: dict[str, str] | None = None
    if isinstance(error, MissingChunks):
        extra["missing"] = error.missing
    if isinstance(error, VersionConflict) and not isinstance(error, FileExists):
        extra["current"] = _current(drive, user_id, error.node_id)
    if status == 503:
        headers = {"Retry-After": str(RETRY_SECONDS)}
    return ApiError(status, code, str(error), headers=headers, **extra)


def error_detail(error: ApiError) -> ErrorDetail:
    return ErrorDetail(code=error.code_name, message=error.message, **error.extra)


def _current(drive: Drive, user_id: UserId, node_id: int | None) -> Any:
    """The node a version conflict is about, as it is now (None if it is gone)."""
    if node_id is None:
        return None
    try:
        return node_out(drive.stat(user_id, NodeRef.by_id(node_id), locks=True))
    except DriveError:
        return None


def malformed_body_handler(
    req: falcon.Request, resp: falcon.Response, error: MalformedBody, params: Any
) -> None:
    """A request body whose chunked framing broke while it was read: 400 (the
    connection is closed after the answer)."""
    raise ApiError(400, "bad_request", error.message) from error
