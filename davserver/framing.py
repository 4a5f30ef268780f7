"""Strict HTTP/1.1 request framing on top of cheroot: what a server behind a
proxy must refuse so that it and the proxy never disagree on where a request
ends (request smuggling), plus bounds on each header.

cheroot on its own lets the last of two ``Content-Length`` headers win, lets
``Transfer-Encoding: chunked`` silently override ``Content-Length``, accepts
``int()``'s lenient spellings (``+5``, ``5_0``, ``0x10``) and reads a negative
chunk size as the last chunk. Here:

- a repeated ``Content-Length`` or ``Transfer-Encoding``, a ``Content-Length``
  that is not plain digits, and both headers together are answered 400;
- a chunk-size line that is not plain hex digits (with an optional
  extension) ends the request with 400 and closes the connection;
- a header line over ``MAX_FIELD_BYTES`` is answered 400 (the total stays
  bounded by cheroot's ``max_request_header_size``, answered 413);
- an ``If`` header (RFC 4918) must be well formed: WsgiDAV parses it with a
  regular expression that is quadratic on unbalanced ``<``/``(`` and holds the
  GIL meanwhile, so a malformed one is refused before WsgiDAV sees it.
"""

from __future__ import annotations

import re
from typing import Any

from cheroot.server import HeaderReader, HTTPRequest
from wsgidav.dav_error import HTTP_BAD_REQUEST, DAVError

MAX_FIELD_BYTES = 20 * 1024
"""Longest header line (name, value and CRLF): room for a ``Destination`` as long as
the path limits allow (``davserver.pathlimits``: 16 KiB), which then decide."""

UNREAD_BODY_DRAIN = 64 * 1024
"""An unread request body up to this size is read past after an error answer (so the
connection can serve the next request); a larger one closes the connection."""

_SINGLE = (b"Content-Length", b"Transfer-Encoding")
_DIGITS = re.compile(rb"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}(?:[ \t]*;[^\r\n]*)?\r\n")
# Unambiguous, so a full match runs in linear time (WsgiDAV's findall does not).
_IF_HEADER = re.compile(rb"[ \t]*(?:(?:<[^>]+>|\([^)]+\))[ \t]*)+")


class MalformedBody(DAVError):
    """The request body's chunked framing is broken: answered 400, connection closed."""

    def __init__(self, message: str) -> None:
        super().__init__(HTTP_BAD_REQUEST, context_info=message)
        self.message = message


class _OnceOnly(dict[bytes, bytes]):
    """A header dict that refuses a second value for the framing headers."""

    def __setitem__(self, key: bytes, value: bytes) -> None:
        if key in _SINGLE and key in self:
            raise ValueError(f"repeated {key.decode()} header")
        super().__setitem__(key, value)


class StrictHeaderReader(HeaderReader):
    """cheroot's header reader with the checks in the module docstring (ValueError
    becomes cheroot's 400 with the message as body)."""

    def __call__(self, rfile: Any, hdict: dict[bytes, bytes] | None = None) -> dict[bytes, bytes]:
        headers = _OnceOnly()
        super().__call__(_FieldLimit(rfile), headers)
        length = headers.get(b"Content-Length")
        if length is not None and not _DIGITS.fullmatch(length):
            raise ValueError("Content-Length must be decimal digits")
        if length is not None and b"Transfer-Encoding" in headers:
            raise ValueError("Content-Length and Transfer-Encoding together")
        if_header = headers.get(b"If")
        if if_header is not None and not _IF_HEADER.fullmatch(if_header):
            raise ValueError("malformed If header")
        result = {} if hdict is None else hdict
        result.update(headers)
        return result


class _FieldLimit:
    """Reads header lines, refusing any longer than ``MAX_FIELD_BYTES``."""

    def __init__(self, rfile: Any) -> None:
        self.rfile = rfile

    def readline(self, size: int = -1) -> bytes:
        line: bytes = self.rfile.readline(MAX_FIELD_BYTES + 1)
        if len(line) > MAX_FIELD_BYTES:
            raise ValueError(f"a header line is longer than {MAX_FIELD_BYTES} bytes")
        return line


class ChunkSizeCheck:
    """The connection's reader as ``ChunkedRFile`` sees it: chunk-size lines must be
    plain hex; trailers (after the last chunk) pass as they are."""

    def __init__(self, rfile: Any, request: HTTPRequest) -> None:
        self.rfile = rfile
        self.request = request
        self.trailers = False

    def readline(self, size: int = -1) -> bytes:
        line: bytes = self.rfile.readline(MAX_FIELD_BYTES)  # bounded, whatever the caller asks
        if self.trailers:
            return line
        if not _CHUNK_SIZE.fullmatch(line):
            self.request.close_connection = True
            raise MalformedBody("malformed chunk size in a chunked body")
        self.trailers = int(line.split(b";", 1)[0], 16) == 0
        return line

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.rfile.read(size)
        return data


class StrictRequest(HTTPRequest):
    """cheroot's request with strict framing. A chunked body the application did not
    read to its end closes the connection (its rest must not pass for a request)."""

    header_reader = StrictHeaderReader()

    def respond(self) -> None:
        if not self.chunked_read:
            super().respond()
            return
        connection = self.conn
        original = connection.rfile
        connection.rfile = ChunkSizeCheck(original, self)
        try:
            super().respond()
        finally:
            connection.rfile = original
        if not getattr(self.rfile, "closed", True):
            self.close_connection = True

    def send_headers(self) -> None:
        # An error answered before a large body was read (a 401 to an anonymous PUT)
        # closes the connection: cheroot would otherwise read the whole body first,
        # at whatever pace the client likes.
        unread = getattr(self.rfile, "remaining", 0)
        if int(self.status[:3]) >= 400 and unread > UNREAD_BODY_DRAIN:
            self.close_connection = True
        super().send_headers()
