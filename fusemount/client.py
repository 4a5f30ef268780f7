"""The sync-API client: :class:`SyncApi` says what the mount needs from the
server, :class:`HttpApi` provides it over ``httpx.AsyncClient`` (under trio).

HTTP answers and transport failures become :mod:`fusemount.errors` classes
in ``_raise_for`` and ``_request`` only (and ``ChunkGetter.get``, which maps
its own transport failures). Timeouts are short for connecting (an
unreachable server must make a read fail within 2 s, not hang) and generous
for reading (a 4 MiB chunk on a slow link).

Chunk GETs, the bulk of the bytes, take a shorter road when nothing stands
in the way (no injected transport, no proxy): :class:`ChunkGetter`, blocking
keep-alive connections of the standard library's ``http.client`` in worker
threads, each GET read and hashed in one thread call. httpx under trio reads
a body in 64 KiB pieces, each a round trip through the event loop, which
costs the mount about twice the CPU of ``ChunkGetter`` (which reads a body
in one C-level call).
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import select
import ssl
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import certifi
import httpx
import trio

from cdc.chunking import ChunkHash, chunk_hash
from fusemount.apirecords import (
    ChangePage,
    CommitTarget,
    Manifest,
    Me,
    Node,
    NodeId,
    TreePage,
    VersionId,
    chunk_hash_of,
)
from fusemount.errors import (
    ApiError,
    BadRequest,
    ChunkCorrupt,
    Conflict,
    Forbidden,
    Locked,
    MountError,
    NotADriveServer,
    NotFound,
    QuotaExceeded,
    ServerError,
    ServerUnreachable,
    Throttled,
    Unauthorized,
)

log = logging.getLogger(__name__)

API_PATH = ".drivegate/api/v1"
"""The sync API, under the server's reserved root (``/api/v1`` is an older alias)."""
CONNECT_TIMEOUT = 1.5
READ_TIMEOUT = 20.0
MAX_WAIT = 60
MISSING_BATCH = 10_000
OCTET_STREAM = {"Content-Type": "application/octet-stream"}  # the server takes bytes only so

_CODES: dict[str, type[ApiError]] = {
    "bad_request": BadRequest,
    "name_invalid": BadRequest,
    "hash_mismatch": BadRequest,
    "unauthorized": Unauthorized,
    "not_found": NotFound,
    "name_taken": Conflict,
    "invalid_move": Conflict,
    "not_a_folder": Conflict,
    "not_a_file": Conflict,
    "version_conflict": Conflict,
    "id_used": Conflict,
    "missing_chunks": Conflict,
    "locked": Locked,
    "forbidden": Forbidden,
    "quota_exceeded": QuotaExceeded,
    "too_large": BadRequest,
    "too_many_requests": Throttled,
    "method_not_allowed": BadRequest,
    "conflict": Conflict,
    "unavailable": ServerError,  # database or store down, or no long-poll slot: retry
    "internal": ServerError,  # e.g. a chunk that fails its hash on the server
}
_STATUSES: dict[int, type[ApiError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: BadRequest, 423: Locked, 429: Throttled, 507: QuotaExceeded,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class BatchAnswer:
    """What ``POST /batch`` did: the answers of the operations done, in order, and why
    the next one was refused (None: all were done)."""

    done: list[Node | None]
    refused: ApiError | None


class SyncApi(Protocol):
    """What the mount needs from a drivegate server (docs/sync-api.md).

    Implementations MUST raise only :class:`~fusemount.errors.MountError`
    subclasses: ``ServerUnreachable`` for anything that means "offline",
    ``ApiError`` subclasses for contract errors. ``chunk`` MUST return only
    bytes whose SHA-256 is ``digest`` (else ``ChunkCorrupt``). Calls MAY run
    concurrently from one trio run.
    """

    async def me(self) -> Me:
        """Who we are; proves the URL and the credentials."""
        ...

    async def tree(self, after: NodeId | None, limit: int = 1000) -> TreePage:
        """One page of the whole live tree, in id order."""
        ...

    async def changes(self, cursor: int, wait: float = 0, limit: int = 1000) -> ChangePage:
        """Changes after ``cursor``, held up to ``wait`` seconds when there are none."""
        ...

    async def node(self, node_id: NodeId) -> Node:
        """One node's current state."""
        ...

    async def children(self, node_id: NodeId) -> list[Node]:
        """The live children of a folder."""
        ...

    async def manifest(self, node_id: NodeId, number: int | None = None) -> Manifest:
        """A version's chunk list (the current one when ``number`` is None)."""
        ...

    async def chunk(self, digest: ChunkHash) -> bytes:
        """A chunk's plaintext, verified against its name."""
        ...

    async def reserve_ids(self, count: int) -> list[NodeId]:
        """Node ids for nodes this client will make (``mkdir``, ``commit``)."""
        ...

    async def move(self, node_id: NodeId, parent_id: NodeId, name: str, overwrite: bool) -> Node:
        """Move or rename; with ``overwrite`` a file moved over a file becomes a new
        version of the target (answered: the target), anything else there is trashed."""
        ...

    async def batch(self, ops: list[dict[str, Any]]) -> BatchAnswer:
        """Do tree operations (``POST /batch``: mkdir, commit, move, delete, patch, as
        JSON) in order until one is refused: what was done, and why the next was not."""
        ...

    async def missing(self, hashes: list[ChunkHash]) -> set[ChunkHash]:
        """Which of these chunks the server lacks (any number; asked in batches)."""
        ...

    async def put_chunk(self, digest: ChunkHash, data: bytes) -> None:
        """Upload one chunk (the server checks its name)."""
        ...

    async def commit(self, target: CommitTarget, size: int, chunks: list[tuple[ChunkHash, int]], *,
                     mtime_ns: int | None = None, sha256: str | None = None,
                     splice: tuple[int, int] | None = None) -> Node:  # fmt: skip
        """Make the chunks (all on the server) the file's new content; Conflict
        (version_conflict, name_taken) when the target is not as expected. With
        ``splice`` (start, end), the chunks replace those entries of the base
        version's manifest and ``size`` is still the whole new size."""
        ...

    async def patch(self, node_id: NodeId, base_version_id: VersionId, size: int,
                    ranges: list[tuple[int, bytes]], *, mtime_ns: int | None = None
                    ) -> Node:  # fmt: skip
        """Write ``ranges`` (offset, bytes; in order, disjoint) over the base version
        (the current one) and set the size, as the file's new version: the server
        re-cuts the chunks around them itself. Conflict (version_conflict) when the
        base is no longer current."""
        ...


class HttpApi:
    """:class:`SyncApi` over HTTP. Use as an async context manager (it owns the connection pool)."""

    def __init__(
        self,
        base_url: str,
        user: str,
        secret: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self._timeout = httpx.Timeout(READ_TIMEOUT, connect=connect_timeout)
        self._getter = (
            ChunkGetter(self.base_url, user, secret, connect_timeout)
            if transport is None and ChunkGetter.usable(self.base_url)
            else None
        )
        self._client = httpx.AsyncClient(
            base_url=self.base_url + API_PATH + "/",
            auth=(user, secret),
            timeout=self._timeout,
            transport=transport,
            headers={"User-Agent": "drivegate-mount/1"},
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )

    async def __aenter__(self) -> HttpApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._getter is not None:
            self._getter.close()
        await self._client.aclose()

    async def me(self) -> Me:
        return Me.from_json(await self._json("GET", "me"))

    async def tree(self, after: NodeId | None, limit: int = 1000) -> TreePage:
        params: dict[str, int] = {"limit": limit}
        if after is not None:
            params["after"] = after
        return TreePage.from_json(await self._json("GET", "tree", params=params))

    async def changes(self, cursor: int, wait: float = 0, limit: int = 1000) -> ChangePage:
        wait = max(0, min(int(wait), MAX_WAIT))
        params = {"cursor": cursor, "wait": wait, "limit": limit}
        timeout = httpx.Timeout(wait + READ_TIMEOUT, connect=self._timeout.connect)
        return ChangePage.from_json(
            await self._json("GET", "changes", params=params, timeout=timeout)
        )

    async def node(self, node_id: NodeId) -> Node:
        return Node.from_json(await self._json("GET", f"nodes/{node_id}"))

    async def children(self, node_id: NodeId) -> list[Node]:
        answer = await self._json("GET", f"nodes/{node_id}/children")
        if not isinstance(answer, dict) or not isinstance(answer.get("nodes"), list):
            raise NotADriveServer("malformed answer: children without 'nodes'")
        return [Node.from_json(node) for node in answer["nodes"]]

    async def manifest(self, node_id: NodeId, number: int | None = None) -> Manifest:
        params = {} if number is None else {"version": number}
        return Manifest.from_json(
            await self._json("GET", f"nodes/{node_id}/manifest", params=params)
        )

    async def chunk(self, digest: ChunkHash) -> bytes:
        if self._getter is not None:
            # Abandoned on cancel: the thread ends within its timeouts and pools its connection.
            data, actual = await trio.to_thread.run_sync(
                self._getter.get, digest, abandon_on_cancel=True
            )
        else:
            response = await self._request("GET", f"chunks/{digest}")
            data = response.content
            # Hashing a chunk takes a while and releases the GIL: a worker thread keeps
            # the FUSE loop answering while parallel fetches are verified.
            actual = await trio.to_thread.run_sync(chunk_hash, data)
        if actual != digest:
            log.error("chunk %s from the server hashes to %s: refused", digest, actual)
            raise ChunkCorrupt(f"chunk {digest} from the server does not match its hash")
        return data

    async def reserve_ids(self, count: int) -> list[NodeId]:
        answer = await self._json("POST", "ids", json={"count": count})
        ids = answer.get("ids") if isinstance(answer, dict) else None
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids
        ):
            raise NotADriveServer("malformed answer: ids without a list of node ids")
        return [NodeId(i) for i in ids]

    async def move(self, node_id: NodeId, parent_id: NodeId, name: str, overwrite: bool) -> Node:
        body = {"node_id": node_id, "parent_id": parent_id, "name": name, "overwrite": overwrite}
        return Node.from_json(await self._json("POST", "move", json=body))

    async def batch(self, ops: list[dict[str, Any]]) -> BatchAnswer:
        answer = await self._json("POST", "batch", json={"ops": ops})
        try:
            done = [None if r["node"] is None else Node.from_json(r["node"])
                    for r in answer["results"]]  # fmt: skip
            error = answer.get("error")
            refused = (
                None
                if error is None
                else _error(int(error["status"]), str(error["code"]), str(error["message"]))
            )
        except (KeyError, TypeError, ValueError):
            raise NotADriveServer("malformed answer: batch without results") from None
        if len(done) > len(ops) or (refused is None and len(done) < len(ops)):
            raise NotADriveServer("malformed answer: batch results do not match the operations")
        return BatchAnswer(done, refused)

    async def missing(self, hashes: list[ChunkHash]) -> set[ChunkHash]:
        absent: set[ChunkHash] = set()
        for start in range(0, len(hashes), MISSING_BATCH):
            batch = hashes[start : start + MISSING_BATCH]
            answer = await self._json("POST", "chunks/missing", json={"hashes": batch})
            if not isinstance(answer, dict) or not isinstance(answer.get("missing"), list):
                raise NotADriveServer("malformed answer: chunks/missing without 'missing'")
            absent.update(chunk_hash_of(value) for value in answer["missing"])
        return absent

    async def put_chunk(self, digest: ChunkHash, data: bytes) -> None:
        await self._request("PUT", f"chunks/{digest}", content=data, headers=OCTET_STREAM)

    async def commit(self, target: CommitTarget, size: int, chunks: list[tuple[ChunkHash, int]], *,
                     mtime_ns: int | None = None, sha256: str | None = None,
                     splice: tuple[int, int] | None = None) -> Node:  # fmt: skip
        body: dict[str, Any] = {
            **target.json(), "size": size, "mtime_ns": mtime_ns, "sha256": sha256,
            "chunks": [{"hash": digest, "length": length} for digest, length in chunks],
        }  # fmt: skip
        if splice is not None:
            body["splice"] = {"start": splice[0], "end": splice[1]}
        return Node.from_json(await self._json("POST", "commit", json=body))

    async def patch(self, node_id: NodeId, base_version_id: VersionId, size: int,
                    ranges: list[tuple[int, bytes]], *, mtime_ns: int | None = None
                    ) -> Node:  # fmt: skip
        params: dict[str, Any] = {
            "base_version_id": base_version_id, "size": size,
            "ranges": ",".join(f"{offset}:{len(data)}" for offset, data in ranges),
        }  # fmt: skip
        if mtime_ns is not None:
            params["mtime_ns"] = mtime_ns
        body = b"".join(data for _, data in ranges)
        answer = await self._json(
            "POST", f"nodes/{node_id}/patch", params=params, content=body, headers=OCTET_STREAM
        )
        return Node.from_json(answer)

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise NotADriveServer(
                f"{self.base_url} answered {path} with something that is not JSON"
            ) from None

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach {self.base_url}: {_describe(exc)}") from None
        if response.is_success:
            return response
        raise _raise_for(response, self.base_url)


class ChunkGetter:
    """``GET chunks/{hash}`` on blocking keep-alive connections (``http.client``),
    for worker threads: :meth:`get` fetches and hashes one chunk (see the module
    docstring for why). Thread-safe; idle connections are pooled."""

    def __init__(self, base_url: str, user: str, secret: str, connect_timeout: float) -> None:
        parts = urlsplit(base_url)
        self._base_url = base_url
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path.rstrip("/") + "/" + API_PATH + "/chunks/"
        token = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {token}", "User-Agent": "drivegate-mount/1"}
        self._connect_timeout = connect_timeout
        self._ssl = ssl.create_default_context(cafile=certifi.where()) if self._https else None
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    @staticmethod
    def usable(base_url: str) -> bool:
        """http(s) without a proxy from the environment (httpx would use one)."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        proxies = urllib.request.getproxies()
        if parts.scheme not in proxies and "all" not in proxies:
            return True
        return bool(urllib.request.proxy_bypass(parts.hostname))

    def get(self, digest: ChunkHash) -> tuple[bytes, ChunkHash]:
        """The chunk's bytes and what they hash to; MountError as :meth:`HttpApi._request`."""
        path = self._prefix + digest
        for attempt in range(2):
            connection, reused = self._connection(pooled=attempt == 0)
            try:
                connection.request("GET", path, headers=self._headers)
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                if reused and not isinstance(exc, TimeoutError):
                    continue  # the server closed an idle connection: once more on a new one
                raise ServerUnreachable(
                    f"cannot reach {self._base_url}: {_describe_os(exc)}"
                ) from None
            self._release(connection, response.will_close)
            if 200 <= response.status < 300:
                return body, chunk_hash(body)
            request = httpx.Request("GET", self._origin + path)
            answer = httpx.Response(
                response.status, headers=response.getheaders(), content=body, request=request
            )
            raise _raise_for(answer, self._base_url)
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _connection(self, pooled: bool) -> tuple[http.client.HTTPConnection, bool]:
        while pooled:
            with self._lock:
                if not self._idle:
                    break
                idle = self._idle.pop()
            if _still_open(idle):
                return idle, True
            idle.close()  # the server closed it while it was idle
        connection: http.client.HTTPConnection
        if self._ssl is not None:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._connect_timeout, context=self._ssl
            )
        else:
            connection = http.client.HTTPConnection(
                self._host, self._port, timeout=self._connect_timeout
            )
        try:
            connection.connect()
        except OSError as exc:
            connection.close()
            raise ServerUnreachable(f"cannot reach {self._base_url}: {_describe_os(exc)}") from None
        assert connection.sock is not None
        connection.sock.settimeout(READ_TIMEOUT)
        return connection, False

    def _release(self, connection: http.client.HTTPConnection, will_close: bool) -> None:
        with self._lock:
            if not (will_close or self._closed):
                self._idle.append(connection)
                return
        connection.close()


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """An idle keep-alive connection has nothing to read; if it has, the server closed it."""
    sock = connection.sock
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return not poller.poll(0)


def _describe_os(exc: OSError | http.client.HTTPException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return str(exc) or type(exc).__name__


def _raise_for(response: httpx.Response, base_url: str) -> MountError:
    """The one seam from an HTTP error answer to the exception tree."""
    status = response.status_code
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error.get("message") or error["code"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        if status == 401:
            return Unauthorized(
                f"{base_url} refused the credentials (HTTP 401 without a drivegate error body)",
                "unauthorized",
                status,
            )
        if status >= 500:
            return ServerError(f"{base_url} failed with HTTP {status}", "", status)
        return NotADriveServer(
            f"{base_url} is not a drivegate server (HTTP {status} on {response.url.path})"
        )
    return _error(status, code, message)


def _error(status: int, code: str, message: str) -> ApiError:
    cls = _CODES.get(code) or _STATUSES.get(status, ServerError)
    if cls is Unauthorized:
        message = "wrong user name, password or token"
    return cls(message, code, status)
