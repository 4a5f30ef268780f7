"""A bounded burst of hostile requests against the real server while a normal
client keeps working: each of its requests must answer within a generous bound,
and the server's resident memory must stay within a bound."""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from core import UserInfo
from tests.conftest import BackendSetup
from tests.support.rawhttp import address, basic, exchange, read_until_closed
from tests.support.servers import drivegate_server

ALICE = ("alice", "alice-password")
THREADS = 8
RSS_GROWTH_LIMIT = 150 * 1024 * 1024
"""How much the server's RSS may grow during an attack (generous: the point is
that it is bounded, not how small it is)."""


@pytest.fixture
def server(backend: BackendSetup, alice: UserInfo, tmp_path: Path) -> Iterator[str]:
    options = ["--threads", str(THREADS), "--long-polls", "2", "--header-timeout", "2"]
    with drivegate_server(backend.env, tmp_path, *options) as url:
        yield url


def server_pid(url: str) -> int:
    """The pid of the process listening on ``url``'s port (from /proc)."""
    port = address(url)[1]
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(f"socket:[{fields[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            continue
        if links & inodes:
            return int(pid)
    raise LookupError(f"nobody listens on port {port}")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise LookupError("no VmRSS")


def normal_client_keeps_working(url: str, rounds: int) -> None:
    """A well-behaved client: each round writes, reads and lists, under 2 s."""
    with httpx.Client(base_url=url, auth=ALICE, timeout=30) as client:
        for i in range(rounds):
            started = time.monotonic()
            assert client.put(f"/normal-{i}.txt", content=b"x" * 1000).is_success
            assert client.get(f"/normal-{i}.txt").content == b"x" * 1000
            assert client.request("PROPFIND", "/", headers={"Depth": "1"}).status_code == 207
            assert client.get("/.drivegate/api/v1/me").status_code == 200
            assert time.monotonic() - started < 2, f"round {i} took too long"


def slowloris(url: str, stop: threading.Event) -> None:
    """One socket that sends a header byte every 0.2 s until it is cut off."""
    with socket.create_connection(address(url), timeout=15) as sock:
        try:
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
                if stop.wait(0.2):
                    return
                sock.sendall(bytes([byte]))
        except OSError:
            return  # cut off, as it should be
        read_until_closed(sock)


def long_headers(url: str, stop: threading.Event) -> None:
    while not stop.is_set():
        many = "".join(f"X-Filler-{i}: {'f' * 8000}\r\n" for i in range(9))  # 72 KB in all
        status, _ = exchange(url, f"GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
        assert status in {400, 413}
        status, _ = exchange(
            url, f"GET / HTTP/1.1\r\nHost: x\r\nX-L: {'a' * 60_000}\r\n\r\n".encode()
        )
        assert status in {400, 413}


def long_if_headers(url: str, stop: threading.Event) -> None:
    while not stop.is_set():
        for if_header in ("<" * 8000, "(" * 8000, "<" * 60_000):
            request = (
                f"PUT /if.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {basic(ALICE)}\r\n"
                f"If: {if_header}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            assert exchange(url, request.encode())[0] == 400


def deep_paths(url: str, stop: threading.Event) -> None:
    """Paths of 1,500 levels (refused before any work) and of distinct depths up to
    the bound (resolved by the database: a statement per depth was cached forever)."""
    depths = itertools.cycle([1500, *range(100, 257, 7)])
    with httpx.Client(base_url=url, auth=ALICE, timeout=60) as client:
        while not stop.is_set():
            deep = "/d" * next(depths)
            assert client.get(deep).status_code in {400, 404, 414}
            propfind = client.request("PROPFIND", deep, headers={"Depth": "0"})
            assert propfind.status_code in {400, 404, 414}
            assert client.request("MKCOL", deep).status_code in {400, 409, 414}


def run_attack(url: str, attackers: list[Callable[[str, threading.Event], None]]) -> None:
    """Run the attackers in threads while the normal client works; RSS bounded."""
    pid = server_pid(url)
    normal_client_keeps_working(url, rounds=2)  # warm: first requests allocate caches
    before = rss_bytes(pid)
    stop = threading.Event()
    failures: list[BaseException] = []

    def guarded(attack: Callable[[str, threading.Event], None]) -> None:
        try:
            attack(url, stop)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=guarded, args=(attack,)) for attack in attackers]
    for thread in threads:
        thread.start()
    peak = before
    try:
        time.sleep(0.5)
        for _ in range(4):
            normal_client_keeps_working(url, rounds=3)
            peak = max(peak, rss_bytes(pid))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures, failures
    assert peak - before < RSS_GROWTH_LIMIT, (before, peak)


def test_normal_client_works_through_header_attacks(server: str) -> None:
    slow = [slowloris] * (THREADS * 3)
    run_attack(server, [*slow, long_headers, long_headers, long_if_headers, long_if_headers])


def test_normal_client_works_through_deep_paths(server: str) -> None:
    run_attack(server, [deep_paths, deep_paths])
