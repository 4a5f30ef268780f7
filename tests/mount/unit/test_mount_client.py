"""The mount's API client and reader over real loopback HTTP against small
stdlib servers with canned answers (the real server side is tested in
test_mount_ops / test_mount_fuse): error mapping, chunk verification, reads
that touch only the chunks they need, read-ahead, and an unreachable server
failing fast; chunk GETs on their own connections (ChunkGetter)."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import random
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio

from cdc.chunking import ChunkHash, chunk_hash
from fusemount.apirecords import Node, NodeId, VersionId, VersionRef
from fusemount.cache import ChunkCache
from fusemount.client import HttpApi
from fusemount.connectivity import Connectivity
from fusemount.errors import (
    ChunkCorrupt,
    Conflict,
    NotADriveServer,
    NotFound,
    ServerUnreachable,
    Unauthorized,
)
from fusemount.reader import ChunkSource, FileReader, ReadAhead
from fusemount.replica import Replica

CHUNK = 1000


class FakeDrive:
    """One file of ``chunks`` chunks behind the sync API's URLs, counting chunk GETs."""

    def __init__(self, chunks: int, corrupt: set[int] | None = None) -> None:
        self.blobs = [bytes([i % 256]) * CHUNK for i in range(chunks)]
        self.hashes = [chunk_hash(b) for b in self.blobs]
        self.corrupt = {self.hashes[i] for i in (corrupt or set())}
        self.gets: Counter[str] = Counter()
        self.node = Node(NodeId(5), NodeId(1), "f", "file", chunks * CHUNK, 1,
                         VersionRef(VersionId(9), 1, None))  # fmt: skip

    def answer(self, path: str) -> Canned:
        if path.endswith("/manifest"):
            chunks = [{"offset": i * CHUNK, "length": CHUNK, "hash": h}
                      for i, h in enumerate(self.hashes)]  # fmt: skip
            version = {"id": 9, "number": 1, "size": len(self.blobs) * CHUNK, "sha256": "x"}
            body = {"node_id": 5, "version": version, "chunks": chunks}
            return 200, json.dumps(body).encode(), "application/json"
        if "/chunks/" in path:
            digest = path.rsplit("/", 1)[1]
            self.gets[digest] += 1
            blob = self.blobs[self.hashes.index(ChunkHash(digest))]
            return (
                200,
                b"!" + blob[1:] if digest in self.corrupt else blob,
                "application/octet-stream",
            )
        return 404, error("not_found"), "application/json"


Canned = tuple[int, bytes, str]  # status, body, content type


class _CannedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _CannedServer

    def do_GET(self) -> None:
        status, body, content_type = self.server.answer(self.path.split("?", 1)[0])
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _CannedServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answer: Callable[[str], Canned]) -> None:
        super().__init__(("127.0.0.1", 0), _CannedHandler)
        self.answer = answer


@contextlib.contextmanager
def serving(answer: Callable[[str], Canned]) -> Iterator[str]:
    """A loopback HTTP server answering every GET with ``answer(path)``; its URL."""
    server = _CannedServer(answer)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_reader(tmp_path: Path, drive: FakeDrive, scenario: object) -> None:
    with serving(drive.answer) as url:
        _run_reader(tmp_path, url, drive, scenario)


def _run_reader(tmp_path: Path, url: str, drive: FakeDrive, scenario: object) -> None:
    async def main() -> None:
        api = HttpApi(url, "alice", "pw")
        replica = Replica(tmp_path / "replica.sqlite")
        replica.load_tree(Node(NodeId(1), None, "", "folder", 0, 1, None), [drive.node], 1)
        cache = ChunkCache(tmp_path / "cache", 64 * 1024 * 1024)
        connectivity = Connectivity()
        connectivity.came_online()
        source = ChunkSource(api, cache, connectivity)
        reader = FileReader(api, replica, source)
        async with trio.open_nursery() as nursery:
            await nursery.start(source.run)
            await scenario(reader)  # type: ignore[operator]
            nursery.cancel_scope.cancel()
        await api.aclose()
        cache.close()
        replica.close()

    trio.run(main)


def test_a_read_in_the_middle_fetches_only_its_chunk(tmp_path: Path) -> None:
    drive = FakeDrive(100)

    async def scenario(reader: FileReader) -> None:
        data = await reader.read(drive.node, 90 * CHUNK + 10, 1, ReadAhead())
        assert data == drive.blobs[90][10:11]
        assert await reader.read(drive.node, 90 * CHUNK + 500, 1, None) == drive.blobs[90][:1]

    run_reader(tmp_path, drive, scenario)
    assert dict(drive.gets) == {drive.hashes[90]: 1}


def test_sequential_reads_read_ahead_and_fetch_each_chunk_once(tmp_path: Path) -> None:
    drive = FakeDrive(40)

    async def scenario(reader: FileReader) -> None:
        ahead = ReadAhead()
        out = bytearray()
        for offset in range(0, 40 * CHUNK, 700):
            out += await reader.read(drive.node, offset, 700, ahead)
            await trio.sleep(0)
        assert bytes(out) == b"".join(drive.blobs)

    run_reader(tmp_path, drive, scenario)
    assert set(drive.gets) == set(drive.hashes)
    assert max(drive.gets.values()) == 1


def test_a_read_across_chunks_is_joined_in_order(tmp_path: Path) -> None:
    drive = FakeDrive(10)

    async def scenario(reader: FileReader) -> None:
        data = await reader.read(drive.node, 2 * CHUNK - 3, 3 * CHUNK, None)
        assert data == b"".join(drive.blobs)[2 * CHUNK - 3 : 5 * CHUNK - 3]

    run_reader(tmp_path, drive, scenario)
    assert set(drive.gets) == set(drive.hashes[1:5])


def test_a_corrupt_chunk_is_refused_and_never_cached(tmp_path: Path) -> None:
    drive = FakeDrive(3, corrupt={1})

    async def scenario(reader: FileReader) -> None:
        with pytest.raises(ChunkCorrupt):
            await reader.read(drive.node, CHUNK, 10, None)
        assert not reader.source.cache.contains(drive.hashes[1])
        with pytest.raises(ChunkCorrupt):
            await reader.read(drive.node, CHUNK, 10, None)
        assert await reader.read(drive.node, 0, 10, None) == drive.blobs[0][:10]

    run_reader(tmp_path, drive, scenario)
    assert drive.gets[drive.hashes[1]] == 2


def error(code: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": code}}).encode()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, error("unauthorized"), Unauthorized),
        (401, b"<html>login</html>", Unauthorized),
        (404, error("not_found"), NotFound),
        (409, error("version_conflict"), Conflict),
        (404, b"<html>not here</html>", NotADriveServer),
        (200, b"<html>a blog</html>", NotADriveServer),
        (200, b'{"user": "alice"}', NotADriveServer),
    ],
)
def test_answers_map_to_one_error_tree(status: int, body: bytes, expected: type) -> None:
    content_type = "application/json" if body.startswith(b"{") else "text/html"

    async def main(url: str) -> None:
        async with HttpApi(url, "alice", "pw") as api:
            with pytest.raises(expected):
                await api.me()

    with serving(lambda _path: (status, body, content_type)) as url:
        trio.run(main, url)


def test_an_unreachable_server_is_offline_not_an_error_page() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused

        async def main() -> None:
            async with HttpApi(f"http://127.0.0.1:{port}", "alice", "pw") as api:
                with pytest.raises(ServerUnreachable):  # refused: at once, no retries
                    await api.chunk(ChunkHash("0" * 64))

        trio.run(main)


class _ChunkServer(http.server.ThreadingHTTPServer):
    """A stdlib HTTP/1.1 server with chunks under PREFIX/.drivegate/api/v1/chunks/, for
    ChunkGetter: keep-alive, a connection closed after every ``close_every``-th
    answer, errors as the real server words them."""

    daemon_threads = True

    def __init__(self, blobs: dict[str, bytes], close_every: int = 0) -> None:
        super().__init__(("127.0.0.1", 0), _ChunkHandler)
        self.blobs = blobs
        self.close_every = close_every
        self.answers = 0
        self.connections = 0
        self.sockets: list[socket.socket] = []

    def close_idle(self) -> None:
        """As a server's keep-alive timeout does: close every connection."""
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _ChunkHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ChunkServer

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1
        self.server.sockets.append(self.connection)

    def do_GET(self) -> None:
        self.server.answers += 1
        if self.headers["Authorization"] != "Basic " + base64.b64encode(b"alice:pw").decode():
            self._send(401, error("unauthorized"))
        elif (body := self.server.blobs.get(self.path.rsplit("/", 1)[1])) is not None:
            self._send(200, body)
        else:
            self._send(404, error("not_found"))
        every = self.server.close_every
        if every and self.server.answers % every == 0:
            self.close_connection = True  # silently: the client learns on its next request
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def chunk_server(blobs: dict[str, bytes], close_every: int = 0) -> Iterator[_ChunkServer]:
    server = _ChunkServer(blobs, close_every)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_chunk_gets_reuse_connections_and_survive_one_the_server_closed() -> None:
    blobs = [random.Random(i).randbytes(100_000 + i) for i in range(6)]
    by_hash: dict[str, bytes] = {chunk_hash(b): b for b in blobs}

    async def main(url: str) -> None:
        async with HttpApi(url, "alice", "pw") as api:
            for _ in range(2):
                for digest, data in by_hash.items():
                    assert await api.chunk(ChunkHash(digest)) == data

    with chunk_server(by_hash) as server:
        trio.run(main, f"http://127.0.0.1:{server.server_port}/drive")
        assert server.answers == 12
        assert server.connections == 1  # one after the other: one keep-alive connection
    with chunk_server(by_hash, close_every=2) as server:
        trio.run(main, f"http://127.0.0.1:{server.server_port}/")
        assert server.answers == 12
        assert server.connections > 1  # the closed ones were replaced, each GET answered


@pytest.mark.parametrize(
    ("user", "digest", "expected"),
    [
        ("alice", "0" * 64, NotFound),
        ("mallory", "0" * 64, Unauthorized),
        ("alice", chunk_hash(b"x"), ChunkCorrupt),  # the server sends other bytes
    ],
)
def test_chunk_get_errors_map_to_the_error_tree(user: str, digest: str, expected: type) -> None:
    async def main(url: str) -> None:
        async with HttpApi(url, user, "pw") as api:
            with pytest.raises(expected):
                await api.chunk(ChunkHash(digest))

    with chunk_server({chunk_hash(b"x"): b"y"}) as server:
        trio.run(main, f"http://127.0.0.1:{server.server_port}")


def test_chunk_gets_after_the_server_closed_every_idle_connection() -> None:
    blobs = [random.Random(i).randbytes(50_000 + i) for i in range(8)]
    by_hash: dict[str, bytes] = {chunk_hash(b): b for b in blobs}

    async def fetch_all(api: HttpApi) -> None:
        async def one(digest: str, data: bytes) -> None:
            assert await api.chunk(ChunkHash(digest)) == data

        async with trio.open_nursery() as nursery:
            for digest, data in by_hash.items():
                nursery.start_soon(one, digest, data)

    async def main(server: _ChunkServer) -> None:
        async with HttpApi(f"http://127.0.0.1:{server.server_port}", "alice", "pw") as api:
            await fetch_all(api)  # in parallel: several connections pooled
            pooled = server.connections
            server.close_idle()
            await trio.sleep(0.05)
            await fetch_all(api)
            assert server.connections > pooled

    with chunk_server(by_hash) as server:
        trio.run(main, server)
