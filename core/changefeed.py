"""Waiting for a user's change journal to move on (the sync API's long-poll).

Three ways a waiter learns that a commit appended journal rows:

- in this process: every write transaction that appended rows wakes the
  waiters of those users when it commits (a condition variable);
- from other processes on PostgreSQL: the transaction sends
  ``pg_notify('drivegate_journal', 'user:seq')`` before it commits (so the
  notification goes out exactly when the rows become visible), and one
  listener thread per process (``LISTEN``, its own connection) wakes the
  local waiters;
- from other processes on SQLite (no notifications), or while the
  PostgreSQL listener is reconnecting: the same thread polls the positions
  of the users someone waits for every ``POLL_SECONDS``.

A request that commits can hold its wake-ups until it has answered
(``deferred_wakes``: the server's request log does, for every request), so
that the long-polls it wakes do not take the GIL from its answer; commits
outside such a hold wake the waiters ``WAKE_DELAY`` after they commit.

A wake-up only says "look again": the waiter re-reads the user's position
from the database, so a spurious or lost-and-repeated wake-up is harmless.
The thread starts with the first wait and stops with ``close``, which also
releases every held wait (a server that stops answers its long-polls).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core import journal
from core.db.engine import Database
from core.db.models import User
from core.errors import DriveError

log = logging.getLogger(__name__)

CHANNEL = "drivegate_journal"
POLL_SECONDS = 0.1
WAKE_DELAY = 0.002
"""Seconds between a commit and waking this process's long-polls, outside a
``deferred_wakes`` hold, so that the request that committed (little work left)
answers first: woken at once, they take the GIL from it and delay its answer."""
RECONNECT_SECONDS = 5.0


class ChangeFeed:
    """Wakes long-polls when a user's journal moves past their cursor."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cond = threading.Condition()
        self._marks: dict[int, int] = {}  # per user: bumped at every wake-up
        self._waiting: Counter[int] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._to_wake: set[int] = set()  # users whose waiters a scheduled wake-up wakes
        self._held = threading.local()  # .users: wake-ups a deferred_wakes hold keeps
        if db.dialect == "postgresql":
            db.before_commit.append(_notify_other_processes)
        db.after_commit.append(self._committed)

    def wait(self, user_id: int, cursor: int, timeout: float) -> int:
        """Block until the user's journal is past ``cursor`` or ``timeout`` seconds have
        passed; return the journal's position (``<= cursor`` on a timeout)."""
        self._start()
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiting[user_id] += 1
        try:
            while True:
                with self._cond:
                    mark = self._marks.get(user_id, 0)
                position = self.position(user_id)
                if position > cursor:
                    return position
                with self._cond:
                    while self._marks.get(user_id, 0) == mark:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0 or self._stop.is_set():
                            return position
                        self._cond.wait(remaining)
        finally:
            with self._cond:
                self._waiting[user_id] -= 1
                if self._waiting[user_id] <= 0:
                    del self._waiting[user_id]

    def position(self, user_id: int) -> int:
        """The user's last journal sequence number."""
        with self.db.read() as session:
            return int(
                session.execute(select(User.journal_seq).where(User.id == user_id)).scalar_one()
            )

    def waiting_users(self) -> set[int]:
        """The users someone waits for now."""
        with self._cond:
            return set(self._waiting)

    def wake(self, user_ids: Iterable[int]) -> None:
        """Make the waiters of these users look again."""
        with self._cond:
            for user_id in user_ids:
                self._marks[user_id] = self._marks.get(user_id, 0) + 1
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the thread; held waits return at once (with the position they saw)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()

    @contextlib.contextmanager
    def deferred_wakes(self) -> Iterator[None]:
        """Hold the wake-ups of the commits this thread makes inside, and wake those
        waiters at once when it leaves (after a request has sent its answer)."""
        outer = getattr(self._held, "users", None)
        self._held.users = held = set() if outer is None else outer
        try:
            yield
        finally:
            if outer is None:
                if getattr(self._held, "users", None) is held:
                    del self._held.users
                if held:
                    self.wake(held)

    def _committed(self, session: Session) -> None:
        appended = journal.appended(session)
        with self._cond:
            waited = [user_id for user_id in appended if user_id in self._waiting]
            if not waited:
                return
            held: set[int] | None = getattr(self._held, "users", None)
            if held is not None:
                held.update(waited)
                return
            scheduled = bool(self._to_wake)
            self._to_wake.update(waited)
        if not scheduled:
            timer = threading.Timer(WAKE_DELAY, self._wake_scheduled)
            timer.daemon = True
            timer.start()

    def _wake_scheduled(self) -> None:
        with self._cond:
            users, self._to_wake = self._to_wake, set()
        self.wake(users)

    def _start(self) -> None:
        with self._cond:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="change-feed", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        listener: psycopg.Connection[Any] | None = None
        retry_at = 0.0
        polled: dict[int, int] = {}
        try:
            while not self._stop.is_set():
                wants_listener = self.db.dialect == "postgresql" and listener is None
                if wants_listener and time.monotonic() >= retry_at:
                    listener = self._listen()
                    retry_at = time.monotonic() + RECONNECT_SECONDS
                if listener is None:
                    self._stop.wait(POLL_SECONDS)
                    self._poll(polled)
                    continue
                try:
                    for note in listener.notifies(timeout=POLL_SECONDS):
                        self.wake([int(note.payload.partition(":")[0])])
                except (psycopg.Error, ValueError) as exc:
                    log.warning("change feed: lost the PostgreSQL listener (%s); polling", exc)
                    listener.close()
                    listener = None
        finally:
            if listener is not None:
                listener.close()

    def _listen(self) -> psycopg.Connection[Any] | None:
        """A connection LISTENing on the channel, or None (then poll until it works)."""
        url = make_url(self.db.url).set(drivername="postgresql")
        try:
            connection: psycopg.Connection[Any] = psycopg.connect(
                url.render_as_string(hide_password=False), autocommit=True
            )
            connection.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            log.warning("change feed: cannot LISTEN on PostgreSQL (%s); polling", exc)
            return None
        waiting = self.waiting_users()
        self.wake(waiting)  # anything committed before LISTEN took effect
        return connection

    def _poll(self, polled: dict[int, int]) -> None:
        """Wake the waiters whose user's position changed since the last poll."""
        waiting = self.waiting_users()
        for user_id in list(polled):
            if user_id not in waiting:
                del polled[user_id]
        if not waiting:
            return
        try:
            with self.db.read() as session:
                rows = session.execute(
                    select(User.id, User.journal_seq).where(User.id.in_(waiting))
                ).all()
        except (DriveError, SQLAlchemyError) as exc:  # a poll must never kill the thread
            log.warning("change feed: poll failed (%s)", exc)
            return
        moved = [user_id for user_id, seq in rows if polled.get(user_id) != seq]
        polled.update({user_id: seq for user_id, seq in rows})
        if moved:
            self.wake(moved)


def _notify_other_processes(session: Session) -> None:
    """Inside the committing transaction: tell every listener which users moved on."""
    for user_id, seq in journal.appended(session).items():
        session.execute(select(func.pg_notify(CHANNEL, f"{user_id}:{seq}")))
