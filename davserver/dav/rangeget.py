"""GET and HEAD with a ``Range`` header: the header is settled here before WsgiDAV
sees it, since WsgiDAV answers only one range, turns a reversed range into a
suffix range and answers ``bytes=-0`` with an invalid ``Content-Range``.

- ignored (invalid syntax, another unit, too many ranges, an ``If-Range`` that
  does not hold, an empty file): the header is dropped and WsgiDAV answers 200
  with the whole file;
- one span (after coalescing): the header is rewritten as ``bytes=FIRST-LAST``
  and WsgiDAV's own single-range path answers 206 (the hot path, unchanged);
- nothing satisfiable: 416 with ``Content-Range: bytes */SIZE``;
- several spans: ``multipart/byteranges`` (RFC 9110 §14.6), streamed here in
  the server's GET block size.

A request that also carries other conditional headers and does not come down
to one span is answered whole by WsgiDAV, which evaluates those headers (a
server may always ignore Range).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from wsgidav import util

from davserver.dav.ranges import Span, parse_ranges, resolve

if TYPE_CHECKING:
    from davserver.dav.provider import DriveProvider

CONDITIONAL = ("HTTP_IF", "HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
               "HTTP_IF_UNMODIFIED_SINCE")  # fmt: skip
DEFAULT_BLOCK = 4 * 1024 * 1024


def settle_range(
    provider: DriveProvider, environ: dict[str, Any], start_response: Callable[..., Any]
) -> list[bytes] | Iterator[bytes] | None:
    """Answer a ranged GET/HEAD that WsgiDAV cannot answer right (416, multipart), or
    rewrite/drop its ``Range`` header and return None for WsgiDAV to answer."""
    resource: Any = provider.get_resource_inst(environ["PATH_INFO"], environ)
    if resource is None or resource.is_collection or not resource.support_ranges():
        return None  # WsgiDAV's 404, or no ranges to speak of
    size: int = resource.get_content_length()
    if_range = environ.pop("HTTP_IF_RANGE", None)
    specs = parse_ranges(environ["HTTP_RANGE"])
    if specs is None or size == 0 or (if_range is not None and not _holds(if_range, resource)):
        del environ["HTTP_RANGE"]
        return None
    spans = resolve(specs, size)
    if len(spans) == 1:
        environ["HTTP_RANGE"] = f"bytes={spans[0].start}-{spans[0].end}"
        return None
    if any(header in environ for header in CONDITIONAL):
        del environ["HTTP_RANGE"]
        return None
    if not spans:
        return _not_satisfiable(environ, start_response, size)
    return _multipart(resource, environ, start_response, spans, size)


def _holds(if_range: str, resource: Any) -> bool:
    """``If-Range``: a strong ETag that is the current one, or the exact Last-Modified."""
    value = if_range.strip()
    if value.startswith('"'):
        etag = resource.get_etag()
        return etag is not None and value == f'"{etag}"'
    if value.startswith("W/"):
        return False  # a weak validator never holds (RFC 9110 §13.1.5)
    seconds = util.parse_time_string(value)
    modified = resource.get_last_modified()
    return seconds is not None and modified is not None and int(modified) == seconds


def _not_satisfiable(
    environ: dict[str, Any], start_response: Callable[..., Any], size: int
) -> list[bytes]:
    body = f"Range Not Satisfiable: none of the ranges starts before byte {size}\n".encode()
    start_response(
        "416 Range Not Satisfiable",
        [
            ("Content-Range", f"bytes */{size}"),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Date", util.get_rfc1123_time()),
        ],
    )
    return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]


def _multipart(
    resource: Any,
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    spans: list[Span],
    size: int,
) -> list[bytes] | Iterator[bytes]:
    boundary = secrets.token_hex(16)
    kind = resource.get_content_type()
    heads = [
        f"\r\n--{boundary}\r\nContent-Type: {kind}\r\n"
        f"Content-Range: bytes {span.start}-{span.end}/{size}\r\n\r\n".encode()
        for span in spans
    ]
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = sum(map(len, heads)) + sum(span.length for span in spans) + len(tail)
    headers = [
        ("Content-Type", f"multipart/byteranges; boundary={boundary}"),
        ("Content-Length", str(length)),
        ("Accept-Ranges", "bytes"),
        ("Date", util.get_rfc1123_time()),
    ]
    modified = resource.get_last_modified()
    if modified is not None:
        headers.append(("Last-Modified", util.get_rfc1123_time(modified)))
    etag = resource.get_etag()
    if etag is not None:
        headers.append(("ETag", f'"{etag}"'))
    start_response("206 Partial Content", headers)
    if environ["REQUEST_METHOD"] == "HEAD":
        return []
    block = int(environ.get("wsgidav.config", {}).get("block_size", DEFAULT_BLOCK))
    return _parts(resource, spans, heads, tail, block)


def _parts(
    resource: Any, spans: list[Span], heads: list[bytes], tail: bytes, block: int
) -> Iterator[bytes]:
    """The multipart body: each part's head, then its bytes in ``block`` reads."""
    reader = resource.get_content()
    try:
        for span, head in zip(spans, heads, strict=True):
            yield head
            reader.seek(span.start)
            remaining = span.length
            while remaining:
                data = reader.read(min(block, remaining))
                if not data:
                    return  # shorter than announced: the connection closes short
                remaining -= len(data)
                yield data
        yield tail
    finally:
        reader.close()
