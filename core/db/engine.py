"""Opening the metadata database: engine, per-dialect setup and transactions.

SQLite runs in WAL mode with ``synchronous=FULL`` (a commit is on the disk
when it returns: a client told "stored" keeps its file through a power cut
too; NORMAL would only survive a crash of the process), a busy timeout and
foreign keys on. Bookkeeping that a later commit makes durable anyway goes
through ``write(durable=False)`` (see there). Its write
transactions start with ``BEGIN IMMEDIATE`` so two writers queue on the
busy timeout instead of failing when a read lock would need upgrading;
read transactions stay deferred so readers never wait for writers. Its WAL
is checkpointed by a thread of its own, not inside commits
(``core.db.checkpoint``). A writer waits at most ``busy_timeout`` seconds
for the write lock (this process's writers queue on a lock of their own
first, with the same bound): when another process holds it longer (a stuck
``sqlite3`` shell, a backup tool), the write fails with StorageUnavailable
and the request answers 503 at once, instead of each queued request paying
the wait again. ``check_writable`` is what a health check asks.
PostgreSQL uses psycopg 3 and READ COMMITTED, with row locks where order
matters (see ``core.journal``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.db.checkpoint import Checkpointer
from core.errors import InvalidRequest, StorageFull, StorageUnavailable

WAL_SIZE_LIMIT = 64 * 1024 * 1024
"""A SQLite WAL grown past this is cut back to it when it is next reset."""


def normalize_db_url(url: str) -> str:
    """Pick our drivers: ``postgresql://`` means psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername not in ("postgresql+psycopg", "sqlite", "sqlite+pysqlite"):
        raise InvalidRequest(f"unsupported database URL {url!r}: use sqlite:/// or postgresql://")
    return parsed.render_as_string(hide_password=False)


BUSY_TIMEOUT = 5.0
"""Seconds a SQLite writer waits for the write lock before giving up (a write
transaction here lasts milliseconds; gc and imports commit in small batches)."""


def _setup_sqlite(engine: Engine, checkpointer: Checkpointer | None, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        if checkpointer is not None:  # it checkpoints, not the committing request
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        if "sqlite_begin" in options:  # a write: how it commits
            synchronous = "FULL" if options.get("durable", True) else "NORMAL"
            connection.exec_driver_sql(f"PRAGMA synchronous={synchronous}")
        connection.exec_driver_sql(f"BEGIN {options.get('sqlite_begin', 'DEFERRED')}")


class Database:
    """The metadata database: an engine plus read and write transactions."""

    def __init__(self, url: str, *, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.url = normalize_db_url(url)
        self.busy_timeout = busy_timeout
        parsed = make_url(self.url)
        writer: Engine
        relaxed: Engine
        self.dialect = parsed.get_backend_name()
        self.checkpointer: Checkpointer | None = None
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
                self.checkpointer = Checkpointer(Path(parsed.database))
            self.engine = create_engine(self.url, connect_args={"timeout": busy_timeout})
            _setup_sqlite(self.engine, self.checkpointer, busy_timeout)
            writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
            relaxed = writer.execution_options(durable=False)
        else:
            self.engine = create_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True)
            writer = relaxed = self.engine
        self._writer_lock = threading.Lock() if self.dialect == "sqlite" else None
        self._statements = _StatementCount()
        event.listen(self.engine, "before_cursor_execute", self._statements.count)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(writer, expire_on_commit=False)
        self._write_relaxed = sessionmaker(relaxed, expire_on_commit=False)
        self.before_commit: list[Callable[[Session], None]] = []
        """Called in every write transaction just before it commits (inside it)."""
        self.after_commit: list[Callable[[Session], None]] = []
        """Called after every write transaction has committed."""

    @property
    def sqlite_path(self) -> Path | None:
        """The database file, for SQLite on disk."""
        database = make_url(self.url).database
        if self.dialect == "sqlite" and database and database != ":memory:":
            return Path(database)
        return None

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (rolled back when the block ends)."""
        with _translated(), self._read() as session:
            yield session

    @contextmanager
    def write(self, *, durable: bool = True) -> Iterator[Session]:
        """A write transaction, committed when the block ends without an exception.

        ``durable=False``: the commit does not wait for the disk (SQLite:
        ``synchronous=NORMAL``; PostgreSQL: ``synchronous_commit=off``), for
        bookkeeping whose loss in a power cut harms nothing: both logs are written
        in order, so the next durable commit makes it durable too, and what a
        power cut takes before that can be done again (a chunk row lost with the
        commit that would have named it: the client sends the chunk again, and
        gc sweeps the orphan blob). It saves an fsync per chunk upload.

        On SQLite, writers of this process queue on a lock first: SQLite lets
        one writer in at a time anyway, and its busy handler would otherwise
        sleep in steps of milliseconds between retries.
        """
        sessions = self._write if durable else self._write_relaxed
        with self._writers_turn(), _translated(), sessions() as session:
            with session.begin():
                if not durable and self.dialect == "postgresql":
                    session.execute(text("SET LOCAL synchronous_commit TO OFF"))
                yield session
                for hook in self.before_commit:
                    hook(session)
            if self.checkpointer is not None:
                self.checkpointer.poke()
            for hook in self.after_commit:
                hook(session)

    def _writers_turn(self) -> AbstractContextManager[object]:
        """This process's writers one at a time (SQLite), each waiting at most the
        busy timeout for its turn."""
        if self._writer_lock is None:
            return nullcontext()
        return _bounded(self._writer_lock, self.busy_timeout)

    def check_writable(self, timeout: float = 1.0) -> None:
        """StorageUnavailable unless a write could start within ``timeout`` seconds
        (SQLite: the write lock is free or freed in time, so nobody holds it for
        long; PostgreSQL: the server answers)."""
        if self._writer_lock is None:
            with self.read() as session:
                session.execute(text("SELECT 1"))
            return
        with _bounded(self._writer_lock, timeout), _translated():
            raw = self.engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
                try:
                    cursor.execute("BEGIN IMMEDIATE")
                    cursor.execute("ROLLBACK")
                except sqlite3.OperationalError as exc:
                    raise StorageUnavailable(f"the database is not writable: {exc}") from None
                finally:
                    cursor.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
                    cursor.close()
            finally:
                raw.close()

    def statements_in_thread(self) -> int:
        """How many SQL statements this thread has sent so far (request logs show
        the difference per request)."""
        return self._statements.value

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.engine.dispose()


class _StatementCount(threading.local):
    value = 0

    def count(self, *_args: Any) -> None:
        self.value += 1


SQLSTATE_DISK_FULL = "53100"


def _is_disk_full(error: BaseException | None) -> bool:
    """SQLite's SQLITE_FULL ("database or disk is full") or PostgreSQL's disk_full."""
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return getattr(error, "sqlstate", None) == SQLSTATE_DISK_FULL


@contextmanager
def _bounded(lock: threading.Lock, timeout: float) -> Iterator[None]:
    """Hold ``lock``, waiting at most ``timeout`` seconds for it (StorageUnavailable)."""
    if not lock.acquire(timeout=timeout):
        raise StorageUnavailable(f"the database is busy: no write lock within {timeout:g} s")
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _translated() -> Iterator[None]:
    """Turn 'cannot reach the database' into StorageUnavailable and a full disk into
    StorageFull; let the rest through."""
    try:
        yield
    except OperationalError as exc:
        if _is_disk_full(exc.orig):
            raise StorageFull(f"the database's disk is full: {exc.orig}") from None
        raise StorageUnavailable(f"database unavailable: {exc.orig}") from None
