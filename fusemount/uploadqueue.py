"""The durable upload queue (``CACHE_DIR/uploads.sqlite``): which files have
local content the server does not have yet, and the version each edit
started from.

A version conflict ends a row: the local content becomes a conflicted copy
next to the file, remembered in ``conflicts`` (its state says ``conflict``).

A row is written (after the working copy's state, see ``workcopy``) before
``close`` or ``fsync`` returns: a kill -9 of the mount or a clean reboot
loses nothing that those calls returned for, and the next mount finds the
rows and uploads them. An ``fsync`` also puts them on disk (the working
copy fsync'd, the row committed with ``synchronous=FULL``), so that a power
cut cannot lose them either; a close, as on a local disk, does not. ``generation`` grows with every
mark, so an upload that raced a newer write leaves the row for the next one.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from fusemount.apirecords import NodeId, VersionId

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    node_id INTEGER PRIMARY KEY,
    base_version_id INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ready_at REAL NOT NULL,
    generation INTEGER NOT NULL,
    error TEXT,
    parent_id INTEGER,  -- where the file was last seen: a file deleted on the server
    name TEXT           -- meanwhile is made again there (see uploader)
);
CREATE TABLE IF NOT EXISTS conflicts (
    node_id INTEGER PRIMARY KEY,
    original_id INTEGER NOT NULL,
    made_at REAL NOT NULL
)
"""


Place = tuple[NodeId | None, str]  # a file's parent and name


@dataclass(frozen=True, slots=True)
class Pending:
    """One file waiting for upload."""

    node_id: NodeId
    base_version_id: VersionId
    mtime_ns: int
    ready_at: float
    generation: int
    error: str | None
    parent_id: NodeId | None = None
    name: str | None = None


class UploadQueue:
    """The queue's SQLite file; used from the trio thread only."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A commit survives a kill -9 at once (it is in the kernel); ``mark(durable=True)``,
        # for an fsync, syncs the log to disk too.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(uploads)")}
        if "name" not in columns:  # a queue from before the place was kept
            self._db.execute("ALTER TABLE uploads ADD COLUMN parent_id INTEGER")
            self._db.execute("ALTER TABLE uploads ADD COLUMN name TEXT")

    def close(self) -> None:
        self._db.close()

    def mark(self, node_id: NodeId, base: VersionId, mtime_ns: int, ready_at: float, *,
             place: Place | None = None, durable: bool = False) -> None:  # fmt: skip
        """The file (at ``place``: parent and name) has local content to upload; an edit
        already queued keeps its base. ``durable``: on disk before this returns."""
        parent_id, name = place if place is not None else (None, None)
        if durable:
            self._db.execute("PRAGMA synchronous=FULL")
        try:
            self._db.execute(
                "INSERT INTO uploads (node_id, base_version_id, mtime_ns, ready_at, generation,"
                " parent_id, name) VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (node_id) DO UPDATE"
                " SET mtime_ns = excluded.mtime_ns, ready_at = excluded.ready_at,"
                " generation = generation + 1, error = NULL,"
                " parent_id = coalesce(excluded.parent_id, parent_id),"
                " name = coalesce(excluded.name, name)",
                (node_id, base, mtime_ns, ready_at, parent_id, name),
            )
        finally:
            if durable:
                self._db.execute("PRAGMA synchronous=NORMAL")

    def moved(self, node_id: NodeId, parent_id: NodeId, name: str) -> None:
        """The file was renamed while its upload waits."""
        self._db.execute(
            "UPDATE uploads SET parent_id = ?, name = ? WHERE node_id = ?",
            (parent_id, name, node_id),
        )

    def made(self, node_id: NodeId, version: VersionId) -> None:
        """A file made here reached the server (empty, as ``version``): its queued
        content goes on from that version (rows start from version 0, "none yet")."""
        self._db.execute(
            "UPDATE uploads SET base_version_id = ? WHERE node_id = ? AND base_version_id = 0",
            (version, node_id),
        )

    def resume(self, ready_at: float) -> None:
        """At start: what an earlier mount queued is due by ``ready_at`` at the latest
        (that mount's delay may have been longer)."""
        self._db.execute("UPDATE uploads SET ready_at = ? WHERE ready_at > ?", (ready_at, ready_at))

    def get(self, node_id: NodeId) -> Pending | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM uploads WHERE node_id = ?", (node_id,))
        found = row.fetchone()
        return None if found is None else Pending(*found)

    def all(self) -> list[Pending]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM uploads ORDER BY ready_at, node_id")
        return [Pending(*row) for row in rows.fetchall()]

    def due(self, now: float | None = None) -> list[Pending]:
        """Rows whose delay has passed and that did not fail for good."""
        now = time.time() if now is None else now
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM uploads WHERE ready_at <= ? AND error IS NULL"
            " ORDER BY ready_at, node_id",
            (now,),
        )
        return [Pending(*row) for row in rows.fetchall()]

    def uploaded(self, pending: Pending, version: VersionId) -> bool:
        """The upload of ``pending`` committed ``version``: drop the row, or, if the file
        was written again meanwhile, keep it with the new version as its base.
        True if the row is gone."""
        gone = self._db.execute(
            "DELETE FROM uploads WHERE node_id = ? AND generation = ?",
            (pending.node_id, pending.generation),
        )
        if gone.rowcount:
            return True
        self._db.execute(
            "UPDATE uploads SET base_version_id = ? WHERE node_id = ?", (version, pending.node_id)
        )
        return False

    def failed(self, pending: Pending, error: str) -> None:
        """Stop retrying the row (until it is marked again); ``error`` says why. A row
        marked again since ``pending`` was read is left alone: the failure may have
        come from the file changing under the upload, and the new content goes next."""
        self._db.execute(
            "UPDATE uploads SET error = ? WHERE node_id = ? AND generation = ?",
            (error, pending.node_id, pending.generation),
        )

    def retry_later(self, node_id: NodeId, ready_at: float) -> None:
        self._db.execute("UPDATE uploads SET ready_at = ? WHERE node_id = ?", (ready_at, node_id))

    def drop(self, node_id: NodeId, generation: int | None = None) -> None:
        """Forget the row (only if not marked again since ``generation``, if given)
        and any conflict mark of the file."""
        if generation is None:
            self._db.execute("DELETE FROM uploads WHERE node_id = ?", (node_id,))
            self._db.execute("DELETE FROM conflicts WHERE node_id = ?", (node_id,))
        else:
            self._db.execute(
                "DELETE FROM uploads WHERE node_id = ? AND generation = ?", (node_id, generation)
            )

    def conflicted(self, copy_id: NodeId, original_id: NodeId) -> None:
        """``copy_id`` holds a local edit that lost against a newer server version."""
        self._db.execute(
            "INSERT OR REPLACE INTO conflicts (node_id, original_id, made_at) VALUES (?, ?, ?)",
            (copy_id, original_id, time.time()),
        )

    def conflicts(self) -> list[tuple[NodeId, NodeId]]:
        """(conflicted copy, original) pairs, oldest first."""
        rows = self._db.execute("SELECT node_id, original_id FROM conflicts ORDER BY made_at")
        return [(NodeId(copy), NodeId(original)) for copy, original in rows.fetchall()]

    def is_conflict(self, node_id: NodeId) -> bool:
        found = self._db.execute("SELECT 1 FROM conflicts WHERE node_id = ?", (node_id,))
        return found.fetchone() is not None


_COLUMNS = "node_id, base_version_id, mtime_ns, ready_at, generation, error, parent_id, name"
