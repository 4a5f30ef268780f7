"""Checkpointing SQLite's write-ahead log off the request path.

By default SQLite checkpoints from inside ``COMMIT`` once the WAL holds 1,000
pages: the transaction that crosses the line copies the WAL back into the
database and waits for an fsync, so every few writes one request pays for
everyone's. A manifest commit of a 1 GiB file alone writes ~1,300 pages (each
of its ~850 chunks lands on its own leaf of the chunk-hash index), so each of
those commits paid a checkpoint.

Here connections run with ``wal_autocheckpoint=0`` and one thread checkpoints
instead: shortly after a commit (``poke``), in PASSIVE mode (it never blocks
readers or writers; what it cannot copy yet it copies next time). Durability
does not depend on it: with ``synchronous=FULL`` every commit fsyncs the WAL
before it returns. The WAL is reset once a checkpoint has copied all of it (the next
writer starts it over) and cut back to ``journal_size_limit`` then. ``close``
stops the thread; SQLite checkpoints when the last connection closes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

DELAY = 0.5
"""Seconds between a commit and the checkpoint that follows it (writes in
between share one checkpoint)."""


class Checkpointer:
    """A thread that checkpoints one SQLite database's WAL after commits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._poked = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        """A write committed: checkpoint soon (starts the thread on first use)."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="wal-checkpoint", daemon=True
                )
                self._thread.start()
        self._poked.set()

    def close(self) -> None:
        with self._lock:
            self._stop.set()
            thread = self._thread
        self._poked.set()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            while not self._stop.is_set():
                self._poked.wait()
                if self._stop.wait(DELAY):
                    break
                self._poked.clear()
                self._checkpoint(connection)
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # the next commit tries again
            log.warning("WAL checkpoint failed: %s", exc)
