"""The collector lock: writers hold it shared while they register chunks,
gc holds it exclusive while it deletes them.

Why: a writer that finds a chunk row already present skips uploading the
blob. Without this lock gc could delete that blob between the writer's check
and its commit. With it, a chunk row that a writer saw (and touched) inside
its shared hold is either deleted before the hold began (so the writer saw
it missing and uploaded it) or kept (its ``last_seen`` is newer than gc's
cutoff). PostgreSQL uses an advisory lock (works across hosts); SQLite uses
``flock`` on a file next to the database (works across processes on the
host that owns the file).
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from core.db.engine import Database

_ADVISORY_KEY = 0x64726976  # "driv"


class CollectorLock:
    """Shared/exclusive lock between chunk writers and the garbage collector."""

    def __init__(self, db: Database) -> None:
        self.db = db
        path = db.sqlite_path
        self._file = path.with_name(path.name + ".collector-lock") if path else None

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
                conn.execute(text(f"SELECT pg_advisory_lock{suffix}({_ADVISORY_KEY})"))
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text(f"SELECT pg_advisory_unlock{suffix}({_ADVISORY_KEY})"))
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
