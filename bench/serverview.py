"""Watching the server from the outside: when does it hold what a client wrote,
and how many bytes did it send and receive meanwhile.

``ServerView`` keeps a replica of the user's tree through the sync API (one
``GET /.drivegate/api/v1/tree`` pass, then the change feed, long-polled) in a thread,
and answers "since when does the server have these files, with these sizes
and SHA-256s" to within the change feed's latency (a long-poll answers at
the commit; while changes stream in, it asks every 0.2 s, so the watcher
costs the server a few requests a second, not one per commit). A version
without a SHA-256 (the mount's delta commits send none) counts by its size;
such files are read back and hashed afterwards (``check_content``).

``Traffic`` adds up the server's request log (``drivegate -v serve``: one
line per request, ``METHOD PATH STATUS BYTES DURATION USER sql=N in=N``)
between two marks: the bytes sent, and the request-body bytes it read.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

# The watcher's own requests: left out of the bytes the server sent (metadata only).
API = "/.drivegate/api/v1"
WATCHER_PATHS = frozenset({f"{API}/me", f"{API}/tree", f"{API}/changes"})
REQUEST_LINE = re.compile(
    r"davserver\.app: (?P<method>[A-Z]+) (?P<path>.*) (?P<status>\S+) (?P<sent>\d+) "
    r"[\d.]+s \S+ sql=\d+ in=(?P<received>\d+)$"
)
UNKNOWN = "unknown"  # a version's SHA-256 the uploader did not send (a delta commit)
BATCH_PAUSE = 0.2  # seconds between change-feed requests while changes keep coming
FileIndex = dict[str, tuple[int, str]]  # relative path -> (size, SHA-256 hex)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while block := f.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def index_files(root: Path) -> FileIndex:
    """Every regular file below ``root``: relative path -> (size, SHA-256)."""
    index: FileIndex = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            index[path.relative_to(root).as_posix()] = (path.stat().st_size, sha256_of(path))
    return index


@dataclass
class Node:
    parent: int | None
    name: str
    kind: str
    size: int
    sha256: str | None


@dataclass
class ServerView:
    """The user's tree as the server has it now, kept current by a thread."""

    url: str  # the server's base URL, ending in /
    auth: tuple[str, str]
    nodes: dict[int, Node] = field(default_factory=dict)
    root_id: int = 0
    changed_at: float = 0.0  # time.monotonic() of the last change applied
    problem: str | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._client = httpx.Client(base_url=self.url + API[1:] + "/", auth=self.auth, timeout=90)
        me = self._client.get("me").raise_for_status().json()
        self.root_id = me["root_id"]
        cursor, after = None, 0
        while True:
            page = self._client.get("tree", params={"after": after, "limit": 10_000})
            body = page.raise_for_status().json()
            cursor = body["cursor"] if cursor is None else cursor
            for node in body["nodes"]:
                self.nodes[node["id"]] = _node(node)
            if body["next_after"] is None:
                break
            after = body["next_after"]
        self.changed_at = time.monotonic()
        self._thread = threading.Thread(target=self._follow, args=(cursor,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(100)
        self._client.close()

    def _follow(self, cursor: int) -> None:
        while not self._stop.is_set():
            try:
                answer = self._client.get(
                    "changes", params={"cursor": cursor, "wait": 5, "limit": 10_000}
                )
                if answer.status_code == 503:
                    time.sleep(0.2)
                    continue
                body = answer.raise_for_status().json()
            except httpx.HTTPError as exc:
                self.problem = f"change feed: {exc!r}"
                time.sleep(0.5)
                continue
            if body["changes"]:
                with self._cond:
                    for change in body["changes"]:
                        if change["node"] is None:
                            self.nodes.pop(change["node_id"], None)
                        else:
                            self.nodes[change["node_id"]] = _node(change["node"])
                    self.changed_at = time.monotonic()
                    self._cond.notify_all()
            cursor = body["cursor"]
            if body["changes"] and not body["more"]:
                # Changes keep coming: let them gather (a few requests a second at most,
                # not one per commit, so the watcher hardly loads the server).
                self._stop.wait(BATCH_PAUSE)

    def files_below(self, prefix: str) -> FileIndex:
        """The files below the folder ``prefix`` (``/a/b``): relative path -> (size, hash)."""
        paths: dict[int, str | None] = {self.root_id: ""}

        def path_of(node_id: int) -> str | None:
            if node_id in paths:
                return paths[node_id]
            node = self.nodes.get(node_id)
            if node is None or node.parent is None:
                return None
            parent = path_of(node.parent)
            path = None if parent is None else f"{parent}/{node.name}"
            paths[node_id] = path
            return path

        found: FileIndex = {}
        start = prefix.rstrip("/") + "/"
        for node_id, node in list(self.nodes.items()):
            if node.kind != "file":
                continue
            path = path_of(node_id)
            if path is not None and path.startswith(start):
                found[path[len(start) :]] = (node.size, node.sha256 or UNKNOWN)
        return found

    def wait_for(self, prefix: str, want: FileIndex, timeout: float) -> float | None:
        """The time (``time.monotonic()``) since which the server holds ``want`` below
        ``prefix`` (sizes and SHA-256s as given), waiting up to ``timeout``; None if
        it does not within that time. Checks at most 5 times a second."""
        deadline = time.monotonic() + timeout
        checked = -1.0
        while True:
            with self._cond:
                if self.changed_at == checked:
                    self._cond.wait(max(0.0, min(1.0, deadline - time.monotonic())))
                checked = self.changed_at
                found = self.files_below(prefix)
            if all(_matches(found.get(path), item) for path, item in want.items()):
                return checked
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.2)

    def check_content(self, prefix: str, want: FileIndex, sample: int) -> list[str]:
        """GET up to ``sample`` of the files in ``want`` over WebDAV, and every one
        without a SHA-256 on the server, and hash them (the SHA-256 in the tree is the
        uploader's word when the mount sent it). The paths whose content differs."""
        wrong = []
        chosen = set(sorted(want)[:: max(1, len(want) // sample)][:sample])
        chosen.update(self.unknown_hashes(prefix, want))
        with httpx.Client(base_url=self.url, auth=self.auth, timeout=120) as dav:
            for path in sorted(chosen):
                digest = hashlib.sha256()
                url = quote(f"{prefix.strip('/')}/{path}")
                with dav.stream("GET", url) as answer:
                    for block in answer.iter_bytes(8 * 1024 * 1024):
                        digest.update(block)
                if answer.status_code != 200 or digest.hexdigest() != want[path][1]:
                    wrong.append(path)
        return wrong

    def missing(self, prefix: str, want: FileIndex) -> int:
        with self._cond:
            found = self.files_below(prefix)
        return sum(1 for path, item in want.items() if not _matches(found.get(path), item))

    def unknown_hashes(self, prefix: str, want: FileIndex) -> list[str]:
        """The files of ``want`` whose version has no SHA-256 on the server."""
        with self._cond:
            found = self.files_below(prefix)
        return [path for path in want if found.get(path, (0, ""))[1] == UNKNOWN]


def _matches(found: tuple[int, str] | None, want: tuple[int, str]) -> bool:
    """Same size and hash; a version without a hash (a mount's delta commit) counts by
    its size, and its content is then read back (``check_content``)."""
    return found is not None and found[0] == want[0] and found[1] in {want[1], UNKNOWN}


def _node(data: dict[str, Any]) -> Node:
    version = data.get("version") or {}
    return Node(data["parent_id"], data["name"], data["kind"], data["size"], version.get("sha256"))


@dataclass
class Tally:
    sent: int = 0  # response bodies
    received: int = 0  # request bodies read
    requests: Counter[str] = field(default_factory=Counter)  # method -> count

    def describe(self) -> str:
        methods = ", ".join(f"{count} {method}" for method, count in self.requests.most_common())
        return (f"server sent {self.sent / 1e6:.3f} MB, received {self.received / 1e6:.3f} MB "
                f"({methods or 'no requests'})")  # fmt: skip


@dataclass
class Traffic:
    """Bytes through the server, from its request log (``drivegate -v serve``)."""

    log: Path

    def mark(self) -> int:
        return self.log.stat().st_size

    def since(self, mark: int) -> Tally:
        tally = Tally()
        with open(self.log, "rb") as f:
            f.seek(mark)
            text = f.read().decode("utf-8", "replace")
        for line in text.splitlines():
            found = REQUEST_LINE.search(line)
            if found is None or found["path"] in WATCHER_PATHS:
                continue
            tally.sent += int(found["sent"])
            tally.received += int(found["received"])
            tally.requests[found["method"]] += 1
        return tally
