"""The one seam where core errors become WebDAV/HTTP errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    HTTP_INTERNAL_ERROR,
    HTTP_LOCKED,
    HTTP_METHOD_NOT_ALLOWED,
    HTTP_NOT_FOUND,
    HTTP_PRECONDITION_FAILED,
    DAVError,
)

from core import (
    AuthError,
    Conflict,
    DriveError,
    Forbidden,
    IncompleteUpload,
    IntegrityError,
    InvalidName,
    InvalidRequest,
    LimitReached,
    Locked,
    MoveIntoItself,
    NameTaken,
    NotFound,
    QuotaExceeded,
    StorageFull,
    StorageUnavailable,
    VersionConflict,
)

HTTP_INSUFFICIENT_STORAGE = 507
HTTP_SERVICE_UNAVAILABLE = 503
HTTP_UNAUTHORIZED = 401

# Most specific first: the first matching class decides.
_STATUS: list[tuple[type[DriveError], int]] = [
    (NotFound, HTTP_NOT_FOUND),
    (InvalidName, HTTP_BAD_REQUEST),
    (InvalidRequest, HTTP_BAD_REQUEST),
    (IncompleteUpload, HTTP_BAD_REQUEST),
    (VersionConflict, HTTP_PRECONDITION_FAILED),
    (MoveIntoItself, HTTP_FORBIDDEN),
    (NameTaken, HTTP_METHOD_NOT_ALLOWED),
    (Conflict, HTTP_CONFLICT),
    (QuotaExceeded, HTTP_INSUFFICIENT_STORAGE),
    (LimitReached, HTTP_INSUFFICIENT_STORAGE),
    (StorageFull, HTTP_INSUFFICIENT_STORAGE),
    (Locked, HTTP_LOCKED),
    (Forbidden, HTTP_FORBIDDEN),
    (AuthError, HTTP_UNAUTHORIZED),
    (StorageUnavailable, HTTP_SERVICE_UNAVAILABLE),
    (IntegrityError, HTTP_INTERNAL_ERROR),
]


RETRY_SECONDS = 5
"""A 503's ``Retry-After``: storage that cannot be reached or is busy now may be soon."""


def to_dav_error(error: DriveError) -> DAVError:
    status = next((code for kind, code in _STATUS if isinstance(error, kind)), HTTP_INTERNAL_ERROR)
    if status == HTTP_SERVICE_UNAVAILABLE:
        retry = [("Retry-After", str(RETRY_SECONDS))]
        return DAVError(status, context_info=str(error), add_headers=retry)
    return DAVError(status, context_info=str(error))


@contextmanager
def dav_errors() -> Iterator[None]:
    """Raise any DriveError from the block as the matching DAVError."""
    try:
        yield
    except DriveError as error:
        raise to_dav_error(error) from error
