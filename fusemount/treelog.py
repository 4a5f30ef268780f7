"""The durable journal of tree changes made through the mount and not yet on
the server, and the pool of node ids the server reserved for this mount
(both in ``CACHE_DIR/uploads.sqlite``, next to the upload queue).

Creating a file or folder, renaming, deleting and setting a time are done
locally first: the replica shows the change at once and a row here says
what to tell the server, in order (``treesync`` replays the rows). A new
node needs its id at once (it is the inode number), so it takes one from the
pool of ids the server reserved for us (``POST /ids``); the server makes the
node with that id when the row is replayed.

A row is committed before the file system answers the request that made it
(``synchronous=NORMAL``: a kill -9 of the mount loses nothing; an ``fsync``
puts the rows on disk too: ``sync``). Rows are only
ever removed once the server has done them, or when a later local change
makes them pointless (a file made and deleted here before the server heard
of it: ``cancel``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fusemount.apirecords import NodeId

OpKind = Literal["mkdir", "create", "move", "delete", "mtime"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tree_ops (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('mkdir', 'create', 'move', 'delete', 'mtime')),
    node_id INTEGER NOT NULL,
    parent_id INTEGER,        -- mkdir, create, move: where the node goes
    name TEXT,                -- mkdir, create, move
    mtime_ns INTEGER,         -- mkdir, create, mtime
    overwrite INTEGER NOT NULL DEFAULT 0  -- move: an empty folder in the way goes
);
CREATE INDEX IF NOT EXISTS tree_ops_by_node ON tree_ops (node_id);
CREATE INDEX IF NOT EXISTS tree_ops_by_parent ON tree_ops (parent_id);
CREATE TABLE IF NOT EXISTS free_ids (id INTEGER PRIMARY KEY);
"""


@dataclass(frozen=True, slots=True)
class TreeOp:
    """One tree change waiting for the server."""

    seq: int
    kind: OpKind
    node_id: NodeId
    parent_id: NodeId | None = None
    name: str | None = None
    mtime_ns: int | None = None
    overwrite: bool = False


_COLUMNS = "seq, kind, node_id, parent_id, name, mtime_ns, overwrite"


def _op(row: tuple[object, ...]) -> TreeOp:
    seq, kind, node_id, parent_id, name, mtime_ns, overwrite = row
    return TreeOp(
        seq=int(str(seq)),
        kind=kind,  # type: ignore[arg-type]  # the CHECK constraint keeps it one of OpKind
        node_id=NodeId(int(str(node_id))),
        parent_id=None if parent_id is None else NodeId(int(str(parent_id))),
        name=None if name is None else str(name),
        mtime_ns=None if mtime_ns is None else int(str(mtime_ns)),
        overwrite=bool(overwrite),
    )


class TreeLog:
    """The journal and the id pool; used from the trio thread only.

    ``pending_nodes`` is kept in memory (nodes with rows here) because the
    change feed and the uploader ask for it on every page and every upload."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._nodes: dict[NodeId, int] = {}
        self._unmade: set[NodeId] = set()
        self.sending: set[NodeId] = set()  # nodes whose rows are on their way (treesync)
        self._cancelled: set[NodeId] = set()
        for op in self.ops():
            self._count(op, +1)

    def close(self) -> None:
        self._db.close()

    def sync(self) -> None:
        """Put every row on disk (an fsync of a file made here needs its row)."""
        self._db.execute("PRAGMA wal_checkpoint(FULL)")

    # -- the id pool --------------------------------------------------------------

    def take_id(self) -> NodeId | None:
        """A reserved id for a new node (None: the pool is empty)."""
        row = self._db.execute("SELECT min(id) FROM free_ids").fetchone()
        if row is None or row[0] is None:
            return None
        self._db.execute("DELETE FROM free_ids WHERE id = ?", (row[0],))
        return NodeId(int(row[0]))

    def add_ids(self, ids: Sequence[int]) -> None:
        self._db.executemany("INSERT OR IGNORE INTO free_ids (id) VALUES (?)", [(i,) for i in ids])

    def ids_left(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM free_ids").fetchone()[0])

    # -- the journal --------------------------------------------------------------

    def add(self, kind: OpKind, node_id: NodeId, *, parent_id: NodeId | None = None,
            name: str | None = None, mtime_ns: int | None = None,
            overwrite: bool = False) -> TreeOp:  # fmt: skip
        cursor = self._db.execute(
            "INSERT INTO tree_ops (kind, node_id, parent_id, name, mtime_ns, overwrite)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (kind, node_id, parent_id, name, mtime_ns, int(overwrite)),
        )
        assert cursor.lastrowid is not None
        op = TreeOp(cursor.lastrowid, kind, node_id, parent_id, name, mtime_ns, overwrite)
        self._count(op, +1)
        return op

    def ops(self, limit: int = 1_000_000) -> list[TreeOp]:
        """The waiting changes, oldest first."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM tree_ops ORDER BY seq LIMIT ?", (limit,))
        return [_op(row) for row in rows.fetchall()]

    def head(self) -> TreeOp | None:
        found = self.ops(limit=1)
        return found[0] if found else None

    def done(self, op: TreeOp) -> None:
        """The server did ``op``."""
        gone = self._db.execute("DELETE FROM tree_ops WHERE seq = ?", (op.seq,))
        if gone.rowcount:
            self._count(op, -1)

    def rename(self, op: TreeOp, name: str) -> TreeOp:
        """Replay ``op`` under another name (its name was taken on the server)."""
        self._db.execute("UPDATE tree_ops SET name = ? WHERE seq = ?", (name, op.seq))
        return TreeOp(op.seq, op.kind, op.node_id, op.parent_id, name, op.mtime_ns, op.overwrite)

    def move_to(self, op: TreeOp, parent_id: NodeId) -> TreeOp:
        """Replay ``op`` in another folder (its folder is gone on the server)."""
        self._db.execute("UPDATE tree_ops SET parent_id = ? WHERE seq = ?", (parent_id, op.seq))
        return TreeOp(op.seq, op.kind, op.node_id, parent_id, op.name, op.mtime_ns, op.overwrite)

    def cancel(self, node_id: NodeId) -> bool:
        """The node was made here and is deleted again before the server heard of it:
        drop all its rows, if nothing else waiting refers to it (a child made in a
        folder that was then emptied). True if dropped; else a delete must follow.

        If its rows are on their way to the server right now, the server may make
        the node after all: ``take_cancelled`` tells treesync, which then sends a
        delete unless the answer shows the node was not made."""
        if node_id not in self._unmade:
            return False
        uses = self._db.execute(
            "SELECT 1 FROM tree_ops WHERE parent_id = ? AND node_id != ? LIMIT 1",
            (node_id, node_id),
        )
        if uses.fetchone() is not None:
            return False
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM tree_ops WHERE node_id = ?", (node_id,))
        for op in [_op(row) for row in rows.fetchall()]:
            self.done(op)
        if node_id in self.sending:
            self._cancelled.add(node_id)
        return True

    def take_cancelled(self) -> set[NodeId]:
        """Nodes cancelled while their rows were being sent (see ``cancel``)."""
        cancelled, self._cancelled = self._cancelled, set()
        return cancelled

    def pending_nodes(self) -> set[NodeId]:
        """Nodes with changes waiting: the change feed leaves them alone till then.
        A node cancelled while its create was on its way counts too: the server may
        have made it, and a page of changes showing it made must not bring it back."""
        return set(self._nodes) | self._cancelled

    def has_pending(self, node_id: NodeId) -> bool:
        return node_id in self._nodes or node_id in self._cancelled

    def unmade(self, node_id: NodeId) -> bool:
        """Made here, not yet on the server (its content cannot be uploaded yet)."""
        return node_id in self._unmade

    def __len__(self) -> int:
        return sum(self._nodes.values())

    def _count(self, op: TreeOp, step: int) -> None:
        left = self._nodes.get(op.node_id, 0) + step
        if left > 0:
            self._nodes[op.node_id] = left
        else:
            self._nodes.pop(op.node_id, None)
        if op.kind in ("mkdir", "create"):
            if step > 0:
                self._unmade.add(op.node_id)
            else:
                self._unmade.discard(op.node_id)
