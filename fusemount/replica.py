"""The local metadata replica: the whole tree of one user's drive, the change
cursor, the manifests of versions read so far, and the user's pins, in one
SQLite file in the cache dir (``replica.sqlite``).

The mount answers every metadata request from here, online or offline. The
tree is loaded once (``load_tree``) and then kept exact by applying the change
feed in order (``apply``), each page in one transaction with its cursor, so a
crash or restart resumes from a cursor that matches the rows.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import unicodedata
from collections.abc import Callable, Collection, Container, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from cdc.chunking import ChunkHash
from fusemount.apirecords import Change, ChunkSpan, Manifest, Node, NodeId, VersionId, VersionRef
from fusemount.errors import SetupError

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- One row per live node (the root too: parent_id NULL, name ''). (parent_id,
-- name) is unique once a page of changes is applied, but not while it is
-- applied (each change carries the node's *current* state), so no UNIQUE.
CREATE TABLE IF NOT EXISTS nodes (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('file', 'folder')),
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    version_id INTEGER,          -- NULL for folders
    version_number INTEGER,
    sha256 TEXT,
    locked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS nodes_by_parent ON nodes (parent_id, name);
CREATE INDEX IF NOT EXISTS nodes_by_version ON nodes (version_id);

-- Manifests of versions read or hydrated (immutable on the server). Kept
-- while some node shows the version; pruned after each page of changes.
CREATE TABLE IF NOT EXISTS manifests (
    version_id INTEGER PRIMARY KEY,
    node_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS manifest_chunks (
    version_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    length INTEGER NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (version_id, idx)
) WITHOUT ROWID;

-- Nodes the user pinned. A pinned folder pins everything below it, including
-- files that arrive later (pinning is evaluated through the ancestry).
CREATE TABLE IF NOT EXISTS pins (node_id INTEGER PRIMARY KEY);
"""

_NODE_COLUMNS = (
    "id, parent_id, name, kind, size, mtime_ns, version_id, version_number, sha256, locked"
)
_SUBTREE = """
WITH RECURSIVE sub(id) AS (
    SELECT ? UNION SELECT n.id FROM nodes n JOIN sub ON n.parent_id = sub.id
)"""
_PINNED_SUBTREES = """
WITH RECURSIVE sub(id) AS (
    SELECT node_id FROM pins UNION SELECT n.id FROM nodes n JOIN sub ON n.parent_id = sub.id
)"""


@dataclass(frozen=True, slots=True)
class Effect:
    """What one applied change did to a node: its state before and after (None: absent)."""

    old: Node | None
    new: Node | None


def _node(row: tuple[object, ...]) -> Node:
    (node_id, parent_id, name, kind, size, mtime_ns, version_id, number, sha256, locked) = row
    version = None
    if version_id is not None:
        version = VersionRef(VersionId(int(str(version_id))), int(str(number)),
                             None if sha256 is None else str(sha256))  # fmt: skip
    return Node(
        id=NodeId(int(str(node_id))),
        parent_id=None if parent_id is None else NodeId(int(str(parent_id))),
        name=str(name),
        kind="file" if kind == "file" else "folder",
        size=int(str(size)),
        mtime_ns=int(str(mtime_ns)),
        version=version,
        locked=bool(locked),
    )


def _row(node: Node) -> tuple[object, ...]:
    version = node.version
    return (
        node.id, node.parent_id, node.name, node.kind, node.size, node.mtime_ns,
        None if version is None else version.id, None if version is None else version.number,
        None if version is None else version.sha256, int(node.locked),
    )  # fmt: skip


def _older(version: VersionRef | None, than: VersionRef | None) -> bool:
    return version is not None and than is not None and version.id < than.id


def normalize(name: str) -> str:
    """Names are compared in NFC, as the server stores them."""
    return unicodedata.normalize("NFC", name)


class Replica:
    """The replica database. Used from the mount's trio thread only (one connection)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        # Bumped by every change learnt outside the feed (``upsert``, ``remove``), with the
        # nodes it touched: a page of changes fetched before such a change may show those
        # nodes' older state (see ``FeedFollower.next_page``).
        self.local_generation = 0
        self._touched: dict[NodeId, int] = {}
        self._reserved_names: frozenset[str] | None = None
        self.pins = PinRows(self._db, self._transaction)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error:
            if self._db.in_transaction:  # a COMMIT that failed (disk full) leaves it open
                self._db.execute("ROLLBACK")
            raise

    # -- identity and cursor ------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, db: sqlite3.Connection, key: str, value: object) -> None:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))

    def bind(self, url: str, user: str) -> None:
        """Tie this replica to one drive; refuse a cache dir that belongs to another."""
        known = (self._meta("url"), self._meta("user"))
        if known == (None, None):
            with self._transaction() as db:
                self._set_meta(db, "url", url)
                self._set_meta(db, "user", user)
        elif known != (url, user):
            raise SetupError(
                f"the cache dir {self.path.parent} belongs to {known[1]} at {known[0]};"
                " choose another --cache-dir"
            )

    @property
    def cursor(self) -> int | None:
        value = self._meta("cursor")
        return None if value is None else int(value)

    def remember_account(self, quota: int | None, used: int) -> None:
        """The user's quota and usage as last seen (statfs answers from it, offline too)."""
        with self._transaction() as db:
            self._set_meta(db, "quota", "" if quota is None else quota)
            self._set_meta(db, "used", used)

    def remember_reserved_names(self, names: frozenset[str]) -> None:
        """The names the server reserves at the drive's top, as it last said."""
        with self._transaction() as db:
            self._set_meta(db, "reserved_names", json.dumps(sorted(names)))
        self._reserved_names = names

    @property
    def reserved_names(self) -> frozenset[str]:
        """The names to refuse at the drive's top (empty until the server has said)."""
        if self._reserved_names is None:
            value = self._meta("reserved_names")
            self._reserved_names = frozenset(json.loads(value)) if value else frozenset()
        return self._reserved_names

    def account(self) -> tuple[int | None, int]:
        quota, used = self._meta("quota"), self._meta("used")
        return (int(quota) if quota else None), int(used or 0)

    @property
    def root_id(self) -> NodeId | None:
        value = self._meta("root_id")
        return None if value is None else NodeId(int(value))

    # -- loading and applying changes -----------------------------------------

    def load_tree(
        self, root: Node, nodes: Iterable[Node], cursor: int, keep: Collection[NodeId] = ()
    ) -> None:
        """Replace the whole tree (first mount, or a cursor the server forgot), except
        the nodes in ``keep`` (changed here and not yet sent: they stay as they are)."""
        kept = [node for node_id in keep if (node := self.get(node_id)) is not None]
        with self._transaction() as db:
            db.execute("DELETE FROM nodes")
            db.execute(f"INSERT INTO nodes ({_NODE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                       _row(root))  # fmt: skip
            db.executemany(
                f"INSERT OR REPLACE INTO nodes ({_NODE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (_row(node) for node in nodes if node.id not in keep),
            )
            db.executemany(
                f"INSERT OR REPLACE INTO nodes ({_NODE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (_row(node) for node in kept),
            )
            db.execute("DELETE FROM pins WHERE node_id NOT IN (SELECT id FROM nodes)")
            self._prune_manifests(db)
            self._set_meta(db, "root_id", root.id)
            self._set_meta(db, "cursor", cursor)

    def apply(
        self, changes: Iterable[Change], cursor: int, skip: Container[NodeId] = ()
    ) -> list[Effect]:
        """Apply one page of changes in order, with its cursor, in one transaction
        (leaving out the nodes in ``skip``)."""
        effects: list[Effect] = []
        with self._transaction() as db:
            for change in changes:
                if change.node_id in skip:
                    continue
                if change.node is None:
                    effects.extend(self._remove_subtree(db, change.node_id))
                else:
                    old = self._get(db, change.node_id)
                    db.execute(
                        f"INSERT OR REPLACE INTO nodes ({_NODE_COLUMNS}) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?)",
                        _row(change.node),
                    )
                    effects.append(Effect(old, change.node))
            self._prune_manifests(db)
            self._set_meta(db, "cursor", cursor)
        return effects

    def upsert(self, nodes: Iterable[Node]) -> list[Effect]:
        """Add nodes learnt outside the change feed (a new folder's listing)."""
        effects = []
        nodes = list(nodes)
        self._touch(node.id for node in nodes)
        with self._transaction() as db:
            for node in nodes:
                old = self._get(db, node.id)
                if old != node:
                    db.execute(
                        f"INSERT OR REPLACE INTO nodes ({_NODE_COLUMNS}) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?)",
                        _row(node),
                    )
                    effects.append(Effect(old, node))
        return effects

    def set_content(self, nodes: Iterable[Node]) -> list[Effect]:
        """New content learnt from an upload's answer. Only the content (size, mtime,
        version) is taken from it: a rename the mount made while the upload ran may be
        newer than the answer's place, and a version the change feed brought meanwhile
        newer than its version (then nothing changes). Unknown nodes come in whole."""
        current = []
        for node in nodes:
            old = self.get(node.id)
            if old is None:
                current.append(node)
            elif not _older(node.version, old.version):
                current.append(replace(old, size=node.size, mtime_ns=node.mtime_ns,
                                       version=node.version, locked=node.locked))  # fmt: skip
        return self.upsert(current)

    def remove(self, node_id: NodeId) -> list[Effect]:
        """Drop a node and everything below it, learnt outside the change feed (a delete
        or an overwriting move the mount made; the feed repeats it later, harmlessly)."""
        self._touch([node_id])
        with self._transaction() as db:
            effects = self._remove_subtree(db, node_id)
            self._prune_manifests(db)
        return effects

    def touch(self, node_ids: Iterable[NodeId]) -> None:
        """The server changed these nodes at our request (their state here is already
        the new one): a page of changes fetched before must not undo that."""
        self._touch(node_ids)

    def _touch(self, node_ids: Iterable[NodeId]) -> None:
        self.local_generation += 1
        self._touched.update((node_id, self.local_generation) for node_id in node_ids)

    def touched_since(self, generation: int) -> set[NodeId]:
        """Nodes changed outside the feed after ``generation`` (and forget older ones)."""
        self._touched = {n: g for n, g in self._touched.items() if g > generation}
        return set(self._touched)

    def _remove_subtree(self, db: sqlite3.Connection, node_id: NodeId) -> list[Effect]:
        rows = db.execute(
            f"{_SUBTREE} SELECT {_NODE_COLUMNS} FROM nodes WHERE id IN sub", (node_id,)
        ).fetchall()
        removed = [_node(row) for row in rows]
        db.executemany("DELETE FROM nodes WHERE id = ?", ((n.id,) for n in removed))
        db.executemany("DELETE FROM pins WHERE node_id = ?", ((n.id,) for n in removed))
        return [Effect(node, None) for node in removed]

    def _prune_manifests(self, db: sqlite3.Connection) -> None:
        db.execute(
            "DELETE FROM manifests WHERE version_id NOT IN "
            "(SELECT version_id FROM nodes WHERE version_id IS NOT NULL)"
        )
        db.execute(
            "DELETE FROM manifest_chunks WHERE version_id NOT IN (SELECT version_id FROM manifests)"
        )

    # -- reading the tree -------------------------------------------------------

    def _get(self, db: sqlite3.Connection, node_id: NodeId) -> Node | None:
        row = db.execute(f"SELECT {_NODE_COLUMNS} FROM nodes WHERE id = ?", (node_id,)).fetchone()
        return None if row is None else _node(row)

    def get(self, node_id: NodeId) -> Node | None:
        return self._get(self._db, node_id)

    def child(self, parent_id: NodeId, name: str) -> Node | None:
        row = self._db.execute(
            f"SELECT {_NODE_COLUMNS} FROM nodes WHERE parent_id = ? AND name = ? ORDER BY id",
            (parent_id, normalize(name)),
        ).fetchone()
        return None if row is None else _node(row)

    def children(self, parent_id: NodeId, after: int = 0, limit: int = 1000) -> list[Node]:
        """Children in id order, starting after id ``after`` (a stable readdir offset)."""
        rows = self._db.execute(
            f"SELECT {_NODE_COLUMNS} FROM nodes WHERE parent_id = ? AND id > ? ORDER BY id LIMIT ?",
            (parent_id, after, limit),
        ).fetchall()
        return [_node(row) for row in rows]

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM nodes").fetchone()[0])

    def subtree_files(self, node_id: NodeId) -> list[Node]:
        rows = self._db.execute(
            f"{_SUBTREE} SELECT {_NODE_COLUMNS} FROM nodes WHERE id IN sub AND kind = 'file'",
            (node_id,),
        ).fetchall()
        return [_node(row) for row in rows]

    def path_of(self, node_id: NodeId) -> str:
        """The node's path from the root (for log lines and status output)."""
        parts = []
        node = self.get(node_id)
        while node is not None and node.parent_id is not None:
            parts.append(node.name)
            node = self.get(node.parent_id)
        return "/" + "/".join(reversed(parts))

    # -- manifests ------------------------------------------------------------------

    def manifest(self, version_id: VersionId) -> Manifest | None:
        head = self._db.execute(
            "SELECT node_id, number, size FROM manifests WHERE version_id = ?", (version_id,)
        ).fetchone()
        if head is None:
            return None
        rows = self._db.execute(
            'SELECT "offset", length, hash FROM manifest_chunks WHERE version_id = ? ORDER BY idx',
            (version_id,),
        ).fetchall()
        spans = tuple(ChunkSpan(int(o), int(n), ChunkHash(str(h))) for o, n, h in rows)
        version = VersionRef(version_id, int(head[1]), None)
        return Manifest(NodeId(int(head[0])), version, int(head[2]), spans)

    def store_manifest(self, manifest: Manifest) -> None:
        """Keep a manifest for offline reads, if some node still shows its version
        (best effort: with the cache disk full it is not kept, and reads go on)."""
        try:
            self._store_manifest(manifest)
        except sqlite3.OperationalError as exc:
            log.warning("manifest of version %s not kept: %s", manifest.version.id, exc)

    def _store_manifest(self, manifest: Manifest) -> None:
        version_id = manifest.version.id
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM nodes WHERE version_id = ?", (version_id,)).fetchone():
                db.execute(
                    "INSERT OR REPLACE INTO manifests (version_id, node_id, number, size) "
                    "VALUES (?, ?, ?, ?)",
                    (version_id, manifest.node_id, manifest.version.number, manifest.size),
                )
                db.execute("DELETE FROM manifest_chunks WHERE version_id = ?", (version_id,))
                db.executemany(
                    'INSERT INTO manifest_chunks (version_id, idx, "offset", length, hash) '
                    "VALUES (?, ?, ?, ?, ?)",
                    ((version_id, i, s.offset, s.length, s.hash)
                     for i, s in enumerate(manifest.chunks)),
                )  # fmt: skip


class PinRows:
    """The replica's pins: the nodes pinned by the user (a pin holds its whole subtree)."""

    def __init__(
        self,
        db: sqlite3.Connection,
        transaction: Callable[[], AbstractContextManager[sqlite3.Connection]],
    ) -> None:
        self._db = db
        self._transaction = transaction

    def add(self, node_id: NodeId) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO pins (node_id) VALUES (?)", (node_id,))

    def remove_below(self, node_id: NodeId) -> None:
        """Unpin the node and everything pinned below it."""
        with self._transaction() as db:
            db.execute(f"{_SUBTREE} DELETE FROM pins WHERE node_id IN sub", (node_id,))

    def pinned_by(self, node_id: NodeId) -> NodeId | None:
        """The node itself or its nearest ancestor that is pinned, if any."""
        row = self._db.execute(
            """WITH RECURSIVE up(id, parent_id, depth) AS (
                   SELECT id, parent_id, 0 FROM nodes WHERE id = ?
                   UNION ALL
                   SELECT n.id, n.parent_id, up.depth + 1
                   FROM nodes n JOIN up ON n.id = up.parent_id
               )
               SELECT up.id FROM up JOIN pins ON pins.node_id = up.id ORDER BY depth LIMIT 1""",
            (node_id,),
        ).fetchone()
        return None if row is None else NodeId(int(row[0]))

    def files(self) -> list[Node]:
        rows = self._db.execute(
            f"{_PINNED_SUBTREES} SELECT {_NODE_COLUMNS} FROM nodes "
            "WHERE id IN sub AND kind = 'file' ORDER BY id"
        ).fetchall()
        return [_node(row) for row in rows]

    def hashes(self) -> set[ChunkHash]:
        """Chunks of the stored manifests of every pinned file's current version."""
        rows = self._db.execute(
            f"{_PINNED_SUBTREES} SELECT DISTINCT mc.hash FROM nodes n "
            "JOIN manifest_chunks mc ON mc.version_id = n.version_id "
            "WHERE n.id IN sub AND n.kind = 'file'"
        ).fetchall()
        return {ChunkHash(str(row[0])) for row in rows}

    def any(self) -> bool:
        return self._db.execute("SELECT 1 FROM pins LIMIT 1").fetchone() is not None
