"""The one seam from the mount's errors to errnos: ``errno_for`` says which
errno a failed operation answers (the table is in docs/mount.md), and the
``answer`` decorator wraps every pyfuse3 handler with it, so that nothing
else raises ``FUSEError`` except for plain file-system answers."""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

import pyfuse3

from fusemount.errors import (
    BadRequest,
    CacheFull,
    ChunkCorrupt,
    Conflict,
    Forbidden,
    Locked,
    MountError,
    NotFound,
    QuotaExceeded,
    ServerUnreachable,
    Throttled,
    Unauthorized,
    XattrError,
)

log = logging.getLogger("fusemount.fs")  # the operations' log, as before the split

OFFLINE_ERRNO = errno.EHOSTDOWN
_CONFLICTS = {
    "invalid_move": errno.EINVAL,
    "not_a_folder": errno.ENOTDIR,
    "not_a_file": errno.EISDIR,
}

S = TypeVar("S")
P = ParamSpec("P")
T = TypeVar("T")


def errno_for(exc: MountError) -> int:
    """The errno a failed operation answers (documented in docs/mount.md)."""
    match exc:
        case XattrError():
            return exc.errno
        case ServerUnreachable():
            return OFFLINE_ERRNO
        case ChunkCorrupt():
            return errno.EIO
        case NotFound():
            return errno.ESTALE
        case Unauthorized() | Throttled():
            return errno.EACCES
        case CacheFull():
            return errno.ENOSPC
        case QuotaExceeded():
            return errno.EDQUOT
        case Forbidden():
            return errno.EACCES
        case Locked():
            return errno.EACCES  # a WebDAV lock makes the node read-only here
        case Conflict():
            return _CONFLICTS.get(exc.code, errno.EEXIST)
        case BadRequest():
            return errno.EINVAL
    return errno.EIO


def answer(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Turn the mount's errors into errnos; anything unexpected is logged and answers EIO."""

    async def handler(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except MountError as exc:
            code = errno_for(exc)
            if code == errno.EIO:
                level = logging.ERROR
            elif isinstance(exc, XattrError):
                level = logging.DEBUG  # ls -l asks every file for attributes it lacks
            else:
                level = logging.INFO
            log.log(level, "%s: %s (%s)", method.__name__, exc, errno.errorcode.get(code, code))
            raise pyfuse3.FUSEError(code) from None
        except Exception:
            log.exception("%s failed", method.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    functools.update_wrapper(handler, method)
    return handler
