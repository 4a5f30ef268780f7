"""WebDAV locks in SQL: a WsgiDAV lock storage over ``core.LockTable``, and a
lock manager whose check-then-create is atomic across server processes.

WsgiDAV serialises lock acquisition with a process-local lock only; here the
check and the create run inside the ``dav-locks`` mutex, which every process
of the deployment shares. Timeouts are capped (``lock_timeout_seconds``,
default one hour): a client asking for more, for Infinite or for nothing
gets the cap, and renews with a refresh as Office does.

Each lock is stored with the node it was taken on (so the sync API can show
and honour it), and ``LockSweeper`` deletes expired locks every few seconds
so that their expiry reaches the change journal (and sync clients) soon.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from wsgidav.dav_error import HTTP_BAD_REQUEST, DAVError
from wsgidav.lock_man.lock_manager import (
    LockManager,
    generate_lock_token,
    normalize_lock_root,
    validate_lock,
)

from core import DriveError, LockRecord, LockTable, UserId
from davserver.dav.errors import dav_errors
from davserver.dav.xmlguard import UnsafeXml, parse_guarded

log = logging.getLogger(__name__)
SWEEP_SECONDS = 5.0


def owner_and_path(root: str) -> tuple[UserId, str] | None:
    """The user and drive path of a lock root ``/~<user id>/quoted/path`` (see
    ``resources.ref_prefix``), or None for a root of another form."""
    if not root.startswith("/~"):
        return None
    user, _, rest = root[2:].partition("/")
    if not user.isdigit():
        return None
    return UserId(int(user)), unquote("/" + rest)


def _as_wsgidav(record: LockRecord) -> dict[str, Any]:
    """A lock as WsgiDAV wants it: the owner XML as bytes (lxml refuses a str that
    carries an encoding declaration); SQL keeps it as text."""
    lock = record.as_dict()
    lock["owner"] = record.owner.encode("utf-8")
    return lock


def _covers(root: str, path: str, *, include_children: bool) -> bool:
    """True when a snapshot of ``root`` holds the answer for ``path``: it is at or
    below the root, or (for its own locks only) above it, where the root's owner
    has none."""
    if path == root or path.startswith(root + "/"):
        return True
    return not include_children and (path == "/" or root.startswith(path + "/"))


@dataclass(frozen=True)
class _Snapshot:
    """The live locks at and below ``root`` when the snapshot was taken."""

    root: str
    records: list[LockRecord]
    generation: int

    def at(self, path: str, *, include_root: bool, include_children: bool) -> list[LockRecord]:
        below = path.rstrip("/") + "/"
        return [
            r
            for r in self.records
            if (include_root and r.root == path) or (include_children and r.root.startswith(below))
        ]


class SqlLockStorage:
    """WsgiDAV's lock storage interface (see ``wsgidav.lock_man.lock_storage``) over SQL."""

    def __init__(self, table: LockTable, max_timeout: float) -> None:
        self.table = table
        self.max_timeout = max_timeout
        self._local = threading.local()

    @contextmanager
    def snapshot(self, root: str) -> Iterator[None]:
        """Answer lock lookups at or below ``root`` from one query, in this thread,
        while the block runs (WsgiDAV asks once per URL and per ancestor, and a
        listing once per member). The query runs at the first lookup, so a request
        that looks up no lock costs none; a lock change in the thread makes the
        next lookup query again."""
        previous = self._scope()
        self._local.scope = (normalize_lock_root(root), None)
        try:
            yield
        finally:
            self._local.scope = previous

    @contextmanager
    def fresh(self) -> Iterator[None]:
        """Read locks from the database inside the block, whatever the snapshot."""
        previous = self._scope()
        self._local.scope = None
        try:
            yield
        finally:
            self._local.scope = previous

    def _scope(self) -> tuple[str, _Snapshot | None] | None:
        scope: tuple[str, _Snapshot | None] | None = getattr(self._local, "scope", None)
        return scope

    def _snapshot_for(self, path: str, *, include_children: bool) -> _Snapshot | None:
        """The snapshot that answers a lookup of ``path``, loaded now if need be."""
        scope = self._scope()
        if scope is None:
            return None
        root, snapshot = scope
        if not _covers(root, path, include_children=include_children):
            return None
        if snapshot is None or snapshot.generation != self._generation():
            records = self.table.at(root, include_root=True, include_children=True)
            snapshot = _Snapshot(root, records, self._generation())
            self._local.scope = (root, snapshot)
        return snapshot

    def _generation(self) -> int:
        return int(getattr(self._local, "generation", 0))

    def _changed(self) -> None:
        """A lock changed in this thread: no snapshot taken before is valid any more."""
        self._local.generation = self._generation() + 1

    def __repr__(self) -> str:
        return "SqlLockStorage"

    def open(self) -> None:
        """Nothing to open: the table lives in the drive's database."""

    def close(self) -> None:
        """Nothing to close."""

    def cleanup(self) -> None:
        self.table.purge_expired()

    def clear(self) -> None:
        for record in self.table.all_live():
            self.table.remove(record.token)

    def _timeout(self, requested: Any) -> float:
        seconds = float(requested) if requested is not None else -1.0
        return self.max_timeout if seconds <= 0 or seconds > self.max_timeout else seconds

    def get(self, token: str) -> dict[str, Any] | None:
        record = self.table.get(token)
        return _as_wsgidav(record) if record is not None else None

    def create(self, path: str, lock: dict[str, Any]) -> dict[str, Any]:
        lock["root"] = normalize_lock_root(path)
        lock["timeout"] = self._timeout(lock.get("timeout"))
        lock["expire"] = time.time() + lock["timeout"]
        validate_lock(lock)
        lock["token"] = generate_lock_token()
        if isinstance(lock.get("owner"), bytes):  # WsgiDAV hands the owner XML over as bytes
            lock["owner"] = lock["owner"].decode("utf-8")
        self._changed()
        record = LockRecord(**{key: lock[key] for key in LockRecord.__annotations__})
        located = owner_and_path(lock["root"])
        with dav_errors():  # a bound on locks or their owner: 400 or 507, nothing stored
            if located is None:
                self.table.create(record)
            else:
                self.table.create(record, user_id=located[0], path=located[1])
        created: list[str] | None = getattr(self._local, "created", None)
        if created is not None:
            created.append(record.token)
        return lock

    def refresh(self, token: str, *, timeout: Any) -> dict[str, Any]:
        self._changed()
        record = self.table.refresh(token, self._timeout(timeout))
        if record is None:
            raise ValueError(f"no lock {token}")
        return _as_wsgidav(record)

    def delete(self, token: str) -> bool:
        self._changed()
        return self.table.remove(token)

    @contextmanager
    def all_or_nothing(self) -> Iterator[None]:
        """Remove the locks this thread creates inside the block if the block fails:
        a LOCK that answers an error must not leave a lock whose token the client
        never got (the resource would stay locked until the lock expires)."""
        previous: list[str] | None = getattr(self._local, "created", None)
        created: list[str] = []
        self._local.created = created
        try:
            yield
        except BaseException:
            for token in created:
                self.delete(token)
            raise
        finally:
            self._local.created = previous

    def get_lock_list(
        self, path: str, *, include_root: bool, include_children: bool, token_only: bool
    ) -> list[Any]:
        path = normalize_lock_root(path)
        snapshot = self._snapshot_for(path, include_children=include_children)
        source: _Snapshot | LockTable = snapshot if snapshot is not None else self.table
        records = source.at(path, include_root=include_root, include_children=include_children)
        return [r.token for r in records] if token_only else [_as_wsgidav(r) for r in records]


def _check_owner(owner: bytes | str | None) -> None:
    """Refuse (400) an owner that would not parse back once stored: every lock
    discovery of the resource would fail for as long as the lock lives."""
    if not owner:
        return
    try:
        parse_guarded(owner.encode("utf-8") if isinstance(owner, str) else owner)
    except UnsafeXml as error:
        raise DAVError(HTTP_BAD_REQUEST, context_info=f"lock owner: {error}") from None


class SqlLockManager(LockManager):
    """A lock manager whose acquire is atomic across processes."""

    def __init__(self, storage: SqlLockStorage) -> None:
        super().__init__(storage)
        self.storage: SqlLockStorage = storage
        self.mutex = storage.table.mutex

    def __del__(self) -> None:
        """WsgiDAV's manager closes its storage here; ours owns nothing to close."""

    def acquire(self, **kwargs: Any) -> dict[str, Any]:
        _check_owner(kwargs.get("lock_owner"))
        # The conflict check must see what other processes did since the snapshot.
        with self.mutex.exclusive(), self.storage.fresh():
            lock: dict[str, Any] = super().acquire(**kwargs)
            return lock


class LockSweeper:
    """Deletes expired locks every ``interval`` seconds (each expiry becomes a
    ``lock`` change in its owner's journal); one thread per server process."""

    def __init__(self, table: LockTable, interval: float = SWEEP_SECONDS) -> None:
        self.table = table
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lock-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.table.purge_expired()
            except DriveError as exc:
                log.warning("lock sweep failed: %s", exc)
