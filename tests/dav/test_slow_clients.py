"""Slow clients (slowloris) must not hold the worker threads: more slow sockets
than threads, while a normal client keeps getting answers, against the real
server run with few threads and a short header deadline."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core import UserInfo
from tests.conftest import BackendSetup
from tests.support.rawhttp import address, basic, read_until_closed
from tests.support.servers import drivegate_server

ALICE = ("alice", "alice-password")
THREADS = 4
HEADER_TIMEOUT = 2.0


@pytest.fixture
def few_threads(backend: BackendSetup, alice: UserInfo, tmp_path: Path) -> Iterator[str]:
    options = ["--threads", str(THREADS), "--long-polls", "1"]
    options += ["--header-timeout", str(HEADER_TIMEOUT)]
    with drivegate_server(backend.env, tmp_path, *options) as url:
        yield url


def _drip(sock: socket.socket, data: bytes, stop: threading.Event, pause: float) -> None:
    """Send ``data`` one byte per ``pause`` seconds until done, refused or stopped."""
    for byte in data:
        if stop.wait(pause):
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return


def _assert_answers_quickly(url: str, rounds: int) -> None:
    with httpx.Client(base_url=url, auth=ALICE, timeout=30) as client:
        for _ in range(rounds):
            started = time.monotonic()
            assert client.get("/healthz").status_code == 200
            assert client.request("PROPFIND", "/", headers={"Depth": "1"}).status_code == 207
            assert time.monotonic() - started < 2


def test_slow_headers_hold_no_worker_and_are_cut_off(few_threads: str) -> None:
    stop = threading.Event()
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
    sockets = [socket.create_connection(address(few_threads)) for _ in range(THREADS * 3)]
    drips = [threading.Thread(target=_drip, args=(s, head, stop, 0.2)) for s in sockets]
    try:
        for drip in drips:
            drip.start()
        time.sleep(0.5)  # every slow socket has started its request
        _assert_answers_quickly(few_threads, rounds=5)
        # Each slow socket is answered 408 and closed soon after the deadline.
        for sock in sockets:
            sock.settimeout(HEADER_TIMEOUT + 8)
            answer = read_until_closed(sock)
            assert answer.startswith(b"HTTP/1.1 408"), answer
    finally:
        stop.set()
        for drip in drips:
            drip.join()
        for sock in sockets:
            sock.close()


def test_slow_bodies_are_cut_off(few_threads: str) -> None:
    stop = threading.Event()
    head = (
        f"PUT /slow.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {basic(ALICE)}\r\n"
        "Content-Length: 1000\r\n\r\n"
    ).encode()
    sockets = [socket.create_connection(address(few_threads)) for _ in range(THREADS)]
    for sock in sockets:
        sock.sendall(head)
    drips = [threading.Thread(target=_drip, args=(s, b"b" * 1000, stop, 0.2)) for s in sockets]
    try:
        for drip in drips:
            drip.start()
        for sock in sockets:
            sock.settimeout(HEADER_TIMEOUT + 8)
            answer = read_until_closed(sock)  # closed: the body fell behind its pace
            assert not answer.startswith(b"HTTP/1.1 201"), answer
        _assert_answers_quickly(few_threads, rounds=3)
        with httpx.Client(base_url=few_threads, auth=ALICE) as client:
            assert client.get("/slow.txt").status_code == 404
    finally:
        stop.set()
        for drip in drips:
            drip.join()
        for sock in sockets:
            sock.close()
