"""Bounds on the paths a request names, checked before any other work.

``PathLimits`` wraps the whole application: a request whose target (or
``Destination`` header) is too long answers 414, and one whose path is not
UTF-8, climbs with ``.``/``..``, is too deep or holds a name longer than a
name may be answers 400, each with a short body saying why (JSON under the
sync API's prefix, text elsewhere). Nothing behind it then sees such a path:
WsgiDAV's own answer to a path that escapes the root promised a body it never
sent, and undecodable bytes made it drop the connection.

The limits are those of a local disk, so that anything in the drive can be
written back to one: see docs/architecture.md, "Path limits".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from core.names import MAX_NAME_BYTES
from davserver.urlspace import under

Environ = dict[str, Any]
WsgiApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]

MAX_PATH_BYTES = 4096
"""A path, decoded, in UTF-8: Linux's PATH_MAX."""
MAX_URI_BYTES = 48 * 1024
"""A request target as sent, query included (the sync API's patch names its ranges
in the query: up to 32 KiB of them); cheroot refuses a request line over 64 KiB
(``MAX_HEADER_BYTES``) before we see it."""
MAX_DESTINATION_BYTES = 16 * 1024
"""A ``Destination`` as sent: a path of ``MAX_PATH_BYTES`` percent-encoded whole
(3 bytes per byte), with room for a scheme and a host."""
MAX_DEPTH = 256
"""Names in a path: far beyond what file managers and office apps handle (Windows
Explorer stops at 260 characters of path), and it bounds the work of resolving one."""


class PathRefused(Exception):
    """A path over a limit: ``status`` is 400 or 414, the message says which limit."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_path(raw: bytes, what: str) -> None:
    """Raise ``PathRefused`` unless ``raw`` (a decoded URL path, as bytes) is UTF-8, at
    most ``MAX_PATH_BYTES``, without ``.``/``..`` names, at most ``MAX_DEPTH`` names
    deep, each of at most ``MAX_NAME_BYTES``."""
    if len(raw) > MAX_PATH_BYTES:
        raise PathRefused(414, f"{what} is longer than {MAX_PATH_BYTES} bytes")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PathRefused(400, f"{what} is not valid UTF-8") from None
    names = [name for name in raw.split(b"/") if name]
    if any(name in (b".", b"..") for name in names):
        raise PathRefused(400, f"{what} may not contain '.' or '..' segments")
    if len(names) > MAX_DEPTH:
        raise PathRefused(400, f"{what} is deeper than {MAX_DEPTH} levels")
    if any(len(name) > MAX_NAME_BYTES for name in names):
        raise PathRefused(400, f"{what} has a name longer than {MAX_NAME_BYTES} bytes")


def check_request(environ: Environ) -> None:
    """``check_path`` for the request's path and its ``Destination``, after their raw
    lengths (``PathRefused`` for the first limit broken)."""
    target: str = environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
    if len(target) > MAX_URI_BYTES:
        raise PathRefused(414, f"the request URI is longer than {MAX_URI_BYTES} bytes")
    # PEP 3333: PATH_INFO holds the request's bytes (percent-decoded) as latin-1.
    check_path(environ.get("PATH_INFO", "").encode("latin-1", "replace"), "the path")
    destination: str | None = environ.get("HTTP_DESTINATION")
    if destination is not None:
        if len(destination) > MAX_DESTINATION_BYTES:
            limit = MAX_DESTINATION_BYTES
            raise PathRefused(414, f"the Destination is longer than {limit} bytes")
        # Header values are latin-1 too; some clients send the path's UTF-8 unquoted.
        try:
            path = urlsplit(destination).path.encode("latin-1", "replace")
        except ValueError:
            raise PathRefused(400, "the Destination is not a URL") from None
        check_path(unquote_to_bytes(path), "the Destination path")


_REASONS = {400: "Bad Request", 414: "URI Too Long"}
_API_CODES = {400: "bad_request", 414: "uri_too_long"}


class PathLimits:
    """Answers requests whose paths break a limit (see the module docstring); passes
    the others to ``app``. Under ``api_prefix`` the body is the sync API's JSON error."""

    def __init__(self, app: WsgiApp, api_prefix: str) -> None:
        self.app = app
        self.api_prefix = api_prefix

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            check_request(environ)
        except PathRefused as refused:
            return self._refuse(environ, start_response, refused)
        return self.app(environ, start_response)

    def _refuse(
        self, environ: Environ, start_response: Callable[..., Any], refused: PathRefused
    ) -> list[bytes]:
        status = f"{refused.status} {_REASONS[refused.status]}"
        if under(environ.get("PATH_INFO", ""), self.api_prefix):
            error = {"code": _API_CODES[refused.status], "message": str(refused)}
            body, kind = json.dumps({"error": error}).encode(), "application/json"
        else:
            body, kind = f"{status}: {refused}\n".encode(), "text/plain; charset=utf-8"
        start_response(
            status,
            [("Content-Type", kind), ("Content-Length", str(len(body)))],
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
