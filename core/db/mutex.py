"""Named shared/exclusive locks that hold across every process of a deployment.

PostgreSQL: an advisory lock (works across hosts). SQLite: ``flock`` on a
file next to the database (works across processes on the host that owns
the file). Two are used today:

- ``collector``: writers hold it shared while they register chunks, gc holds
  it exclusive while it deletes them. A writer that finds a chunk row
  already present skips uploading the blob; without this lock gc could
  delete that blob between the writer's check and its commit. With it, a
  chunk row a writer saw (and touched) inside its shared hold is either
  deleted before the hold began (so the writer saw it missing and uploaded
  it) or kept (its ``last_seen`` is newer than gc's cutoff).
- ``dav-locks``: held exclusive around WebDAV's check-then-create of a lock,
  so two server processes can never both grant conflicting locks.
"""

from __future__ import annotations

import fcntl
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from core.db.engine import Database


class NamedMutex:
    """A shared/exclusive lock named ``name``, shared by all processes of one database."""

    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.key = zlib.crc32(f"drivegate:{name}".encode())
        path = db.sqlite_path
        self._file = path.with_name(f"{path.name}.{name}-lock") if path else None

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._hold(exclusive=False):
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._hold(exclusive=True):
            yield

    @contextmanager
    def _hold(self, exclusive: bool) -> Iterator[None]:
        if self.db.dialect == "postgresql":
            suffix = "" if exclusive else "_shared"
            with self.db.engine.connect() as conn:
                conn.execute(text(f"SELECT pg_advisory_lock{suffix}({self.key})"))
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text(f"SELECT pg_advisory_unlock{suffix}({self.key})"))
                    conn.commit()
        elif self._file is not None:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            with open(self._file, "a+b") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        else:
            yield  # in-memory SQLite: one process, one connection
