"""curl (the command-line client) against the real server: Range and conditional requests."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import pytest

CREDENTIALS = "alice:alice-password"


def curl(url: str, *args: str) -> tuple[int, dict[str, str], bytes]:
    """Run curl; return the status, the response headers (lower-case names) and the body."""
    binary = shutil.which("curl")
    if binary is None:
        pytest.fail("curl is missing: run scripts/test (it installs Debian's curl)")
    done = subprocess.run(
        [binary, "-sS", "-u", CREDENTIALS, "-D", "-", "-o", "/dev/stdout", *args, url],
        capture_output=True,
        timeout=60,
        check=True,
    )
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):  # curl's "Expect: 100-continue" answer
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def test_curl_range_and_conditional_requests(dav_url: str, tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024)
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    url = dav_url + "data.bin"

    status, headers, _ = curl(url, "-T", str(source))
    assert status == 201
    etag = headers["etag"]

    status, headers, body = curl(url, "-r", "4000000-4000099")
    assert status == 206 and body == data[4000000:4000100]
    assert headers["content-range"] == f"bytes 4000000-4000099/{len(data)}"
    status, _, body = curl(url, "-r", "-10")
    assert status == 206 and body == data[-10:]

    status, _, body = curl(url, "-H", f"If-None-Match: {etag}")
    assert status == 304 and body == b""
    status, _, body = curl(url, "-H", f"If-Match: {etag}", "-r", "0-3")
    assert status == 206 and body == data[:4]
    modified = parsedate_to_datetime(headers["last-modified"])
    later, earlier = (format_datetime(modified + timedelta(days=d), usegmt=True) for d in (1, -1))
    status, _, _ = curl(url, "-H", f"If-Modified-Since: {later}")
    assert status == 304
    status, _, body = curl(url, "-H", f"If-Modified-Since: {earlier}", "-r", "0-3")
    assert status == 206 and body == data[:4]

    stale = tmp_path / "stale.bin"
    stale.write_bytes(b"a lost update")
    status, _, _ = curl(url, "-T", str(stale), "-H", 'If-Match: "1-stale"')
    assert status == 412
    status, _, _ = curl(url, "-T", str(stale), "-H", "If-None-Match: *")
    assert status == 412
    status, _, body = curl(url)
    assert status == 200 and body == data

    status, headers, _ = curl(url, "-T", str(stale), "-H", f"If-Match: {etag}")
    assert status == 204 and headers["etag"] != etag
    status, _, _ = curl(url, "-X", "DELETE", "-H", f"If-Match: {etag}")
    assert status == 412  # the old ETag no longer matches
    status, _, _ = curl(url, "-X", "DELETE", "-H", f"If-Match: {headers['etag']}")
    assert status == 204


def test_a_chunked_put_without_content_length_stores_the_whole_body(
    dav_url: str, tmp_path: Path
) -> None:
    """Finder and davfs2 send bodies with Transfer-Encoding: chunked."""
    data = os.urandom(5 * 1024 * 1024 + 7)
    source = tmp_path / "streamed.bin"
    source.write_bytes(data)
    url = dav_url + "streamed.bin"
    status, _, _ = curl(url, "-T", str(source), "-H", "Transfer-Encoding: chunked")
    assert status == 201
    status, headers, body = curl(url)
    assert status == 200 and body == data and headers["content-length"] == str(len(data))
