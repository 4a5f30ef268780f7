"""Request framing a server behind a proxy must refuse (each a way to smuggle a
request past the proxy), bounded header lines and If headers, and the only
paths that need no login: sent as raw bytes to the real server."""

from __future__ import annotations

import threading
import time

import httpx

from davserver.framing import MAX_FIELD_BYTES
from tests.support.rawhttp import basic, exchange

ALICE = ("alice", "alice-password")


def _put(path: str, headers: str, body: bytes = b"") -> bytes:
    return (
        f"PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {basic(ALICE)}\r\n"
        f"Connection: close\r\n{headers}\r\n"
    ).encode() + body


AMBIGUOUS_LENGTHS = [
    ("Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
    ("Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
    ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    ("Content-Length: +5\r\n", b"hello"),
    ("Content-Length: -1\r\n", b""),
    ("Content-Length: 5_0\r\n", b"hello"),
]


def test_ambiguous_body_length_is_refused(dav_url: str, http: httpx.Client) -> None:
    for headers, body in AMBIGUOUS_LENGTHS:
        status, answer = exchange(dav_url, _put("/smuggled.txt", headers, body))
        assert status == 400, (headers, answer)
        assert b"Content-Length" in answer or b"Transfer-Encoding" in answer  # says what is wrong
    assert http.get("/smuggled.txt").status_code == 404


def test_malformed_chunk_size_is_refused(dav_url: str, http: httpx.Client) -> None:
    for size_line in [b"-5", b"0x5", b"+5", b"5_0", b" ", b"z", b"5" * 20]:
        body = size_line + b"\r\nhello\r\n0\r\n\r\n"
        request = _put("/chunked.txt", "Transfer-Encoding: chunked\r\n", body)
        status, answer = exchange(dav_url, request)
        assert status == 400, (size_line, answer)
        assert b"chunk size" in answer
    assert http.get("/chunked.txt").status_code == 404


def test_malformed_chunk_size_is_refused_by_the_sync_api(dav_url: str) -> None:
    body = b"-5\r\n{}\r\n0\r\n\r\n"
    request = (
        f"POST /.drivegate/api/v1/mkdir HTTP/1.1\r\nHost: x\r\nAuthorization: {basic(ALICE)}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode() + body
    status, answer = exchange(dav_url, request)
    assert status == 400, answer
    assert b"chunk size" in answer


def test_well_formed_chunked_body_still_works(dav_url: str, http: httpx.Client) -> None:
    body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    status, answer = exchange(dav_url, _put("/chunked.txt", "Transfer-Encoding: chunked\r\n", body))
    assert status == 201, answer
    assert http.get("/chunked.txt").content == b"hello world"


def test_long_header_lines_are_refused(dav_url: str) -> None:
    long_line = "a" * (MAX_FIELD_BYTES + 1)
    request = f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: {long_line}\r\n\r\n".encode()
    status, answer = exchange(dav_url, request)
    assert status == 400 and f"longer than {MAX_FIELD_BYTES} bytes".encode() in answer


def _if_request(if_header: str) -> bytes:
    return (
        f"PUT /if.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {basic(ALICE)}\r\n"
        f"If: {if_header}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
    ).encode()


def test_malformed_if_header_is_refused_before_webdav_parses_it(
    dav_url: str, http: httpx.Client
) -> None:
    started = time.monotonic()
    status, answer = exchange(dav_url, _if_request("<" * 8000))
    assert status == 400 and b"malformed If header" in answer
    status, answer = exchange(dav_url, _if_request("(" * 4000 + "<a>"))
    assert status == 400 and b"malformed If header" in answer
    status, answer = exchange(dav_url, _if_request("<" * 50_000))
    assert status == 400
    assert time.monotonic() - started < 2  # WsgiDAV's own parser took ~10 s on the last one
    assert http.get("/if.txt").status_code == 404


def test_well_formed_if_header_with_lock_tokens_still_parses(dav_url: str) -> None:
    tokens = " ".join(f'(<opaquelocktoken:{i:08d}-0000> ["etag"])' for i in range(20))
    status, answer = exchange(dav_url, _if_request(f"<{dav_url}if.txt> {tokens}"))
    assert status == 201, answer  # passed on to WebDAV, which found no lock to honour


def test_healthz_stays_fast_while_long_if_headers_arrive(dav_url: str) -> None:
    def attack() -> None:
        for _ in range(5):
            exchange(dav_url, _if_request("<" * 60_000))

    attackers = [threading.Thread(target=attack) for _ in range(4)]
    for thread in attackers:
        thread.start()
    try:
        for _ in range(10):
            started = time.monotonic()
            assert httpx.get(dav_url + "healthz").status_code == 200
            assert time.monotonic() - started < 2
    finally:
        for thread in attackers:
            thread.join()


def test_only_the_dir_browser_assets_are_public(dav_url: str, http: httpx.Client) -> None:
    assert httpx.get(dav_url + ":dir_browser/style.css").status_code == 200
    assert httpx.head(dav_url + ":dir_browser/logo.svg").status_code == 200
    for path in [":dir_browserX", ":dir_browserX/style.css", ":dir_browser/", ":dir_browser",
                 ":dir_browser/template.html", ":dir_browser/nothing.css",
                 ":dir_browser/__init__.py", ":dir_browser/favicon.ico"]:  # fmt: skip
        assert httpx.get(dav_url + path).status_code == 401, path
    assert httpx.request("PROPFIND", dav_url + ":dir_browser/style.css").status_code == 401
    assert httpx.delete(dav_url + ":dir_browser/style.css").status_code == 401
    assert http.get("/:dir_browserX").status_code == 404  # logged in: a name in alice's root
