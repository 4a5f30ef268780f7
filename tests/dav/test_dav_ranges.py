"""Range requests on GET and HEAD (RFC 9110 §14), with a raw HTTP client on a real
server: several ranges as ``multipart/byteranges``, unsatisfiable ones 416 with
``Content-Range: bytes */SIZE``, invalid headers ignored (200 with the whole file)."""

from __future__ import annotations

import os

import httpx
import pytest

from davserver.dav.ranges import MAX_RANGES, RangeSpec, Span, parse_ranges, resolve

SIZE = 1_500_000  # spans more than one chunk


def byteranges(response: httpx.Response) -> list[tuple[str, str, bytes]]:
    """The parts of a ``multipart/byteranges`` answer: (Content-Range, Content-Type, bytes)."""
    kind = response.headers["Content-Type"]
    assert kind.startswith("multipart/byteranges; boundary=")
    delimiter = b"\r\n--" + kind.partition("boundary=")[2].encode()
    body = response.content
    assert int(response.headers["Content-Length"]) == len(body)
    if not body.startswith(b"\r\n"):
        body = b"\r\n" + body
    pieces = body.split(delimiter)
    assert pieces[0] == b""
    assert pieces[-1] in (b"--", b"--\r\n")
    parts = []
    for piece in pieces[1:-1]:
        head, _, data = piece.partition(b"\r\n\r\n")
        lines = head.decode("ascii").split("\r\n")
        assert lines[0] == ""
        headers = dict(line.split(": ", 1) for line in lines[1:])
        parts.append((headers["Content-Range"], headers["Content-Type"], data))
    return parts


@pytest.fixture
def data(http: httpx.Client) -> bytes:
    content = os.urandom(SIZE)
    assert http.put("/blob.bin", content=content).status_code == 201
    return content


def _get(http: httpx.Client, spec: str, **headers: str) -> httpx.Response:
    return http.get("/blob.bin", headers={"Range": spec, **headers})


def test_several_ranges_answer_multipart_byteranges(http: httpx.Client, data: bytes) -> None:
    response = _get(http, "bytes=0-9, 1000000-1000099")
    assert response.status_code == 206
    assert "Content-Range" not in response.headers
    assert byteranges(response) == [
        (f"bytes 0-9/{SIZE}", "application/octet-stream", data[:10]),
        (f"bytes 1000000-1000099/{SIZE}", "application/octet-stream", data[1000000:1000100]),
    ]
    # Overlapping ranges are coalesced; parts come in the order they were asked for.
    parts = byteranges(_get(http, "bytes=500-599,0-99,50-149,-10"))
    assert [(r, d) for r, _, d in parts] == [
        (f"bytes 500-599/{SIZE}", data[500:600]),
        (f"bytes 0-149/{SIZE}", data[:150]),
        (f"bytes {SIZE - 10}-{SIZE - 1}/{SIZE}", data[-10:]),
    ]
    head = http.head("/blob.bin", headers={"Range": "bytes=0-9, 1000000-1000099"})
    assert head.status_code == 206 and head.content == b""
    assert head.headers["Content-Length"] == response.headers["Content-Length"]
    many = ",".join(f"{i * 10}-{i * 10}" for i in range(MAX_RANGES))
    assert [d for _, _, d in byteranges(_get(http, f"bytes={many}"))] == [
        data[i * 10 : i * 10 + 1] for i in range(MAX_RANGES)
    ]


def test_ranges_that_come_down_to_one_answer_a_single_part(http: httpx.Client, data: bytes) -> None:
    for spec, start, end in (
        ("bytes=10-19,0-9", 0, 19),  # adjacent: coalesced
        ("bytes=0-0, 9999999-", 0, 0),  # the unsatisfiable one is dropped
        ("bytes=-100", SIZE - 100, SIZE - 1),
        ("bytes=-99999999", 0, SIZE - 1),  # a suffix longer than the file: all of it
        ("bytes=1400000-99999999", 1400000, SIZE - 1),
    ):
        response = _get(http, spec)
        assert response.status_code == 206, spec
        assert response.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}", spec
        assert response.content == data[start : end + 1], spec


def test_unsatisfiable_ranges_answer_416(http: httpx.Client, data: bytes) -> None:
    for spec in ("bytes=-0", f"bytes={SIZE}-", f"bytes={SIZE}-{SIZE + 10}", "bytes=-0,99999999-"):
        response = _get(http, spec)
        assert response.status_code == 416, spec
        assert response.headers["Content-Range"] == f"bytes */{SIZE}", spec
        assert response.text


def test_invalid_or_too_many_ranges_answer_the_whole_file(http: httpx.Client, data: bytes) -> None:
    too_many = ",".join(f"{i * 10}-{i * 10}" for i in range(MAX_RANGES + 1))
    for spec in ("bytes=5-2", "bytes=abc", "bytes=", "items=0-5", "bytes 0-5", f"bytes={too_many}"):
        response = _get(http, spec)
        assert response.status_code == 200, spec
        assert "Content-Range" not in response.headers
        assert response.content == data, spec


def test_conditions_decide_before_ranges(http: httpx.Client, data: bytes) -> None:
    etag = http.head("/blob.bin").headers["ETag"]
    two = "bytes=0-9,20-29"
    assert _get(http, two, **{"If-Range": etag}).status_code == 206
    stale = _get(http, two, **{"If-Range": '"999-999"'})
    assert stale.status_code == 200 and stale.content == data
    weak = _get(http, "bytes=0-9", **{"If-Range": "W/" + etag})
    assert weak.status_code == 200 and weak.content == data
    assert _get(http, two, **{"If-None-Match": etag}).status_code == 304
    assert _get(http, "bytes=-0", **{"If-Match": '"999-999"'}).status_code == 412


def test_a_range_on_an_empty_file_answers_the_empty_file(http: httpx.Client) -> None:
    """No byte to send: the Range is ignored (200), so a client reading from offset 0
    (``bytes=0-``) does not fail on an empty file."""
    http.put("/empty.txt", content=b"")
    for spec in ("bytes=0-", "bytes=-5", "bytes=0-0,5-9"):
        response = http.get("/empty.txt", headers={"Range": spec})
        assert response.status_code == 200, spec
        assert response.content == b""


def test_range_parsing_and_resolution() -> None:
    assert parse_ranges("bytes=0-1, ,-5,7-") == [
        RangeSpec(0, 1),
        RangeSpec(None, 5),
        RangeSpec(7, None),
    ]
    assert parse_ranges("BYTES=1-1") == [RangeSpec(1, 1)]
    for invalid in ("bytes=5-2", "bytes=-", "bytes=1-2-3", "bytes=+1-2", "bytes=,", "x" * 3000):
        assert parse_ranges(invalid) is None, invalid
    assert resolve([RangeSpec(None, 0), RangeSpec(10, None)], 10) == []
    assert resolve([RangeSpec(8, 20), RangeSpec(0, 1), RangeSpec(2, 3)], 10) == [
        Span(8, 9),
        Span(0, 3),
    ]
