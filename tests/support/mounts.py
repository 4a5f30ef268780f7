"""Helpers for the mount tests: a real ``drivegate serve`` whose request log
is kept (to count chunk fetches on the server side), real ``drivegate
mount`` processes that are always unmounted afterwards, and polling with a
deadline (eventual visibility, never a timing assertion)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.support import ROOT
from tests.support.serve import Serve, start_serve

T = TypeVar("T")


def drivegate(*args: str, stdin: str | None = None, timeout: float = 60,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the ``drivegate`` command (this checkout) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "drivegate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        check=False,
    )


REQUEST_LINE = re.compile(
    r" (?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) (?P<sent>\d+) \S+ \S+"
    r" sql=\d+ in=(?P<received>\d+)$"
)


@dataclass(frozen=True)
class Request:
    """One line of the server's request log: status, body bytes sent and received."""

    method: str
    path: str
    status: int
    sent: int
    received: int


@dataclass
class LoggedServer(Serve):
    """A ``drivegate serve`` process whose output (one line per request) goes to ``log``."""

    def _lines(self) -> list[str]:
        assert self.log is not None
        return self.log.read_text().splitlines()

    def chunk_gets(self) -> list[str]:
        """Hashes of the chunk GETs the server answered so far, in order."""
        hashes = []
        for line in self._lines():
            parts = line.split()
            if "GET" in parts:
                at = parts.index("GET")
                path = parts[at + 1] if at + 1 < len(parts) else ""
                if path.startswith("/.drivegate/api/v1/chunks/"):
                    hashes.append(path.rsplit("/", 1)[1])
        return hashes

    def requests(self) -> list[Request]:
        """Every request logged so far, in order."""
        found = []
        for line in self._lines():
            match = REQUEST_LINE.search(line)
            if match is not None:
                found.append(Request(match["method"], match["path"], int(match["status"]),
                                     int(match["sent"]), int(match["received"])))  # fmt: skip
        return found


def start_server(env: dict[str, str], workdir: Path, port: int = 0) -> LoggedServer:
    """``drivegate serve`` (see ``tests.support.serve``) logging to a new file in
    ``workdir``; the caller stops it."""
    log = workdir / f"server-{time.monotonic_ns()}.log"
    started = start_serve(env=env, cwd=workdir, log=log, port=port)
    return LoggedServer(started.url, started.process, started.log)


@contextmanager
def logged_server(env: dict[str, str], workdir: Path) -> Iterator[LoggedServer]:
    server = start_server(env, workdir)
    try:
        yield server
    finally:
        server.stop()


def mount_args(url: str, mountpoint: Path, cache_dir: Path, *extra: str,
               user: str = "alice") -> list[str]:  # fmt: skip
    return ["mount", url, str(mountpoint), "--user", user, "--password-stdin",
            "--cache-dir", str(cache_dir), *extra]  # fmt: skip


def unmount(mountpoint: Path) -> None:
    """Unmount whatever is there, lazily if it is busy, and wait for the mount process."""
    pid = None
    with suppress(OSError, ValueError, KeyError):
        pid = json.loads(os.getxattr(mountpoint, "user.drivegate.mount"))["pid"]
    if os.path.ismount(mountpoint) or is_dead_mount(mountpoint):
        done = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True,
                              check=False)  # fmt: skip
        if done.returncode != 0:
            subprocess.run(["fusermount3", "-uz", str(mountpoint)], capture_output=True,
                           check=False)  # fmt: skip
    if pid is not None:
        wait_for(lambda: not alive(pid), timeout=30, what=f"mount process {pid} to exit")


def is_dead_mount(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == 107  # ENOTCONN: the kernel mount is there, its process is gone
    return False


def alive(pid: int) -> bool:
    """The process runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as proc:
            return proc.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@contextmanager
def mounted(url: str, mountpoint: Path, cache_dir: Path, *extra: str,
            password: str = "alice-password") -> Iterator[Path]:  # fmt: skip
    """``drivegate mount`` in the background; always unmounted afterwards."""
    mountpoint.mkdir(exist_ok=True)
    try:
        result = drivegate(*mount_args(url, mountpoint, cache_dir, *extra), stdin=password + "\n")
        assert result.returncode == 0, result.stderr
        yield mountpoint
    finally:
        unmount(mountpoint)


def wait_for(check: Callable[[], T | None], timeout: float = 10, what: str = "the condition") -> T:
    """Poll until ``check`` returns something truthy; fail after a generous deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def mount_info(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(os.getxattr(path, "user.drivegate.mount"))
    return info


@dataclass
class Hold:
    """Answers a relay holds back (see ``Relay.hold``)."""

    arrived: threading.Event = field(default_factory=threading.Event)  # one is held
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


class Relay(ThreadingHTTPServer):
    """An HTTP relay between a mount and the server: it can play "unreachable"
    (every connection is cut at once), damage the bytes of chosen chunks in
    transit, so the mount's own checks can be seen at work, and hold the server's
    answers to chosen requests (``hold``) after the server has done them, so the
    mount can be seen while a request of its own is on its way."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _RelayHandler)
        self.upstream = httpx.Client(base_url=upstream, timeout=120)
        self.online = True
        self.corrupt: set[str] = set()
        self.chunk_puts_left: int | None = None  # then the link goes down (mid-upload)
        self.holds: dict[str, Hold] = {}  # by path prefix
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # connections cut on purpose (go_offline) end in errors: expected

    def hold(self, path: str) -> Hold:
        """Hold the answers to requests for paths starting with ``path`` (the server
        has done them) until the hold returned is released."""
        hold = self.holds[path] = Hold()
        return hold

    def go_offline(self) -> None:
        self.online = False
        with self.lock:
            for sock in self.connections:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for hold in self.holds.values():
            hold.release()
        self.go_offline()
        self.shutdown()
        self.server_close()
        self.upstream.close()


class _RelayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Relay

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.connections.discard(self.connection)
        with suppress(OSError):
            super().finish()

    def handle_one_request(self) -> None:
        if not self.server.online:
            self.close_connection = True
            return
        with suppress(OSError):
            super().handle_one_request()

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        answer = self.server.upstream.request(self.command, self.path, headers=headers,
                                              content=body)  # fmt: skip
        content = answer.content
        if self.command == "PUT" and self.path.startswith("/.drivegate/api/v1/chunks/"):
            with self.server.lock:
                left = self.server.chunk_puts_left
                if left is not None:
                    self.server.chunk_puts_left = left - 1
            if left == 1:
                self.server.go_offline()
        digest = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/.drivegate/api/v1/chunks/") and digest in self.server.corrupt:
            content = bytes([content[0] ^ 0xFF]) + content[1:]
        for path, hold in list(self.server.holds.items()):
            if self.path.startswith(path):
                hold.arrived.set()
                hold.released.wait(timeout=60)
        if not self.server.online:
            self.close_connection = True
            return
        self.send_response(answer.status_code)
        for key, value in answer.headers.items():
            if key.lower() not in _HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _relay  # noqa: N815 (http.server names)

    def log_message(self, format: str, *args: Any) -> None:
        return None


_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length",
        "content-encoding"}  # fmt: skip


@contextmanager
def relay(upstream: str) -> Iterator[Relay]:
    running = Relay(upstream)
    try:
        yield running
    finally:
        running.close()


def write_noise(path: Path, size: int, seed: int) -> str:
    """Write ``size`` pseudo-random bytes to ``path`` in blocks; return their SHA-256."""
    rng = random.Random(seed)
    hasher = hashlib.sha256()
    with open(path, "wb") as file:
        left = size
        while left:
            block = rng.randbytes(min(left, 16 * 1024 * 1024))
            hasher.update(block)
            file.write(block)
            left -= len(block)
    return hasher.hexdigest()


def put(dav: httpx.Client, path: str, data: bytes) -> None:
    """PUT over WebDAV (new or replaced)."""
    assert dav.put(path, content=data).status_code in (201, 204)


def on_server(dav: httpx.Client, path: str, data: bytes) -> bool:
    """The server has ``data`` at ``path`` (read over WebDAV)."""
    answer = dav.get(path)
    return answer.status_code == 200 and answer.content == data


def exists_on_server(dav: httpx.Client, path: str) -> bool:
    return dav.request("PROPFIND", path, headers={"Depth": "0"}).status_code == 207


def node_at(api: httpx.Client, path: str) -> dict[str, Any]:
    """The node at ``path`` (below the root) as the sync API describes it."""
    node: dict[str, Any] = {"id": api.get("/me").json()["root_id"]}
    for name in path.strip("/").split("/"):
        children = api.get(f"/nodes/{node['id']}/children").json()["nodes"]
        node = next(child for child in children if child["name"] == name)
    return node
